#!/usr/bin/env python3
"""Read the amplifier channels of Intan .rhd/.rhs files with neo's
IntanRawIO (a reader spikeline did not write), for the Go tests.

usage: neo_intan.py OUTDIR FILE...

Prints one JSON object per file (neo's channel names, gains, offsets,
units, sampling rate, number of samples) and writes the raw uint16
amplifier samples, time-major, to OUTDIR/<file name>.u16.
"""
import json
import os
import sys

import numpy as np
import neo
from neo.rawio import IntanRawIO

out = sys.argv[1]
res = {"neo": neo.__version__, "files": {}}
for path in sys.argv[2:]:
    r = IntanRawIO(filename=path)
    r.parse_header()
    streams = r.header["signal_streams"]
    s = list(streams["id"]).index("0")  # stream 0: the amplifier channels
    ch = r.header["signal_channels"]
    ch = ch[ch["stream_id"] == "0"]
    sig = r.get_analogsignal_chunk(0, 0, None, None, s, None)
    np.ascontiguousarray(sig, dtype="<u2").tofile(os.path.join(out, os.path.basename(path) + ".u16"))
    res["files"][os.path.basename(path)] = {
        "names": [str(n) for n in ch["name"]],
        "gains": [float(g) for g in ch["gain"]],
        "offsets": [float(o) for o in ch["offset"]],
        "units": [str(u) for u in ch["units"]],
        "rate": float(ch["sampling_rate"][0]),
        "size": int(r.get_signal_size(0, 0, s)),
    }
json.dump(res, sys.stdout)
