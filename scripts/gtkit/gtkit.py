#!/usr/bin/python3
"""gtkit: an independent ground-truth kit for spikeline's sorter, made with SpikeInterface.

Usage:
    gtkit.py generate OUTDIR [--quick] [--only NAME[,NAME...]] [--seeds 1,2,3]
                             [--duration SECONDS] [--force]
    gtkit.py list [--quick] [--only ...] [--seeds ...]

Every recording is written to OUTDIR/NAME/ in spikeline's own format (docs/formats.md,
docs/gtkit.md), so `spikeline sort --meta OUTDIR/NAME` and `spikeline score` read it as they
read `spikeline sim`'s output:

    recording.dat    int16 little-endian, time-major, gain_uv_per_bit µV per count
    recording.json   the device.Meta sidecar (n_channels, sample_rate, gain_uv_per_bit, ...)
    gt_spikes.csv    unit_id,sample_index,channel,amplitude_uv (time order; unit ids from 1)
    units.csv        one row per ground-truth unit; `snr` is SpikeInterface's (see below)
    probe.json       the layout as a probeinterface JSON file
    channels.csv     channel,x_um,y_um
    kit.json         what made it: variant, seed, versions, every parameter

The recordings are made by SpikeInterface's generators (spikeinterface.core.generate:
generate_templates, synthesize_poisson_spike_vector, NoiseGeneratorRecording,
InjectTemplatesRecording), not by spikeline's simulator. Not in SpikeInterface and written
here: LFP, DC offsets and mains (variant lfp), 1/f noise (variant pink), bursts and slow
amplitude drift (variant burst), real waveforms loaded from a public library (variant real).

SNR, the SpikeInterface way (spikeinterface/metrics/quality/misc_metrics.py, compute_snrs,
0.104.8 defaults peak_sign="both", peak_mode="extremum", operator="median"): the recording
as written (int16 × gain) is band-passed with spikeinterface.preprocessing.bandpass_filter
(300-6000 Hz, 5th-order Butterworth, forward-backward), a SortingAnalyzer computes the
median waveform of up to 500 random spikes per unit (-1 ms .. +2 ms), snr = |extremum of that
template on its extremum channel| / noise level of that channel (get_noise_levels, MAD:
median(|x - median x|) / 0.6745 over random chunks).

Requirements: Debian's python3-numpy, python3-scipy, python3-zarr, python3-requests, and
SpikeInterface 0.104.8 + probeinterface 0.3.2 on PYTHONPATH. Either

    pip install spikeinterface==0.104.8 probeinterface==0.3.2
or
    git clone --branch 0.104.8 https://github.com/SpikeInterface/spikeinterface /work/ext/spikeinterface
    git clone --branch 0.3.2 https://github.com/SpikeInterface/probeinterface /work/ext/probeinterface
    scripts/gtkit/setup-ext.sh /work/ext   # package metadata for importlib, see the script
    export PYTHONPATH=/work/ext/spikeinterface/src:/work/ext/probeinterface/src:/work/ext/meta

The real waveforms (variant real) come from the WaveMAP paper's data (Lee et al. 2021, eLife
10:e67490; github.com/EricKenjiLee/WaveMAP_Paper, MIT licence, file data/full_data.npy: 625
mean waveforms of macaque premotor cortex single units, 48 samples at 30 kHz). Pass its path
with GTKIT_WAVEFORMS=/path/to/full_data.npy (setup-ext.sh puts it in /work/ext/waveforms).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

FS = 30000.0
GAIN = 0.195  # µV per count, as Intan headstages and spikeline sim
UTAH_PITCH = 400.0
DENSE_DX, DENSE_DY = 22.0, 25.0
SNR_RANGE = (3.0, 25.0)
RATE_RANGE = (1.0, 20.0)
MS_BEFORE, MS_AFTER = 1.0, 3.0  # generate_templates window, as generate_ground_truth_recording
UPSAMPLE = 8  # sub-sample jitter: each spike uses one of 8 phases of its template
REFRACTORY_MS = 4.0  # synthesize_poisson_spike_vector's default

# Variants of the kit. Each is generated for every seed.
VARIANTS = {
    "white": "Utah-like 4x4 (400 µm), 2-3 units per electrode, generate_templates shapes, white noise",
    "lfp": "the same recording as white (same seed) plus LFP, DC offsets and 60/180/300 Hz mains",
    "amp": "units on one electrode share one shape and differ mainly in amplitude (SNR ratio 1.4-2.0)",
    "real": "real in-vivo mean waveforms (WaveMAP library), clearly different shapes at similar SNR per electrode",
    "pink": "generate_templates shapes, coloured (1/f + white floor) noise",
    "burst": "generate_templates shapes, white noise, half the units bursting (2-5 spikes, 3-10 ms ISI, decrement), slow amplitude drift ±30 %",
    "dense": "2 x 16 staggered probe (22 µm x 25 µm), 40 units, spikes on several channels, white noise",
}
QUICK_SEEDS = [1]
DEFAULT_SEEDS = [1, 2, 3]
DENSE_SEEDS = [1, 2]


def die(msg):
    print("gtkit: " + msg, file=sys.stderr)
    sys.exit(2)


def import_si():
    try:
        import spikeinterface  # noqa: F401
        import probeinterface  # noqa: F401
        from spikeinterface.core import generate  # noqa: F401
        import spikeinterface.preprocessing  # noqa: F401
    except Exception as e:  # ImportError or importlib metadata errors
        die(
            "SpikeInterface 0.104.8 and probeinterface 0.3.2 are needed (%s: %s).\n"
            "  Get them with: pip install spikeinterface==0.104.8 probeinterface==0.3.2\n"
            "  or from source: scripts/gtkit/setup-ext.sh /work/ext (clones both tags; see docs/gtkit.md)\n"
            "  then: export PYTHONPATH=/work/ext/spikeinterface/src:/work/ext/probeinterface/src:/work/ext/meta"
            % (type(e).__name__, e)
        )


def recording_names(seeds, quick, only):
    names = []
    for v in VARIANTS:
        if only and v not in only:
            continue
        ss = QUICK_SEEDS if quick else (seeds if seeds else (DENSE_SEEDS if v == "dense" else DEFAULT_SEEDS))
        for s in ss:
            names.append((v, s, "%s-s%d" % (v, s)))
    return names


# ---------------------------------------------------------------- layouts


def utah_layout():
    """4 x 4 grid, 400 µm pitch; channel = row * 4 + column."""
    pos = np.array([[c * UTAH_PITCH, r * UTAH_PITCH] for r in range(4) for c in range(4)], dtype=float)
    return pos


def dense_layout():
    """2 x 16 staggered: column 0 at x=0, column 1 at x=22 µm shifted 12.5 µm in y; rows 25 µm
    apart. Channel 2i is row i column 0, channel 2i+1 row i column 1."""
    pos = []
    for r in range(16):
        pos.append([0.0, r * DENSE_DY])
        pos.append([DENSE_DX, r * DENSE_DY + DENSE_DY / 2])
    return np.array(pos, dtype=float)


def write_probe(d, pos, name, radius):
    from probeinterface import Probe, ProbeGroup, write_probeinterface

    probe = Probe(ndim=2, si_units="um", name=name, manufacturer="gtkit")
    probe.set_contacts(positions=pos, shapes="circle", shape_params={"radius": radius})
    probe.set_device_channel_indices(np.arange(len(pos)))
    probe.set_contact_ids([str(i) for i in range(len(pos))])
    pg = ProbeGroup()
    pg.add_probe(probe)
    write_probeinterface(os.path.join(d, "probe.json"), pg)
    with open(os.path.join(d, "channels.csv"), "w") as f:
        f.write("channel,x_um,y_um\n")
        for i, (x, y) in enumerate(pos):
            f.write("%d,%g,%g\n" % (i, x, y))


# ---------------------------------------------------------------- units and templates


def log_uniform(rng, lo, hi, n=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def generated_templates(rng, pos, locs, unit_params):
    """generate_templates with 8 sub-sample phases: (units, samples, channels, 8)."""
    from spikeinterface.core.generate import generate_templates

    return generate_templates(
        pos,
        locs,
        FS,
        MS_BEFORE,
        MS_AFTER,
        seed=int(rng.integers(2**31)),
        upsample_factor=UPSAMPLE,
        unit_params=unit_params,
    ).astype(np.float32)


def utah_units(rng, variant):
    """Units of a Utah-like recording: 2-3 per electrode. Returns per-unit main channel, 3-D
    location, target SNR, firing rate, and the unit_params of generate_templates (a dict of
    per-unit arrays) or real-waveform indices."""
    pos = utah_layout()
    chans, snrs = [], []
    for ch in range(len(pos)):
        k = int(rng.integers(2, 4))
        if variant == "amp":
            # one amplitude ladder per electrode: each unit 1.4-2.0 x the previous
            base = log_uniform(rng, 3.0, 9.0)
            s = [base]
            for _ in range(k - 1):
                s.append(s[-1] * rng.uniform(1.4, 2.0))
            s = [min(x, SNR_RANGE[1]) for x in s]
        elif variant == "real":
            # similar amplitude on one electrode: a common level ±15 %
            base = log_uniform(rng, 3.5, 21.0)
            s = list(base * rng.uniform(0.85, 1.15, k))
        else:
            s = list(log_uniform(rng, SNR_RANGE[0], SNR_RANGE[1], k))
        chans += [ch] * k
        snrs += s
    n = len(chans)
    chans = np.array(chans)
    locs = np.zeros((n, 3))
    locs[:, :2] = pos[chans] + rng.uniform(-20, 20, (n, 2))
    locs[:, 2] = rng.uniform(15, 50, n)
    rates = log_uniform(rng, RATE_RANGE[0], RATE_RANGE[1], n)
    return chans, locs, np.array(snrs), rates


def shape_params(rng, n, chans, variant):
    """generate_templates unit_params (SpikeInterface's default ranges,
    default_unit_params_range in generate.py). For variant amp, the units of one electrode share
    one shape (each parameter within ±3 % of the electrode's)."""
    from spikeinterface.core.generate import default_unit_params_range

    keys = ["depolarization_ms", "repolarization_ms", "recovery_ms", "positive_amplitude", "smooth_ms"]
    p = {}
    for k in keys:
        lo, hi = default_unit_params_range[k]
        if variant == "amp":
            per_ch = rng.uniform(lo, hi, chans.max() + 1)
            p[k] = per_ch[chans] * rng.uniform(0.97, 1.03, n)
        else:
            p[k] = rng.uniform(lo, hi, n)
    p["alpha"] = np.ones(n)  # amplitude is set afterwards from the target SNR
    p["spatial_decay"] = rng.uniform(*default_unit_params_range["spatial_decay"], n)
    return p


def fractional_phases(wf, up):
    """(samples,) -> (samples, up): phase f delays wf by f/up samples (FFT shift), as
    generate_templates' upsampled phases."""
    n = len(wf)
    F = np.fft.rfft(wf)
    omega = 2 * np.pi * np.fft.rfftfreq(n)
    out = np.empty((n, up), dtype=np.float32)
    for f in range(up):
        out[:, f] = np.fft.irfft(F * np.exp(-1j * omega * (f / up)), n=n)
    return out


def load_real_waveforms():
    path = os.environ.get("GTKIT_WAVEFORMS", "/work/ext/waveforms/full_data.npy")
    if not os.path.exists(path):
        die(
            "variant real needs the WaveMAP waveform library: %s not found.\n"
            "  scripts/gtkit/setup-ext.sh /work/ext fetches it (data/full_data.npy of\n"
            "  github.com/EricKenjiLee/WaveMAP_Paper), or set GTKIT_WAVEFORMS=/path/to/full_data.npy" % path
        )
    w = np.load(path).astype(np.float64)
    if w.ndim != 2 or w.shape[1] != 48:
        die("%s: want (units, 48) mean waveforms at 30 kHz, got %s" % (path, w.shape))
    return w, path


def real_template(w):
    """One 48-sample (1.6 ms, trough at sample ~12) waveform -> the generate_templates window
    (1 ms before the trough, 3 ms after): baseline (first 4 samples) removed, trough scaled to
    -1, the last 8 samples tapered to zero (half cosine), zero-padded."""
    nb, na = int(FS * MS_BEFORE / 1000), int(FS * MS_AFTER / 1000)
    w = w - w[:4].mean()
    t = int(np.argmin(w))
    w = w / -w[t]
    taper = np.ones(len(w))
    taper[-8:] = 0.5 * (1 + np.cos(np.linspace(0, np.pi, 8)))
    taper[:3] = 0.5 * (1 - np.cos(np.linspace(0, np.pi, 3)))
    w = w * taper
    out = np.zeros(nb + na)
    lo = nb - t
    out[lo : lo + len(w)] = w
    return out


def pick_real_shapes(rng, lib, chans):
    """Per electrode, 2-3 library waveforms that differ clearly in shape: the band-passed,
    trough-normalised waveforms of every pair are at normalised distance >= 0.35
    (||a-b|| / sqrt(||a|| ||b||)). Returns library indices per unit."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(5, [300, 6000], btype="bandpass", fs=FS, output="sos")
    cands = np.array([real_template(w) for w in lib])
    bp = sosfiltfilt(sos, np.pad(cands, ((0, 0), (60, 60))), axis=1)
    bp /= np.abs(bp.min(axis=1, keepdims=True))
    ok = np.isfinite(bp).all(axis=1) & (np.abs(lib).max(axis=1) > 0)
    idx = []
    for ch in np.unique(chans):
        k = int(np.sum(chans == ch))
        for _ in range(10000):
            pick = rng.choice(np.flatnonzero(ok), k, replace=False)
            good = True
            for i in range(k):
                for j in range(i + 1, k):
                    a, b = bp[pick[i]], bp[pick[j]]
                    if np.linalg.norm(a - b) / np.sqrt(np.linalg.norm(a) * np.linalg.norm(b)) < 0.35:
                        good = False
            if good:
                break
        idx += list(pick)
    return np.array(idx), cands


# ---------------------------------------------------------------- spike trains


def poisson_trains(rng, rates, duration):
    from spikeinterface.core.generate import synthesize_poisson_spike_vector

    frames, units = synthesize_poisson_spike_vector(
        num_units=len(rates),
        sampling_frequency=FS,
        duration=duration,
        refractory_period_ms=REFRACTORY_MS,
        firing_rates=rates,
        seed=int(rng.integers(2**31)),
    )
    return frames.astype(np.int64), units.astype(np.int64)


def burst_trains(rng, rates, duration, bursting):
    """Poisson burst onsets (synthesize_poisson_spike_vector); for a bursting unit each onset
    starts, with probability 0.4, a burst of 2-5 spikes at 3-10 ms intervals whose amplitudes
    decrease ×0.8 per spike (as CA1/cortical complex spikes). The onset rate is lowered so
    the mean rate stays the unit's. Returns frames, units, per-spike burst amplitude factor."""
    p_burst, mean_extra = 0.4, 2.5  # 2-5 spikes: 1-4 extra, mean 2.5
    onset = np.where(bursting, rates / (1 + p_burst * mean_extra), rates)
    f0, u0 = poisson_trains(rng, onset, duration)
    frames, units, amp = [f0], [u0], [np.ones(len(f0))]
    n = int(duration * FS)
    for i in np.flatnonzero(bursting[u0] & (rng.random(len(f0)) < p_burst)):
        extra = int(rng.integers(1, 5))
        t = f0[i]
        for k in range(1, extra + 1):
            t = t + int(rng.uniform(3e-3, 10e-3) * FS)
            if t >= n - int(FS * MS_AFTER / 1000) - 1:
                break
            frames.append(np.array([t]))
            units.append(np.array([u0[i]]))
            amp.append(np.array([0.8**k]))
    frames, units, amp = np.concatenate(frames), np.concatenate(units), np.concatenate(amp)
    o = np.lexsort((units, frames))
    frames, units, amp = frames[o], units[o], amp[o]
    # A burst spike may fall within the refractory period of another onset of the same unit:
    # drop the later one (the unit's train stays refractory).
    keep = np.ones(len(frames), bool)
    last = {}
    ref = int(REFRACTORY_MS * 1e-3 * FS) // 2  # bursts themselves are >= 3 ms apart
    for i, (t, u) in enumerate(zip(frames, units)):
        if u in last and t - last[u] < ref:
            keep[i] = False
            continue
        last[u] = t
    return frames[keep], units[keep], amp[keep]


# ---------------------------------------------------------------- backgrounds


def white_noise(n_ch, duration, sigma, seed):
    """SpikeInterface's NoiseGeneratorRecording (on_the_fly: no tiled repeats), µV."""
    from spikeinterface.core.generate import NoiseGeneratorRecording

    return NoiseGeneratorRecording(
        num_channels=n_ch,
        sampling_frequency=FS,
        durations=[duration],
        noise_levels=sigma,
        dtype="float32",
        seed=seed,
        strategy="on_the_fly",
    )


def pink_noise(rng, n_ch, n, sigma, corner_hz=2000.0):
    """Coloured noise per channel: power spectrum ∝ 1 + corner/f (1/f below `corner_hz`,
    white above), FFT-shaped from white Gaussian noise, scaled to rms `sigma` µV over the
    full band. (Not in SpikeInterface's generators.)"""
    out = np.empty((n, n_ch), dtype=np.float32)
    f = np.fft.rfftfreq(n, 1 / FS)
    f[0] = f[1]
    shape = np.sqrt(1 + corner_hz / f)
    shape[0] = 0
    for c in range(n_ch):
        x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shape, n=n)
        out[:, c] = x * (sigma / x.std())
    return out


