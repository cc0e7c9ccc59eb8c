#!/usr/bin/python3
"""Usage: report.py RESULTS KIT [--sorters spikeline,peer] [--verbose] [--only NAME,...]

Prints the ground-truth kit's accuracy tables from the `spikeline score --json` files that
scripts/gtkit/run.sh leaves in RESULTS/<sorter>/<recording>/score.json:

  1. per recording and sorter: mean accuracy over units with SNR >= 5, well detected (accuracy
     >= 0.8) n of N, mean recall and precision over those units, and the sorted units: count,
     overmerged, redundant, false positive (SpikeInterface's categories, docs/scoring.md);
  2. per recording and sorter: mean accuracy (well detected / units) by SNR band
     3-5, 5-8, 8-12, >= 12;
  3. the same by variant (all seeds pooled, unit-weighted) and over the whole kit;
  4. with --verbose, one line per ground-truth unit: SNR, spikes, matched sorted unit,
     accuracy, recall, precision, tp/fn/fp and why spikes were lost (fn_cl misclassified,
     fn_uns unsorted, fn_mis not detected), with, from units.csv, the unit's firing rate, its
     nearest neighbour (nn) and the d' between them (how well any linear rule can tell them
     apart, scripts/gtkit/gtkit.py separability) and its shape source.
The variant table also gives the units with SNR >= 5 whose nearest neighbour is at d' >= 3
(separable in principle: a linear rule errs on < 7 % of their spikes).

Standard library only.
"""
import csv
import json
import os
import sys

BANDS = [(3, 5), (5, 8), (8, 12), (12, None)]


def band_of(snr):
    for lo, hi in BANDS:
        if snr >= lo and (hi is None or snr < hi):
            return (lo, hi)
    return None


def band_name(b):
    lo, hi = b
    return ">=%g" % lo if hi is None else "%g-%g" % (lo, hi)


