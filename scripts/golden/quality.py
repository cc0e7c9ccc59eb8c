#!/usr/bin/python3
"""Golden vectors for spikeline's unit quality metrics (package sort/quality).

The metrics are computed by SpikeInterface itself, on a synthetic recording made
with SpikeInterface's own generators, so that sort/quality can be checked
against the reference implementation without Python in CI.

Run once with Debian's numpy/scipy/numba and a checkout of SpikeInterface 0.104.8
and probeinterface 0.3.2 on PYTHONPATH (neither needs installing; a
`<name>-<version>.dist-info/METADATA` file next to the package is enough for
importlib.metadata):

    apt-get install -y python3-numpy python3-scipy python3-numba python3-sklearn \
        python3-threadpoolctl python3-tqdm python3-packaging
    git -C spikeinterface archive 0.104.8 src | tar -x -C /tmp/si && mv /tmp/si/src /tmp/si/si
    git -C probeinterface archive 0.3.2 src | tar -x -C /tmp/si && mv /tmp/si/src /tmp/si/pi
    printf 'Metadata-Version: 2.1\\nName: spikeinterface\\nVersion: 0.104.8\\n' \
        > /tmp/si/si/spikeinterface-0.104.8.dist-info/METADATA   # (mkdir -p first)
    printf 'Metadata-Version: 2.1\\nName: probeinterface\\nVersion: 0.3.2\\n' \
        > /tmp/si/pi/probeinterface-0.3.2.dist-info/METADATA
    PYTHONPATH=/tmp/si/si:/tmp/si/pi /usr/bin/python3 scripts/golden/quality.py sort/quality/testdata

(`pip install spikeinterface==0.104.8` works too.) It writes
sort/quality/testdata/spikeinterface_metrics.json: for every unit its spike
sample indices, the per-spike amplitudes of SpikeInterface's `spike_amplitudes`
extension, the average template on the extremum channel, that channel's noise
level, and the metrics `compute_quality_metrics` returned with its default
parameters. NaN is written as null.

The sorting is hand-made so that every metric has something to measure: a clean
unit, a contaminated one (spikes 0.2-1.4 ms after others, including intervals of
exactly 1.0 and 1.5 ms), one silent for a minute, one whose amplitude
distribution is cut at the low end, a sparse one (too few spikes for
amplitude_cutoff), one with 1 and one with 2 spikes, a bursting one, one with a spike
exactly on the last presence bin edge and one in the partial last bin, and a
slightly contaminated one.
"""
import json
import sys
import warnings

import numpy as np
import scipy
import numba

import spikeinterface as si
from spikeinterface.core import NumpySorting, create_sorting_analyzer
from spikeinterface.core.generate import (
    InjectTemplatesRecording,
    NoiseGeneratorRecording,
    generate_templates,
    generate_unit_locations,
)
from spikeinterface.core.template_tools import get_template_extremum_channel
from spikeinterface.metrics.quality import compute_quality_metrics
from probeinterface import generate_multi_columns_probe

out = sys.argv[1] if len(sys.argv) > 1 else "sort/quality/testdata"

fs = 30000.0
duration = 185.0  # 3 full 60 s presence bins and a 5 s partial one
n_total = int(duration * fs)
margin = int(0.005 * fs)  # no spike within 5 ms of either end (templates are 4 ms)
rng = np.random.default_rng(20240611)


def poisson(rate, t0=0.0, t1=duration, refractory_ms=2.0):
    """Sample indices of a Poisson train with a dead time, in [t0, t1) s."""
    n = rng.poisson(rate * (t1 - t0))
    t = np.sort(rng.uniform(t0, t1, n))
    keep = np.concatenate([[True], np.diff(t) > refractory_ms / 1000])
    s = np.round(t[keep] * fs).astype(np.int64)
    return s[(s >= margin) & (s < n_total - margin)]


units = {}
units[0] = poisson(8.0)  # clean
u1 = poisson(5.0)
extra = rng.choice(u1[:-10], size=30, replace=False) + rng.integers(6, 43, size=30)  # 0.2-1.4 ms later
ties = rng.choice(u1[:-10], size=6, replace=False)
extra = np.concatenate([extra, ties[:3] + 30, ties[3:] + 45])  # exactly 1.0 ms and 1.5 ms
units[1] = np.unique(np.concatenate([u1, extra]))  # contaminated
units[2] = np.concatenate([poisson(3.0, 0, 60), poisson(3.0, 120, duration)])  # silent 60-120 s
units[3] = poisson(15.0)  # amplitudes cut at the low end (below)
units[4] = poisson(0.5)  # sparse: fewer than 500 spikes
units[5] = np.array([int(93.25 * fs)])  # one spike
units[6] = np.array([int(40 * fs), int(40 * fs) + 10])  # two spikes 10 samples apart
b = poisson(2.0, refractory_ms=10)
units[7] = np.unique(np.concatenate([b, b + 36, b + 72]))  # bursts of 3 at 1.2 ms
units[7] = units[7][units[7] < n_total - margin]
u8 = poisson(4.0, 0, 100)
units[8] = np.unique(np.concatenate([u8, [int(180 * fs), int(182 * fs)]]))  # last edge, partial bin
u9 = poisson(10.0)
units[9] = np.unique(np.concatenate([u9, rng.choice(u9[:-10], 5, replace=False) + 15]))  # a little contaminated