def lfp_dc_mains(rng, n_ch, n):
    """LFP, DC offsets and mains, µV, as a function producing chunk [s, e).
    LFP: a common 1/f^2 signal of 1-150 Hz (rms 120 µV) plus a 6-9 Hz theta (60 µV), both
    scaled per channel by 0.6-1.4, plus an independent 1/f^2 part per channel (rms 30 µV),
    computed at 1 kHz and linearly interpolated. DC: ±1.5 mV per channel. Mains: 60 Hz
    20-80 µV, 180 Hz 5-20 µV, 300 Hz 2-8 µV, one phase per channel and harmonic."""
    lfs = 1000.0
    m = int(n / FS * lfs) + 2

    def brown(k):
        f = np.fft.rfftfreq(m, 1 / lfs)
        s = np.zeros_like(f)
        band = (f >= 1) & (f <= 150)
        s[band] = 1 / f[band]
        x = np.fft.irfft(np.fft.rfft(rng.standard_normal((k, m)), axis=1) * s, n=m, axis=1)
        return x / x.std(axis=1, keepdims=True)

    tl = np.arange(m) / lfs
    theta = np.sin(2 * np.pi * np.cumsum(rng.uniform(6, 9, m)) / lfs)
    common = 120 * brown(1)[0] + 60 * theta
    w = rng.uniform(0.6, 1.4, n_ch)
    own = 30 * brown(n_ch)
    lfp = (w[:, None] * common[None, :] + own).T  # (m, n_ch)
    dc = rng.uniform(-1500, 1500, n_ch)
    mains = [(60.0, rng.uniform(20, 80, n_ch)), (180.0, rng.uniform(5, 20, n_ch)), (300.0, rng.uniform(2, 8, n_ch))]
    phases = [rng.uniform(0, 2 * np.pi, n_ch) for _ in mains]

    def chunk(s, e):
        t = np.arange(s, e) / FS
        x = np.empty((e - s, n_ch))
        for c in range(n_ch):
            x[:, c] = np.interp(t, tl, lfp[:, c])
        x += dc[None, :]
        for (f0, a), ph in zip(mains, phases):
            x += a[None, :] * np.sin(2 * np.pi * f0 * t[:, None] + ph[None, :])
        return x.astype(np.float32)

    return chunk, {"dc_uv": dc.round(1).tolist(), "mains_hz": [60, 180, 300], "lfp_rms_uv": 120, "theta_uv": 60}


