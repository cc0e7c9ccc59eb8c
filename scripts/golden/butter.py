#!/usr/bin/python3
"""Golden vectors for spikeline's band-pass filter (package sort).

Run once with Debian's scipy (apt-get install python3-scipy):

    /usr/bin/python3 scripts/golden/butter.py dsp/testdata sort/testdata

It writes dsp/testdata/butter_sos.json (second-order sections from
scipy.signal.butter(N, [lo, hi], btype='band', output='sos', fs=fs)) and
sort/testdata/butter_sosfilt.json (an int16 input and the float64 output of
scipy.signal.sosfilt started from sosfilt_zi scaled by the first sample,
i.e. the steady state for a constant input). CI does not need scipy: the Go
tests read the committed JSON.
"""
import json
import sys

import numpy as np
import scipy
from scipy import signal

out_sos = sys.argv[1] if len(sys.argv) > 1 else "dsp/testdata"
out = sys.argv[2] if len(sys.argv) > 2 else "sort/testdata"

cases = [
    (3, 300, 6000, 30000),
    (2, 300, 6000, 30000),
    (1, 300, 6000, 30000),
    (4, 300, 5000, 20000),
    (3, 500, 3000, 25000),
    (5, 250, 7500, 40000),
    (3, 300, 6000, 20000),
    (6, 400, 8000, 32000),
    (3, 300, 3000, 7000),
]
sos = []
for n, lo, hi, fs in cases:
    s = signal.butter(n, [lo, hi], btype="band", output="sos", fs=fs)
    sos.append({"order": n, "low": lo, "high": hi, "rate": fs, "sos": s.tolist()})
meta = {"scipy": scipy.__version__, "numpy": np.__version__}
with open(f"{out_sos}/butter_sos.json", "w") as f:
    json.dump({"made_with": meta, "cases": sos}, f, indent=1)

# A deterministic input: DC offset, LFP-like slow wave, mains hum, a tone in
# band, spikes and pseudo-noise from a fixed-seed generator.
fs = 30000
n = 6000
t = np.arange(n) / fs
rng = np.random.default_rng(12345)
x = (2000 + 800 * np.sin(2 * np.pi * 7 * t) + 300 * np.sin(2 * np.pi * 60 * t)
     + 150 * np.sin(2 * np.pi * 1000 * t) + 40 * rng.standard_normal(n))
for k in range(200, n, 577):
    x[k:k + 12] -= 600 * np.hanning(12)
x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
filtered = []
for n_, lo, hi in [(3, 300, 6000), (2, 300, 3000)]:
    s = signal.butter(n_, [lo, hi], btype="band", output="sos", fs=fs)
    zi = signal.sosfilt_zi(s) * float(x[0])
    y, _ = signal.sosfilt(s, x.astype(np.float64), zi=zi)
    filtered.append({"order": n_, "low": lo, "high": hi, "rate": fs, "output": y.tolist()})
with open(f"{out}/butter_sosfilt.json", "w") as f:
    json.dump({"made_with": meta, "input": x.tolist(), "filters": filtered}, f)