unit_ids = sorted(units)
samples = np.concatenate([units[u] for u in unit_ids])
labels = np.concatenate([np.full(len(units[u]), u) for u in unit_ids])
sorting = NumpySorting.from_samples_and_labels([samples], [labels], fs, unit_ids=unit_ids)

# Per-spike amplitude scaling (in the sorting's spike vector order): ±10 %
# jitter, ±25 % for unit 3.
vec = sorting.to_spike_vector()
factor = rng.normal(1.0, 0.1, len(vec))
u3 = vec["unit_index"] == unit_ids.index(3)
factor[u3] = rng.normal(1.0, 0.25, u3.sum())

num_channels = 8
probe = generate_multi_columns_probe(
    num_columns=2, num_contact_per_column=[4, 4], xpitch=20, ypitch=20,
    contact_shapes="circle", contact_shape_params={"radius": 6})
probe.set_device_channel_indices(np.arange(num_channels))
locations = generate_unit_locations(len(unit_ids), probe.contact_positions, seed=7,
                                    margin_um=10.0, minimum_z=5.0, maximum_z=50.0, minimum_distance=20)
ms_before, ms_after = 1.0, 3.0
templates = generate_templates(probe.contact_positions, locations, fs, ms_before, ms_after, seed=7)


def analyze(sorting, factor):
    noise = NoiseGeneratorRecording(num_channels=num_channels, sampling_frequency=fs, durations=[duration],
                                    dtype="float32", seed=11, noise_block_size=int(fs),
                                    noise_levels=5.0, strategy="on_the_fly")
    recording = InjectTemplatesRecording(sorting, templates, nbefore=int(ms_before * fs / 1000),
                                         amplitude_factor=factor, parent_recording=noise)
    recording.annotate(is_filtered=True)
    recording.set_probe(probe, in_place=True)
    recording.set_channel_gains(1.0)
    recording.set_channel_offsets(0.0)
    analyzer = create_sorting_analyzer(sorting, recording, sparse=False, format="memory")
    # Every spike: the template is the mean of all of them (the "uniform"
    # method also imports spikeinterface.widgets, which needs pydantic 2).
    analyzer.compute("random_spikes", method="all")
    analyzer.compute("templates")  # average (and std); no "waveforms", so snr uses the average
    analyzer.compute("noise_levels", seed=0)
    analyzer.compute("spike_amplitudes")
    return analyzer


# Unit 3's spikes whose measured amplitude is under 95 % of its median are
# removed (sorting and recording), as a detection threshold would: the low
# tail of its amplitude distribution is cut sharply.
first = analyze(sorting, factor)
a3 = first.get_extension("spike_amplitudes").get_data()[u3]
drop = np.zeros(len(vec), bool)
drop[np.flatnonzero(u3)[np.abs(a3) < 0.95 * np.median(np.abs(a3))]] = True
keep_samples = vec["sample_index"][~drop]
keep_labels = np.asarray(unit_ids)[vec["unit_index"][~drop]]
factor = factor[~drop]
sorting = NumpySorting.from_samples_and_labels([keep_samples], [keep_labels], fs, unit_ids=unit_ids)
assert len(sorting.to_spike_vector()) == len(factor)
analyzer = analyze(sorting, factor)
names = ["num_spikes", "firing_rate", "presence_ratio", "snr", "isi_violation", "rp_violation",
         "amplitude_cutoff", "amplitude_median"]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    qm = compute_quality_metrics(analyzer, metric_names=names)

amps = analyzer.get_extension("spike_amplitudes").get_data(outputs="by_unit", concatenated=True)
tmpl = analyzer.get_extension("templates").get_templates(operator="average")
noise_levels = analyzer.get_extension("noise_levels").get_data()
extremum = get_template_extremum_channel(analyzer, peak_sign="both", mode="extremum", outputs="index")


def num(v):
    v = float(v)
    return None if np.isnan(v) else v


doc = {
    "made_with": {
        "spikeinterface": si.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "numba": numba.__version__, "script": "scripts/golden/quality.py",
    },
    "rate": fs,
    "samples": n_total,
    "units": [],
}
columns = ["num_spikes", "firing_rate", "presence_ratio", "snr", "isi_violations_ratio",
           "isi_violations_count", "rp_contamination", "rp_violations", "amplitude_cutoff",
           "amplitude_median"]
for i, u in enumerate(unit_ids):
    ch = int(extremum[u])
    a = np.asarray(amps[u], dtype=np.float32)
    doc["units"].append({
        "unit": int(u),
        "spikes": [int(s) for s in sorting.get_unit_spike_train(u, segment_index=0)],
        "amplitudes": [float(x) for x in a],  # float32 values, exact as float64
        "channel": ch,
        "template": [float(x) for x in np.asarray(tmpl[i, :, ch], dtype=np.float32)],
        "noise": float(noise_levels[ch]),
        "metrics": {c: num(qm.loc[u, c]) for c in columns},
    })

path = f"{out}/spikeinterface_metrics.json"
with open(path, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {path}")
print(qm[columns].to_string())