# ---------------------------------------------------------------- measuring


def band_noise(traces):
    """MAD noise (µV) per channel of traces after SpikeInterface's default bandpass_filter."""
    from spikeinterface.core import NumpyRecording, get_noise_levels
    from spikeinterface.preprocessing import bandpass_filter

    rec = bandpass_filter(NumpyRecording([traces], FS), freq_min=300.0, freq_max=6000.0)
    return np.asarray(get_noise_levels(rec, return_in_uV=False, method="mad", random_slices_kwargs=dict(seed=0)))


def band_templates(templates):
    """The mean over phases of templates (units, samples, channels, phases) after the same
    band-pass (zero-phase, zero-padded): (units, samples, channels)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(5, [300, 6000], btype="bandpass", fs=FS, output="sos")
    t = templates.mean(axis=3)
    pad = 300
    return sosfiltfilt(sos, np.pad(t, ((0, 0), (pad, pad), (0, 0))), axis=1)[:, pad:-pad]


def noise_autocov(bg, lags):
    """Autocovariance (lags 0..lags-1) per channel of the band-passed background: (channels, lags)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(5, [300, 6000], btype="bandpass", fs=FS, output="sos")
    x = sosfiltfilt(sos, bg, axis=0)
    x = x[int(0.1 * FS) : -int(0.1 * FS)]  # filter edges
    x = x - x.mean(axis=0)
    n = len(x)
    return np.array([[np.dot(x[: n - k, c], x[k:, c]) / (n - k) for k in range(lags)] for c in range(x.shape[1])])


