#!/usr/bin/env bash
# setup-ext.sh EXT: put what scripts/gtkit/gtkit.py needs under EXT (default /work/ext),
# outside the repository (none of it is committed):
#
#   EXT/spikeinterface   SpikeInterface, tag 0.104.8
#   EXT/probeinterface   probeinterface, tag 0.3.2
#   EXT/WaveMAP_Paper    the WaveMAP paper's repository (real mean waveforms, data/full_data.npy)
#   EXT/meta             *.dist-info/METADATA for both packages: spikeinterface/__init__.py and
#                        probeinterface/__init__.py ask importlib.metadata for their version,
#                        which a source checkout on PYTHONPATH does not provide
#
# A directory that exists is kept, so clones made by hand (or from a mirror) are used as they
# are. Debian packages: python3-numpy python3-scipy python3-zarr python3-requests
# (apt-get install -y python3-zarr python3-requests). With pip instead:
#   pip install spikeinterface==0.104.8 probeinterface==0.3.2
# and only the waveform library is needed from here.
#
# Then: export PYTHONPATH=EXT/spikeinterface/src:EXT/probeinterface/src:EXT/meta
set -euo pipefail
EXT=${1:-/work/ext}
GIT_BASE=${GTKIT_GIT_BASE:-https://github.com}
mkdir -p "$EXT"

clone() { # clone DIR REPO TAG
	if [ -d "$EXT/$1/.git" ]; then
		echo "$EXT/$1: exists, kept"
		return
	fi
	if [ -n "$3" ]; then
		git clone --quiet --depth 1 --branch "$3" "$GIT_BASE/$2" "$EXT/$1"
	else
		git clone --quiet --depth 1 "$GIT_BASE/$2" "$EXT/$1"
	fi
}
clone spikeinterface SpikeInterface/spikeinterface 0.104.8
clone probeinterface SpikeInterface/probeinterface 0.3.2
clone WaveMAP_Paper EricKenjiLee/WaveMAP_Paper ""

for p in spikeinterface:0.104.8 probeinterface:0.3.2; do
	name=${p%%:*} ver=${p##*:}
	d="$EXT/meta/$name-$ver.dist-info"
	mkdir -p "$d"
	printf 'Metadata-Version: 2.1\nName: %s\nVersion: %s\n' "$name" "$ver" >"$d/METADATA"
done
mkdir -p "$EXT/waveforms"
cp "$EXT/WaveMAP_Paper/data/full_data.npy" "$EXT/waveforms/full_data.npy"

export PYTHONPATH="$EXT/spikeinterface/src:$EXT/probeinterface/src:$EXT/meta"
/usr/bin/python3 -c 'import spikeinterface, probeinterface; from spikeinterface.core.generate import InjectTemplatesRecording; import spikeinterface.preprocessing; print("spikeinterface", spikeinterface.__version__, "probeinterface", probeinterface.__version__, "ok")'
echo "export PYTHONPATH=$PYTHONPATH"
