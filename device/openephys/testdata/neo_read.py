#!/usr/bin/env python3
"""Read an Open Ephys binary recording with neo's OpenEphysBinaryRawIO (a
reader spikeline did not write) and report what it sees, for the Go tests.

usage: neo_read.py DIR OUTPREFIX

Prints one JSON object: neo's version, and per segment (recording) the
stream's channel names, gains, units, sampling rate, t_start and size, and
the event channels (timestamps, durations, labels). The signals of
segment k are written to OUTPREFIX.k as raw int16 (time-major), exactly
as neo's get_analogsignal_chunk returns them.
"""
import json
import sys

import numpy as np
import neo
from neo.rawio import OpenEphysBinaryRawIO

d, out = sys.argv[1], sys.argv[2]
r = OpenEphysBinaryRawIO(dirname=d)
r.parse_header()
res = {"neo": neo.__version__, "segments": []}
chans = r.header["signal_channels"]
for seg in range(r.segment_count(0)):
    s = {
        "names": [str(n) for n in chans["name"]],
        "gains": [float(g) for g in chans["gain"]],
        "units": [str(u) for u in chans["units"]],
        "rate": float(chans["sampling_rate"][0]),
        "t_start": float(r.get_signal_t_start(0, seg, 0)),
        "size": int(r.get_signal_size(0, seg, 0)),
        "events": [],
    }
    sig = r.get_analogsignal_chunk(0, seg, None, None, 0, None)
    np.ascontiguousarray(sig, dtype="<i2").tofile("%s.%d" % (out, seg))
    for ev in range(r.event_channels_count()):
        ts, dur, lab = r.get_event_timestamps(0, seg, ev)
        times = r.rescale_event_timestamp(ts, "float64", ev)
        s["events"].append({
            "name": str(r.header["event_channels"]["name"][ev]),
            "times": [float(t) for t in times],
            "durations": None if dur is None else [float(x) for x in dur],
            "labels": [str(x) for x in lab],
        })
    res["segments"].append(s)
json.dump(res, sys.stdout)