def separability(bp, nb, acov, jitter=0.1):
    """For every unit, the other unit it is hardest to tell apart from, and the d' of the best
    linear rule between the two (Fisher's discriminant): d'^2 = D' C^-1 D, with D the
    difference of the two band-passed mean templates over -0.5 .. +1 ms around the spike
    sample on the channels where either template reaches 10 % of the pair's extremum (at
    most 8), and C the band-passed background's covariance (independent channels, Toeplitz in
    time) plus the amplitude jitter's, jitter^2 (a a' + b b') / 2. Units that share no
    channel are not compared (inf). Two units are told apart with an error of about
    Phi(-d'/2): d' 2 -> 16 %, 3 -> 7 %, 4 -> 2.3 %, 6 -> 0.1 %."""
    from scipy.linalg import toeplitz

    w = np.arange(nb - int(0.5e-3 * FS), nb + int(1e-3 * FS))
    nw = len(w)
    blocks = [toeplitz(acov[c, :nw]) for c in range(acov.shape[0])]
    nu = bp.shape[0]
    best = np.full(nu, np.inf)
    who = np.zeros(nu, int)
    peak = np.abs(bp[:, w, :]).max(axis=1)  # (units, channels)
    for u in range(nu):
        for v in range(nu):
            if v == u:
                continue
            m = np.maximum(peak[u], peak[v])
            shared = (peak[u] >= 0.1 * peak[u].max()) & (peak[v] >= 0.1 * peak[v].max())
            if not shared.any():
                continue
            chs = np.argsort(-m)[:8]
            chs = chs[m[chs] >= 0.1 * m.max()]
            a = bp[u][np.ix_(w, chs)].T.ravel()
            b = bp[v][np.ix_(w, chs)].T.ravel()
            C = np.zeros((len(a), len(a)))
            for i, c in enumerate(chs):
                C[i * nw : (i + 1) * nw, i * nw : (i + 1) * nw] = blocks[c]
            C += jitter**2 * (np.outer(a, a) + np.outer(b, b)) / 2
            d = a - b
            dp = float(np.sqrt(d @ np.linalg.solve(C, d)))
            if dp < best[u]:
                best[u], who[u] = dp, v
    return who, best


