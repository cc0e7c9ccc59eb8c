#!/usr/bin/env bash
# flac-compare.sh DIR... : the lossless mode of protocol version 2 side by
# side with FLAC -8 (Debian's flac) on the same recordings, and the round
# trip checked bit for bit.
#
# Each DIR holds recording.dat (int16, time-major) and recording.json (a
# spikeline recording, a simulation, or a recording of the external kit,
# docs/gtkit.md). For each it runs
#   spikeline encode --mode lossless --frame-ms F   (F = 1 and 10)
#   spikeline encode --restore                      (cmp with the original)
#   flac -8 on every channel as a mono stream (FLAC carries at most 8
#   channels and decorrelates only stereo pairs; its default block of
#   4096 samples is 137 ms at 30 kHz), and flac -8 --blocksize 32 (~1 ms,
#   the latency of our frames)
# and prints one row per recording and a pooled row: ratio = raw bytes /
# encoded bytes. Needs python3 with NumPy (to split the channels) and flac.
# Usage: scripts/flac-compare.sh /tmp/spikeline-gtkit/kit/*-s1 /tmp/sim32
set -euo pipefail
PY=${PYTHON:-/usr/bin/python3}
command -v flac >/dev/null || { echo "flac-compare: flac not installed (apt-get install flac)" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/spikeline
(cd "$root" && go build -o "$bin" ./cmd/spikeline)
printf '%-28s %6s %10s %9s %9s %9s %9s %s\n' recording ch MB ours1ms ours10ms flac-8 flac-8b32 roundtrip
tot_raw=0 tot_o1=0 tot_o10=0 tot_f=0 tot_fb=0
for d in "$@"; do
	d=${d%/}
	raw=$(stat -c %s "$d/recording.dat")
	ch=$("$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(m.get('n_channels') or m.get('channels'))" "$d/recording.json")
	o=()
	for f in 1 10; do
		"$bin" encode --meta "$d" --mode lossless --frame-ms $f --out "$tmp/l$f.frames" >/dev/null
		o+=("$(stat -c %s "$tmp/l$f.frames")")
	done
	rm -rf "$tmp/restored"
	"$bin" encode --restore "$tmp/l1.frames" --out "$tmp/restored" >/dev/null 2>&1
	if cmp -s "$d/recording.dat" "$tmp/restored/recording.dat"; then rt=exact; else rt=DIFFERS; fi
	rm -rf "$tmp/restored" "$tmp"/l*.frames
	"$PY" - "$d/recording.dat" "$ch" "$tmp" <<'EOF'
import sys, numpy as np
x = np.fromfile(sys.argv[1], dtype='<i2').reshape(-1, int(sys.argv[2]))
for c in range(x.shape[1]):
    np.ascontiguousarray(x[:, c]).tofile(f"{sys.argv[3]}/ch{c}.raw")
EOF
	fs=0 fb=0
	for r in "$tmp"/ch*.raw; do
		flac -8 -s -f --force-raw-format --endian=little --sign=signed --channels=1 --bps=16 --sample-rate=30000 -o "$tmp/c.flac" "$r"
		fs=$((fs + $(stat -c %s "$tmp/c.flac")))
		flac -8 -s -f --blocksize=32 --force-raw-format --endian=little --sign=signed --channels=1 --bps=16 --sample-rate=30000 -o "$tmp/c.flac" "$r"
		fb=$((fb + $(stat -c %s "$tmp/c.flac")))
		rm -f "$r" "$tmp/c.flac"
	done
	awk -v n="$(basename "$d")" -v ch="$ch" -v raw="$raw" -v a="${o[0]}" -v b="${o[1]}" -v f="$fs" -v g="$fb" -v rt="$rt" \
		'BEGIN{printf "%-28s %6d %10.1f %9.3f %9.3f %9.3f %9.3f %s\n", n, ch, raw/1e6, raw/a, raw/b, raw/f, raw/g, rt}'
	tot_raw=$((tot_raw + raw)) tot_o1=$((tot_o1 + o[0])) tot_o10=$((tot_o10 + o[1])) tot_f=$((tot_f + fs)) tot_fb=$((tot_fb + fb))
done
awk -v raw=$tot_raw -v a=$tot_o1 -v b=$tot_o10 -v f=$tot_f -v g=$tot_fb \
	'BEGIN{printf "%-28s %6s %10.1f %9.3f %9.3f %9.3f %9.3f\n", "pooled", "", raw/1e6, raw/a, raw/b, raw/f, raw/g}'
