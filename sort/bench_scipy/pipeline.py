#!/usr/bin/python3
"""The reference pipeline BenchmarkScipy runs beside the Go sorter.

usage: pipeline.py DATA CHANNELS RATE GAIN REPEATS

DATA holds int16 counts, time-major (sample t of channel c at t*CHANNELS+c).
Each repeat converts to float32 µV, band-passes every channel with
scipy.signal.sosfilt (3rd-order Butterworth 300-6000 Hz, the sorter's
default), estimates the noise as MAD/0.6745 per channel and finds negative
threshold crossings at -4.5 sigma with numpy. It prints one line:

    seconds_per_repeat samples_per_repeat crossings
"""
import sys
import time

import numpy as np
from scipy import signal

path, channels, rate, gain, repeats = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
raw = np.fromfile(path, dtype=np.int16).reshape(-1, channels)
sos = signal.butter(3, [300, 6000], btype="band", output="sos", fs=rate)
best = float("inf")
crossings = 0
for _ in range(repeats):
    t0 = time.perf_counter()
    x = raw.astype(np.float32) * np.float32(gain)
    y = signal.sosfilt(sos, x, axis=0)
    sigma = np.median(np.abs(y), axis=0) / 0.6745
    thr = -4.5 * sigma
    below = y < thr
    cross = below[1:] & ~below[:-1]
    crossings = int(np.count_nonzero(cross))
    best = min(best, time.perf_counter() - t0)
print(best, raw.size, crossings)
