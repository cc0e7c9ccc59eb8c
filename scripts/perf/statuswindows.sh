#!/bin/sh
# statuswindows.sh BINARY OUT [spikeline run flags...]
#
# Runs BINARY run (an embedded NATS server on a free port, --http off,
# status every second, plus the given flags, e.g. --channels 1024
# --calibrate 20 --duration 60s), records every status message with
# `BINARY tap --json status` into OUT.jsonl, the run's output into OUT.out
# and `uptime` before and after into OUT.load, then prints one line per
# status window whose latency p99 is over 2 ms and a summary
# (docs/performance.md, "Background work").
set -eu
bin=$1 out=$2
shift 2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uptime > "$out.load"
"$bin" run --nats-port "$port" --http off --status-every 1s "$@" > "$out.out" 2>&1 &
run=$!
# The tap connects once the server listens (it retries until then).
until grep -q "NATS connected" "$out.out" 2>/dev/null; do
	kill -0 "$run" 2>/dev/null || { cat "$out.out"; exit 1; }
	sleep 0.1
done
"$bin" tap --nats "nats://127.0.0.1:$port" --json status > "$out.jsonl" 2>/dev/null &
tap=$!
wait "$run"
kill "$tap" 2>/dev/null || true
uptime >> "$out.load"
python3 - "$out.jsonl" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)["message"]
    except (ValueError, KeyError):
        continue
    rows.append((m["sample"] / m["rate"], m.get("latency_p50_ns", 0) / 1e6,
                 m.get("latency_p99_ns", 0) / 1e6, m.get("latency_max_ns", 0) / 1e6,
                 m.get("sample_rate", 0) / m["rate"]))
for r in rows:
    if r[2] > 2:
        print("window ending %7.1f s: p50 %.2f ms, p99 %.2f ms, max %.2f ms, %.2f x real time" % r)
p99 = sorted(r[2] for r in rows)
print("%d windows, %d with p99 > 2 ms; p99 median %.2f ms, worst %.2f ms" % (
    len(rows), sum(1 for v in p99 if v > 2), p99[len(p99) // 2] if p99 else 0, p99[-1] if p99 else 0))
PY
cat "$out.load"
