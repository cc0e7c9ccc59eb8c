#!/usr/bin/env bash
# run.sh: sort and score every recording of the ground-truth kit (make accuracy-external).
#
# Environment (the Makefile passes its variables of the same names):
#   EXTDIR    where the kit and the results live (default /tmp/spikeline-gtkit):
#             EXTDIR/kit/<recording>/ and EXTDIR/results/<sorter>/<recording>/
#   GTKIT_EXT where scripts/gtkit/setup-ext.sh put SpikeInterface (default /work/ext); its
#             checkouts go on PYTHONPATH unless PYTHONPATH already imports spikeinterface
#   QUICK=1   one seed per variant;  ONLY=white,lfp  some variants;  SEEDS=1,2  some seeds
#   SORTERS   "spikeline" (default) and/or "peer" (PEER, default /work/shared/peers/peer_sorter.py,
#             run with /usr/bin/python3 and its defaults)
#   JOBS      recordings sorted at once (default 1; spikeline sort then uses every core)
#   VERBOSE=1 the per-unit table too
#   SPIKELINE the binary (default bin/spikeline, built by the Makefile)
#   RESORT=1  re-run the peer even where its result is newer than the recording
# The kit is generated only where a recording is missing. spikeline is re-run every time;
# the peer (a fixed script) only where it has no score newer than the recording.
set -euo pipefail
cd "$(dirname "$0")/../.."
EXTDIR=${EXTDIR:-/tmp/spikeline-gtkit}
GTKIT_EXT=${GTKIT_EXT:-/work/ext}
SORTERS=${SORTERS:-spikeline}
JOBS=${JOBS:-1}
SPIKELINE=${SPIKELINE:-bin/spikeline}
PEER=${PEER:-/work/shared/peers/peer_sorter.py}
KIT=$EXTDIR/kit
RES=$EXTDIR/results
PY=/usr/bin/python3

args=()
[ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ] && args+=(--quick)
[ -n "${ONLY:-}" ] && args+=(--only "$ONLY")
[ -n "${SEEDS:-}" ] && args+=(--seeds "$SEEDS")
names=$($PY scripts/gtkit/gtkit.py list "${args[@]}")

missing=()
for n in $names; do
	[ -f "$KIT/$n/recording.json" ] || missing+=("$n")