def measure_snr(d, n_ch, frames, units, n_units, seed):
    """SNR as SpikeInterface's compute_snrs (spikeinterface/metrics/quality/misc_metrics.py)
    with its 0.104.8 defaults, on the file as written: the recording is band-passed with
    spikeinterface.preprocessing.bandpass_filter (300-6000 Hz), the noise of each channel is
    get_noise_levels (MAD), the template is the median waveform (-1 ms .. +2 ms) of up to 500
    spikes per unit drawn uniformly (the analyzer's random_spikes, waveforms and median
    templates), and snr = |template extremum over time and channels| / that channel's noise
    (peak_sign="both", peak_mode="extremum"). The analyzer itself is not used because its
    random_spikes step imports spikeinterface.widgets, which needs pydantic 2 (Debian 12 has 1).
    Returns snr, |extremum| µV, extremum channel and noise µV per unit."""
    from spikeinterface.core import BinaryRecordingExtractor, get_noise_levels
    from spikeinterface.preprocessing import bandpass_filter

    rec = BinaryRecordingExtractor(
        os.path.join(d, "recording.dat"), FS, "int16", num_channels=n_ch, gain_to_uV=GAIN, offset_to_uV=0.0
    )
    rec = bandpass_filter(rec, freq_min=300.0, freq_max=6000.0)
    noise = np.asarray(get_noise_levels(rec, return_in_uV=True, method="mad", random_slices_kwargs=dict(seed=seed)))
    rng = np.random.default_rng(seed)
    nb, na = int(FS * 1e-3), int(FS * 2e-3)
    n = rec.get_num_samples()
    snr, amp, ch = np.zeros(n_units), np.zeros(n_units), np.zeros(n_units, int)
    x = rec.get_traces(start_frame=0, end_frame=n, return_in_uV=True)  # band-passed once
    j = np.arange(-nb, na)
    for u in range(n_units):
        t = frames[(units == u) & (frames >= nb) & (frames < n - na)]
        if len(t) == 0:
            continue
        if len(t) > 500:
            t = np.sort(rng.choice(t, 500, replace=False))
        tpl = np.median(x[t[:, None] + j[None, :]], axis=0)  # (samples, channels)
        c = int(np.argmax(np.abs(tpl).max(axis=0)))
        a = tpl[:, c][np.argmax(np.abs(tpl[:, c]))]
        snr[u], amp[u], ch[u] = abs(a) / noise[c], abs(a), c
    return snr, amp, ch, noise[ch]