def load(results, sorter, name):
    p = os.path.join(results, sorter, name, "score.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def units_csv(kit, name):
    p = os.path.join(kit, name, "units.csv")
    out = {}
    if os.path.exists(p):
        with open(p) as f:
            for r in csv.DictReader(f):
                out[int(r["unit_id"])] = r
    return out


class Acc:
    """Unit-weighted pooling of per-unit scores."""

    def __init__(self):
        self.n = self.well = 0
        self.acc = self.rec = self.prec = 0.0

    def add(self, u):
        self.n += 1
        self.well += 1 if u["well_detected"] else 0
        self.acc += u["accuracy"]
        self.rec += u["recall"]
        self.prec += u["precision"]

    def cell(self):
        if self.n == 0:
            return "-"
        return "%.3f (%d/%d)" % (self.acc / self.n, self.well, self.n)


def main():
    args = sys.argv[1:]
    verbose = "--verbose" in args
    sorters = ["spikeline"]
    only = []
    pos = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--sorters":
            sorters = [s for s in args[i + 1].split(",") if s]
            i += 1
        elif a == "--only":
            only = [s for s in args[i + 1].split(",") if s]
            i += 1
        elif a != "--verbose":
            pos.append(a)
        i += 1
    if len(pos) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    results, kit = pos
    names = sorted(
        d
        for d in os.listdir(kit)
        if os.path.exists(os.path.join(kit, d, "recording.json")) and (not only or d.split("-s")[0] in only)
    )
    if not names:
        print("report: no recordings in %s" % kit, file=sys.stderr)
        sys.exit(1)

    rows, bandrows = [], []
    pooled = {}  # (sorter, variant) -> {band: Acc, "snr5": Acc}
    missing = []
    for name in names:
        variant = name.rsplit("-s", 1)[0]
        for s in sorters:
            c = load(results, s, name)
            if c is None:
                missing.append("%s/%s" % (s, name))
                continue
            su = c["sorted_units"]
            units = c["units"]
            snr5 = Acc()
            per_band = {b: Acc() for b in BANDS}
            meta = units_csv(kit, name)
            for u in units:
                m = meta.get(u["gt_unit"], {})
                dp = float(m["nn_dprime"]) if m.get("nn_dprime") not in (None, "") else float("inf")
                b = band_of(u["snr"])
                if b:
                    per_band[b].add(u)
                if u["snr"] >= 5:
                    snr5.add(u)
                for key in (variant, "ALL"):
                    p = pooled.setdefault((s, key), {"snr5": Acc(), "sep": Acc(), **{b: Acc() for b in BANDS}})
                    if b:
                        p[b].add(u)
                    if u["snr"] >= 5:
                        p["snr5"].add(u)
                        if dp >= 3:
                            p["sep"].add(u)
            rows.append(
                [
                    name,
                    s,
                    "%.3f" % (snr5.acc / snr5.n if snr5.n else 0),
                    "%d/%d" % (snr5.well, snr5.n),
                    "%.3f" % (snr5.rec / snr5.n if snr5.n else 0),
                    "%.3f" % (snr5.prec / snr5.n if snr5.n else 0),
                    "%d" % su["count"],
                    "%d" % len(su["overmerged"]),
                    "%d" % len(su["redundant"]),
                    "%d" % len(su["false_positive"]),
                ]
            )
            bandrows.append([name, s] + [per_band[b].cell() for b in BANDS])

    def table(head, body):
        w = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
        line = lambda r: "  ".join(str(x).rjust(w[i]) if i > 1 else str(x).ljust(w[i]) for i, x in enumerate(r))
        print(line(head))
        for r in body:
            print(line(r))

    print("# per recording: units with SNR >= 5 (accuracy = mean over them; well = accuracy >= 0.8)")
    table(
        ["recording", "sorter", "accuracy", "well", "recall", "precision", "sorted", "overmerged", "redundant", "false_pos"],
        rows,
    )
    print()
    print("# per recording by SNR band: mean accuracy (well detected / units)")
    table(["recording", "sorter"] + [band_name(b) for b in BANDS], bandrows)
    print()
    print("# by variant (seeds pooled, unit-weighted): SNR >= 5, then by band")
    vrows = []
    keys = sorted({k[1] for k in pooled if k[1] != "ALL"}) + ["ALL"]
    for v in keys:
        for s in sorters:
            p = pooled.get((s, v))
            if p:
                vrows.append([v, s, p["snr5"].cell(), p["sep"].cell()] + [p[b].cell() for b in BANDS])
    table(["variant", "sorter", "SNR>=5", "SNR>=5,d'>=3"] + [band_name(b) for b in BANDS], vrows)
    for s in sorters:
        p = pooled.get((s, "ALL"))
        if p and p["snr5"].n:
            print(
                "%s: mean_accuracy_snr5=%.3f well_detected_snr5=%d/%d"
                % (s, p["snr5"].acc / p["snr5"].n, p["snr5"].well, p["snr5"].n)
            )

    if verbose:
        print()
        print("# per ground-truth unit")
        urows = []
        for name in names:
            meta = units_csv(kit, name)
            for s in sorters:
                c = load(results, s, name)
                if c is None:
                    continue
                for u in c["units"]:
                    m = meta.get(u["gt_unit"], {})
                    urows.append(
                        [
                            name,
                            s,
                            u["gt_unit"],
                            u["channel"],
                            "%.1f" % u["snr"],
                            u["n_gt"],
                            "-" if u["sorted_unit"] is None else u["sorted_unit"],
                            u["n_sorted"],
                            "%.3f" % u["accuracy"],
                            "%.3f" % u["recall"],
                            "%.3f" % u["precision"],
                            u["tp"],
                            u["fn"],
                            u["fp"],
                            u["fn_misclassified"],
                            u["fn_unsorted"],
                            u["fn_missed"],
                            m.get("firing_hz", "")[:5],
                            m.get("nn_unit", "") or "-",
                            m.get("nn_dprime", "") or "-",
                            m.get("shape", "") + (" burst" if m.get("bursting") == "true" else ""),
                        ]
                    )
        table(
            [
                "recording",
                "sorter",
                "gt",
                "ch",
                "snr",
                "n_gt",
                "sorted",
                "n_sorted",
                "accuracy",
                "recall",
                "precision",
                "tp",
                "fn",
                "fp",
                "fn_cl",
                "fn_uns",
                "fn_mis",
                "hz",
                "nn",
                "nn_d'",
                "shape",
            ],
            urows,
        )
    if missing:
        print("\nreport: no score for %s" % ", ".join(missing), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