done
if [ ${#missing[@]} -gt 0 ]; then
	if ! $PY -c 'import spikeinterface' 2>/dev/null; then
		export PYTHONPATH="$GTKIT_EXT/spikeinterface/src:$GTKIT_EXT/probeinterface/src:$GTKIT_EXT/meta${PYTHONPATH:+:$PYTHONPATH}"
	fi
	if ! $PY -c 'import spikeinterface, probeinterface' 2>/dev/null; then
		cat >&2 <<EOF
accuracy-external: the kit is missing ${missing[*]} in $KIT,
and generating it needs SpikeInterface 0.104.8 and probeinterface 0.3.2, not found
(not importable by $PY, nor under GTKIT_EXT=$GTKIT_EXT). Either
  scripts/gtkit/setup-ext.sh $GTKIT_EXT      # git clone of both tags + the waveform library
or
  pip install spikeinterface==0.104.8 probeinterface==0.3.2 and set GTKIT_WAVEFORMS
(Debian: apt-get install python3-numpy python3-scipy python3-zarr python3-requests).
See docs/gtkit.md.
EOF
		exit 2
	fi
	export GTKIT_WAVEFORMS=${GTKIT_WAVEFORMS:-$GTKIT_EXT/waveforms/full_data.npy}
	echo "generating ${#missing[@]} recording(s) into $KIT"
	$PY scripts/gtkit/gtkit.py generate "$KIT" "${args[@]}"
fi

cores=$(nproc)
workers=$((cores / JOBS))
[ "$workers" -ge 1 ] || workers=1
export KIT RES SPIKELINE PEER PY workers RESORT

one() { # one SORTER RECORDING
	local s=$1 n=$2 out=$RES/$1/$2
	if [ "$s" = peer ] && [ "${RESORT:-0}" = 0 ] && [ "$out/score.json" -nt "$KIT/$n/recording.dat" ]; then
		printf '%-10s %-10s kept (sorted in %ss; RESORT=1 re-sorts)\n' "$s" "$n" "$(cat "$out/seconds" 2>/dev/null)"
		return 0
	fi
	rm -rf "$out"
	mkdir -p "$out"
	local t0=$(date +%s.%N)
	case $s in
	spikeline)
		# With the recording's layout: neighbouring channels (within 50 µm, the
		# dense probe) see one spike; the Utah-like layouts (400 µm) sort
		# channel by channel exactly as without it.
		local probe=()
		[ -f "$KIT/$n/probe.json" ] && probe=(--probe "$KIT/$n/probe.json")
		"$SPIKELINE" sort --meta "$KIT/$n" --out "$out" --force --quiet --no-plot --no-phy --workers "$workers" "${probe[@]}" >"$out/sort.log" 2>&1 ||
			{ echo "$s $n: sort failed, see $out/sort.log" >&2; return 1; }
		;;
	peer)
		# The peer reads gain_uV_per_bit; spikeline's sidecar says gain_uv_per_bit
		# (device.Meta). Give it a view of the recording with both.
		mkdir -p "$out/rec"
		ln -s "$KIT/$n/recording.dat" "$out/rec/recording.dat"
		$PY -c 'import json,sys; m=json.load(open(sys.argv[1])); m["gain_uV_per_bit"]=m["gain_uv_per_bit"]; json.dump(m,open(sys.argv[2],"w"))' \
			"$KIT/$n/recording.json" "$out/rec/recording.json"
		OMP_NUM_THREADS=1 $PY "$PEER" "$out/rec" "$out/spikes.csv" >"$out/sort.log" 2>&1 ||
			{ echo "$s $n: peer failed, see $out/sort.log" >&2; return 1; }
		# Its unit ids are "<channel>_<k>"; the scorer wants integers: number them
		# 1.. in order of first appearance (the map is kept in unit_ids.csv).
		mv "$out/spikes.csv" "$out/peer_spikes.csv"
		awk -F, -v map="$out/unit_ids.csv" 'NR==1 { print; print "unit_id,peer_unit_id" > map; next }
			!($1 in id) { id[$1] = ++k; print k "," $1 > map }
			{ $1 = id[$1]; print }' OFS=, "$out/peer_spikes.csv" >"$out/spikes.csv"
		;;
	*)
		echo "unknown sorter $s" >&2
		return 1
		;;
	esac
	local t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{printf "%.1f\n", $2-$1}' >"$out/seconds"
	# A detection counts on a channel within 50 µm of the true main channel
	# (the probe's layout; on the Utah-like layouts, 400 µm apart, that is
	# the unit's own electrode).
	local geo=()
	[ -f "$KIT/$n/probe.json" ] && geo=(--positions "$KIT/$n/probe.json" --radius-um 50)
	"$SPIKELINE" score --gt "$KIT/$n/gt_spikes.csv" --sorted "$out/spikes.csv" --units "$KIT/$n/units.csv" \
		--meta "$KIT/$n" "${geo[@]}" --json >"$out/score.json" 2>"$out/score.log" ||
		{ echo "$s $n: score failed, see $out/score.log" >&2; return 1; }
	printf '%-10s %-10s sorted in %5ss\n' "$s" "$n" "$(cat "$out/seconds")"
}
export -f one

for s in $SORTERS; do
	if [ "$s" = peer ] && [ ! -f "$PEER" ]; then
		echo "accuracy-external: peer sorter $PEER not found (set PEER=path/to/peer_sorter.py)" >&2
		exit 2
	fi
done
echo "load before: $(uptime)"
for s in $SORTERS; do
	for n in $names; do echo "$s $n"; done
done | xargs -P "$JOBS" -n 2 bash -c 'one "$0" "$1"'
echo "load after:  $(uptime)"
echo
only_arg=()
[ -n "${ONLY:-}" ] && only_arg=(--only "$ONLY")
v=()
[ -n "${VERBOSE:-}" ] && [ "${VERBOSE}" != 0 ] && v=(--verbose)
sorters_csv=$(echo $SORTERS | tr ' ' ',')
# Report on exactly this run's recordings: a scratch kit view of symlinks.
view=$(mktemp -d)
trap 'rm -rf "$view"' EXIT
for n in $names; do ln -s "$KIT/$n" "$view/$n"; done
$PY scripts/gtkit/report.py "$RES" "$view" --sorters "$sorters_csv" "${only_arg[@]}" "${v[@]}"