# ---------------------------------------------------------------- one recording


def generate(outdir, variant, seed, duration, force):
    import spikeinterface
    import probeinterface
    from spikeinterface.core import NumpyRecording, NumpySorting
    from spikeinterface.core.generate import InjectTemplatesRecording

    name = "%s-s%d" % (variant, seed)
    d = os.path.join(outdir, name)
    if os.path.exists(os.path.join(d, "recording.json")) and not force:
        print("%s: exists, kept (--force regenerates)" % name, flush=True)
        return
    os.makedirs(d, exist_ok=True)
    t0 = time.time()
    n = int(duration * FS)
    # One stream for the units, templates and trains, one for the noise, one for the rest:
    # white and lfp of the same seed share units, trains and noise exactly.
    base = {"white": 0, "lfp": 0, "amp": 2, "real": 3, "pink": 4, "burst": 5, "dense": 6}[variant]
    rng = np.random.default_rng([seed, base, 1])
    noise_seed = int(np.random.default_rng([seed, base, 2]).integers(2**31))
    rng_bg = np.random.default_rng([seed, base, 3])
    info = {
        "variant": variant,
        "description": VARIANTS[variant],
        "seed": seed,
        "duration_s": duration,
        "sample_rate": FS,
        "gain_uv_per_bit": GAIN,
        "generator": "spikeinterface %s, probeinterface %s, scripts/gtkit/gtkit.py"
        % (spikeinterface.__version__, probeinterface.__version__),
        "template_window_ms": [MS_BEFORE, MS_AFTER],
        "subsample_phases": UPSAMPLE,
        "amplitude_jitter": "x N(1, 0.1) per spike",
        "refractory_ms": REFRACTORY_MS,
        "snr_definition": "spikeinterface compute_snrs (peak_sign both, extremum, median template) on the written file band-passed 300-6000 Hz",
    }

    # Layout and units.
    white_sigma = 10.0  # µV rms of the full-band white noise (about 6.2 µV MAD in 300-6000 Hz)
    if variant == "dense":
        pos = dense_layout()
        nu = 40
        locs = np.column_stack(
            [rng.uniform(-15, DENSE_DX + 15, nu), rng.uniform(-10, 15 * DENSE_DY + 22, nu), rng.uniform(10, 45, nu)]
        )
        snr_t = log_uniform(rng, *SNR_RANGE, nu)
        rates = log_uniform(rng, *RATE_RANGE, nu)
        params = shape_params(rng, nu, np.zeros(nu, int), variant)
        templates = generated_templates(rng, pos, locs, params)
        chans = np.argmax(np.abs(templates).max(axis=(1, 3)), axis=1)
        shapes = ["generate_templates"] * nu
        write_probe(d, pos, "gtkit-2x16-staggered", 6.0)
    else:
        pos = utah_layout()
        chans, locs, snr_t, rates = utah_units(rng, variant)
        nu = len(chans)
        if variant == "real":
            lib, lib_path = load_real_waveforms()
            idx, cands = pick_real_shapes(rng, lib, chans)
            nt = int(FS * MS_BEFORE / 1000) + int(FS * MS_AFTER / 1000)
            templates = np.zeros((nu, nt, len(pos), UPSAMPLE), dtype=np.float32)
            for u in range(nu):
                templates[u, :, chans[u], :] = fractional_phases(cands[idx[u]], UPSAMPLE)
            shapes = ["wavemap:%d" % i for i in idx]
            info["waveform_library"] = {
                "source": "github.com/EricKenjiLee/WaveMAP_Paper data/full_data.npy (Lee et al. 2021, eLife 10:e67490, MIT)",
                "path": lib_path,
                "units": int(len(lib)),
                "min_pair_distance": 0.35,
            }
        else:
            params = shape_params(rng, nu, chans, variant)
            templates = generated_templates(rng, pos, locs, params)
            # No cross-talk between electrodes: each unit is seen on its electrode only.
            mask = np.zeros((nu, 1, len(pos), 1), dtype=np.float32)
            mask[np.arange(nu), 0, chans, 0] = 1
            templates *= mask
            shapes = ["generate_templates"] * nu
        write_probe(d, pos, "gtkit-utah-4x4", 10.0)
    n_ch = len(pos)

    # Spike trains and per-spike amplitude factors.
    if variant == "burst":
        bursting = rng.random(nu) < 0.5
        frames, units, amp = burst_trains(rng, rates, duration, bursting)
        drift_end = rng.uniform(0.7, 1.3, nu)  # linear amplitude drift from 1 to drift_end
        amp = amp * (1 + (drift_end[units] - 1) * frames / n)
        info["bursting_units"] = [int(u) + 1 for u in np.flatnonzero(bursting)]
        info["drift"] = "amplitude x linear 1 -> drift_end over the recording (units.csv drift_end)"
    else:
        frames, units = poisson_trains(rng, rates, duration)
        amp = np.ones(len(frames))
        bursting = np.zeros(nu, bool)
        drift_end = np.ones(nu)
    nb = int(FS * MS_BEFORE / 1000)
    na = templates.shape[1] - nb
    inside = (frames >= nb) & (frames < n - na)
    frames, units, amp = frames[inside], units[inside], amp[inside]
    amp = (amp * rng.normal(1.0, 0.1, len(frames))).astype(np.float32)
    phase = rng.integers(0, UPSAMPLE, len(frames))

    # Background.
    extra = None
    if variant == "pink":
        bg_arr = pink_noise(rng_bg, n_ch, n, 14.0)
        parent = NumpyRecording([bg_arr], FS)
        info["noise"] = "1/f below 2 kHz, white above, 14 µV rms full band, FFT-shaped per channel"
    else:
        parent = white_noise(n_ch, duration, white_sigma, noise_seed)
        info["noise"] = "white Gaussian, %g µV rms full band (NoiseGeneratorRecording on_the_fly)" % white_sigma
    if variant == "lfp":
        extra, ex_info = lfp_dc_mains(rng_bg, n_ch, n)
        info["lfp_dc_mains"] = ex_info

    # Amplitudes from the target SNR: background noise measured as the SNR is (MAD after the
    # band-pass) on 20 s of the background, template extremum after the same band-pass.
    probe_n = min(n, int(20 * FS))
    bg = parent.get_traces(start_frame=0, end_frame=probe_n).astype(np.float64)
    if extra is not None:
        bg = bg + extra(0, probe_n)
    noise = band_noise(bg.astype(np.float32))
    bp = band_templates(templates)
    peaks = np.abs(bp).max(axis=1)
    scale = snr_t * noise[chans] / peaks[np.arange(nu), chans]
    templates *= scale[:, None, None, None].astype(np.float32)
    nn_unit, nn_dprime = separability(bp * scale[:, None, None], nb, noise_autocov(bg, 64))

    sorting = NumpySorting.from_samples_and_labels([frames], [units], FS, unit_ids=np.arange(nu))
    rec = InjectTemplatesRecording(
        sorting, templates, nbefore=nb, amplitude_factor=amp, parent_recording=parent, upsample_vector=phase
    )

    # Write recording.dat in 1 s chunks.
    clipped = 0
    with open(os.path.join(d, "recording.dat"), "wb") as f:
        step = int(FS)
        for s in range(0, n, step):
            e = min(n, s + step)
            x = rec.get_traces(start_frame=s, end_frame=e).astype(np.float64)
            if extra is not None:
                x += extra(s, e)
            c = np.rint(x / GAIN)
            clipped += int(np.sum((c > 32767) | (c < -32768)))
            f.write(np.clip(c, -32768, 32767).astype("<i2").tobytes())
    if clipped:
        print("%s: warning: %d samples clipped to int16" % (name, clipped), file=sys.stderr)
    info["clipped_samples"] = clipped

    # Ground truth.
    ids = units + 1  # spikeline's unit 0 means unsorted
    raw_peak = templates.mean(axis=3)[np.arange(nu), nb, chans]  # trough µV at the spike sample
    with open(os.path.join(d, "gt_spikes.csv"), "w") as f:
        f.write("unit_id,sample_index,channel,amplitude_uv\n")
        for t, u, a in zip(frames, units, amp):
            f.write("%d,%d,%d,%.2f\n" % (u + 1, t, chans[u], raw_peak[u] * a))
    snr, peak_uv, ext_ch, noise_uv = measure_snr(d, n_ch, frames, units, nu, seed)
    counts = np.bincount(units, minlength=nu)
    with open(os.path.join(d, "units.csv"), "w") as f:
        f.write(
            "unit_id,channel,peak_uv,snr,band_peak_uv,noise_uv,target_snr,extremum_channel,"
            "num_spikes,firing_hz,x_um,y_um,z_um,shape,bursting,drift_end,nn_unit,nn_dprime\n"
        )
        for u in range(nu):
            f.write(
                "%d,%d,%.3f,%.4f,%.3f,%.4f,%.3f,%d,%d,%.4f,%.1f,%.1f,%.1f,%s,%s,%.3f,%s,%.2f\n"
                % (
                    u + 1,
                    chans[u],
                    raw_peak[u],
                    snr[u],
                    peak_uv[u],
                    noise_uv[u],
                    snr_t[u],
                    ext_ch[u],
                    counts[u],
                    counts[u] / duration,
                    locs[u, 0] if variant != "real" else pos[chans[u], 0],
                    locs[u, 1] if variant != "real" else pos[chans[u], 1],
                    locs[u, 2] if variant != "real" else 0,
                    shapes[u],
                    str(bool(bursting[u])).lower(),
                    drift_end[u],
                    str(nn_unit[u] + 1) if np.isfinite(nn_dprime[u]) else "",
                    nn_dprime[u],
                )
            )
    info["units"] = int(nu)
    info["spikes"] = int(len(frames))
    info["seconds_to_generate"] = round(time.time() - t0, 1)
    with open(os.path.join(d, "kit.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    # The sidecar last: its presence says the recording is complete.
    meta = {
        "n_channels": n_ch,
        "sample_rate": FS,
        "gain_uv_per_bit": GAIN,
        "n_samples": n,
        "seed": seed,
        "data_file": "recording.dat",
        "dtype": "int16",
        "layout": "time-major",
    }
    with open(os.path.join(d, "recording.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(
        "%s: %d units, %d spikes, SNR %.1f-%.1f (%d >= 5), %.0f s"
        % (name, nu, len(frames), snr.min(), snr.max(), int(np.sum(snr >= 5)), time.time() - t0),
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["generate", "list"])
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--quick", action="store_true", help="one seed per variant")
    ap.add_argument("--only", default="", help="comma-separated variants (%s)" % ",".join(VARIANTS))
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default 1,2,3; dense 1,2)")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds per recording (default 120)")
    ap.add_argument("--force", action="store_true", help="regenerate recordings that exist")
    a = ap.parse_args()
    only = [v for v in a.only.split(",") if v]
    for v in only:
        if v not in VARIANTS:
            die("--only: unknown variant %r (have %s)" % (v, ", ".join(VARIANTS)))
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s]
    except ValueError:
        die("--seeds: want comma-separated integers, got %r" % a.seeds)
    names = recording_names(seeds, a.quick, only)
    if a.cmd == "list":
        for v, s, name in names:
            print(name)
        return
    if not a.outdir:
        die("generate needs OUTDIR")
    if a.duration < 5:
        die("--duration %g: want at least 5 s" % a.duration)
    import_si()
    import spikeinterface

    spikeinterface.set_global_job_kwargs(n_jobs=1, progress_bar=False)
    os.makedirs(a.outdir, exist_ok=True)
    for v, s, name in names:
        generate(a.outdir, v, s, a.duration, a.force)


if __name__ == "__main__":
    main()
