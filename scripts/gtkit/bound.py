#!/usr/bin/env python3
"""Separability upper bound of the kit (docs/gtkit.md, docs/sorting.md "Accuracy").

For every unit with SNR >= 5, the accuracy a per-channel linear rule with
perfect detection could reach against its most similar neighbour (the kit's
nn_dprime): e = Phi(-d'/2) of each unit's spikes go to the neighbour and as
many of the neighbour's come over, so accuracy = (1-e) n / (n + e n_nb).
Prints the bound per recording and pooled.
Usage: scripts/gtkit/bound.py [KIT_DIR]   (default /tmp/spikeline-gtkit/kit)
"""
import csv
import glob
import math
import os
import sys


def phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


kit = sys.argv[1] if len(sys.argv) > 1 else "/tmp/spikeline-gtkit/kit"
pooled = []
for d in sorted(glob.glob(os.path.join(kit, "*"))):
    path = os.path.join(d, "units.csv")
    if not os.path.exists(path):
        continue
    units = {int(r["unit_id"]): r for r in csv.DictReader(open(path))}
    accs = []
    for r in units.values():
        if float(r["snr"]) < 5:
            continue
        dp = float(r["nn_dprime"] or 99)
        nn = int(r["nn_unit"]) if r["nn_unit"] else None
        e = phi(-dp / 2)
        na = int(r["num_spikes"])
        nb = int(units[nn]["num_spikes"]) if nn is not None else 0
        accs.append((1 - e) * na / (na + e * nb))
    if not accs:
        continue
    pooled += accs
    print("%-9s bound %.3f well %d/%d" % (os.path.basename(d), sum(accs) / len(accs), sum(a >= 0.8 for a in accs), len(accs)))
if pooled:
    print("ALL       bound %.3f well %d/%d" % (sum(pooled) / len(pooled), sum(a >= 0.8 for a in pooled), len(pooled)))
