// Package sim is a synthetic headstage with ground truth.
//
// It generates realistic extracellular recordings (units with distinct
// waveforms, refractory Poisson firing with bursts, background noise with a
// realistic spectrum, multi-unit hum, LFP, mains, artifacts and drift) whose
// firing is tuned to a simulated 2-D behaviour. It runs in process as a
// device.Source, or as a headstage emulator serving the wire protocol on a
// pseudo-terminal, a TCP socket or a file, with fault injection. It is the
// httptest of this project.
//
// # Using the generator
//
// [New] builds a [Sim] from a [Config] whose zero fields take defaults
// (30 kHz, 0.195 µV/count, 0–4 units per channel, 7 µV band noise…).
// [Sim.Next] returns time-major int16 [device.Block]s forever, or until
// Config.Duration samples. Between calls, [Sim.TakeSpikes] and
// [Sim.TakeBehaviour] drain the ground truth for the samples delivered so
// far, and [Sim.Units] describes every unit. [WriteRecording] writes a
// recording and its ground truth to a directory (the `spikeline sim`
// command), generating on all cores while a writer goroutine writes the
// previous runs of chunks (the raw data by direct I/O on request);
// plots.Simulation draws a few seconds of it.
//
// Everything is a pure function of the Config: the same seed gives the
// same bytes whatever the block size and the number of cores (the
// generator works in fixed internal chunks of about 9 ms and slices Blocks
// out of them). Channels are generated in parallel, one goroutine per
// core, each on its own range of channels (see Speed below). The methods
// of a Sim may be called from several goroutines, e.g. an emulator
// pumping Next while a test drains TakeSpikes.
//
// # The headstage emulator
//
// [NewEmulator] serves any device.Source as a headstage speaking the wire
// protocol (docs/protocol.md): data frames of EmulatorConfig.FrameSamples,
// paced at real time (or Speed×, or Unpaced), and replies to host commands
// — start/stop, set channels (the emulator subsets them), set rate (if
// the Source is a [RateSetter]), ping, stimulate (acknowledged, passed to
// a [Stimulator]), info (JSON). [Emulator.ServePTY] publishes a
// pseudo-terminal at a stable symlink that an unplug removes and re-points
// to a fresh pty, like a USB device leaving and returning;
// [Emulator.ServeTCP] serves one host at a time; [Emulator.WriteStream]
// writes a capture. [Faults] are seeded and scheduled in device time:
// byte corruption, dropped frames, unplugs, counter resets; a host that
// stops reading overflows the device buffer (MaxLag). The device clock
// runs on while the host is away, so the 64-bit counter tells the host
// exactly what it lost, and EmulatorConfig.Trace reports every frame's
// fate as ground truth. [TestPattern] is a Source whose every sample can
// be checked (`spikeline sim serve --pattern`).
//
// The emulator speaks version 2 of the protocol too: the host selects the
// lossless, spike-event or feature mode and sets thresholds, snippets and
// bins by command (set_mode, set_thresholds, set_snippet, set_features),
// and the emulator sends what device.Compressor and device.Detector — the
// algorithm of the C reference headstage — make of the samples it would
// have sent, preceded by a settings frame whenever the settings change, a
// host connects or streaming starts. It sends version-2 frames only to a
// host that has sent a version-2 command. Link faults apply to every
// frame alike; the detector runs on frames the link loses too, as a
// device's would.
//
// # The signal
//
// On channel c at sample n, in µV before quantisation to counts of Gain:
//
//	x_c(n) = noise_c(n) + Σ_units spikes_u(n) + lfp_g(n) + a_g·mains(n) + k_g·artifact(n) + dc_c
//
// where g is the channel's group of GroupChannels adjacent channels
// (a shank neighbourhood sharing LFP, mains pick-up and artifact
// coupling), and saturates at the int16 range like a real amplifier.
//
//   - noise_c: white + 1/f noise (equal power at 500 Hz), rolled off by a
//     3rd-order 7.5 kHz anti-alias low-pass and a 0.5 Hz high-pass, plus
//     multi-unit hum (40 small distant units per noise tile, HumFraction of
//     the band variance). It is the sum of two precomputed, seamlessly
//     periodic tiles (lengths 2^14 and 3^9, coprime: the sum repeats after
//     3 h at 30 kHz) read at per-channel offsets. Each tile is
//     calibrated so that its rms after the 300–6000 Hz band-pass (the
//     sorter's 3rd-order Butterworth) is exact; [Sim.NoiseUV] reports each
//     channel's band rms, which varies ±NoiseSpread around NoiseUV. Noise of
//     different channels is uncorrelated at equal times; channels that
//     share a tile (4 of each length) see it at offsets spread evenly around
//     the tile, so with many channels their noise correlates by 0.5 at one
//     lag of a few ms (2 ms for 1,024 channels). That, and the periodicity
//     of each tile (0.55 s and 0.66 s at 30 kHz), is the price of generating
//     1,024 channels faster than real time without per-sample random draws.
//   - spikes_u: the unit's raw template (below) at each spike, at a random
//     sub-sample phase (one of 4), scaled by drift and burst attenuation.
//   - lfp_g: 1/f² noise with theta (7 Hz) and beta (20 Hz) rhythms,
//     low-passed at 100 Hz, stepped at 1 kHz and interpolated, rms LFPUV;
//     0.8 of it is common to all groups, 0.6 its own (unit variance).
//   - mains: MainsUV·(sin(2πf n/rate + φ₁) + sin(3·2πf n/rate + φ₃)/3),
//     with a_g uniform in 0.5–1.5.
//   - artifact: movement artifacts at Poisson times (ArtifactRate per s),
//     P·(1−e^{−t/τr})·e^{−t/τd} normalised to a peak P of ±ArtifactUV·
//     U(0.6, 1.4), τr 0.2–1 ms, τd 5–30 ms, coupling k_g uniform in 0.5–1.5.
//     [Sim.Artifacts] lists them.
//   - stimulation: [Sim.Stimulate] (the emulator's OpStimulate) adds a
//     train's artifact: 500 µV per µA on the electrode during each phase
//     (saturating above ~13 µA), an exponential relaxation after it, and
//     0.3/(1+distance) of it on the other channels of the group.
//   - dc_c: uniform in ±DCOffsetUV.
//
// # Units
//
// Each channel has MinUnits..MaxUnits units (uniform), recorded on that
// channel only. A template is
//
//	w(t) = A·[−g(t) + P·e^{−(t−tp)²/2σp²} + Q·e^{−(t+tq)²/2σq²}]
//
// shifted and normalised so that its minimum is exactly −A at t = 0, where
// g is a Gaussian trough with different widths before and after the
// minimum, P the repolarisation peak and Q an optional initial positive
// phase (half of the units are triphasic). Narrow (fast-spiking, 30%)
// units have trough-to-peak times of 0.25–0.45 ms and fire at 5–30 Hz;
// broad units 0.45–1.2 ms and 1–15 Hz. A is log-uniform in
// MinPeakUV..MaxPeakUV (30–300 µV); units of the same kind on a channel
// differ in amplitude by at least 15% (shapes may still be similar). The
// window is −1 to +2.5 ms with tapered ends. Unit.SNR is |BandPeakUV| /
// NoiseUV: the template's extremum after the causal 300–6000 Hz band-pass
// over the channel's band noise rms.
//
// Spike times come from an inhomogeneous Poisson process with an absolute
// refractory period R (1.5–2.5 ms broad, 1–1.5 ms narrow): after a spike
// the hazard is zero for R, then accumulates at λ(t) until it reaches a
// fresh Exp(1) draw. A unit with λ constant therefore fires at λ/(1+λR).
// Broad units burst (40% of them, BurstProb 0.05–0.3): after a spike, with
// probability BurstProb, 1–3 more spikes follow at 3–7 ms intervals with
// amplitudes 0.85^k; the Poisson process resumes after the burst. Drift
// scales every spike by 1 + Drift·sin(2π t/T + φ), T of 2–10 minutes.
//
// A ground-truth spike's Sample is the sample of the minimum of its
// rendered raw waveform, and its Amplitude that minimum in µV.
//
// # Behaviour and tuning
//
// The behaviour is a 2-D hand velocity v = (vx, vy) in cm/s, held
// constant over steps of 1/Behaviour.Rate (1 ms). With Model "ou" each
// component is an Ornstein–Uhlenbeck process, exactly discretised:
//
//	v[k+1] = ρ·v[k] + V·√(1−ρ²)·ε,  ρ = e^{−Δt/τ},  ε ~ N(0, 1)
//
// so each component is stationary N(0, V²) with autocorrelation e^{−|Δ|/τ}
// (V = Behaviour.Speed, τ = Behaviour.Tau). With Model "reach" the hand
// holds at the centre (0.3–0.6 s), reaches to one of 8 targets 45° apart
// along a minimum-jerk profile of 0.5–0.8 s with peak speed V, holds
// 0.3–0.6 s and returns.
//
// Unit u's firing rate (Hz) at time t is the rectified cosine tuning
//
//	λ_u(t) = max(0, b_u + m_u·(vx(t+L)·cos θ_u + vy(t+L)·sin θ_u) / V)
//
// with baseline b_u (Unit.BaselineHz), modulation depth m_u
// (Unit.ModulationHz, 0.5–1.2·b_u for tuned units, 0 for the untuned
// 1−TunedFraction), preferred direction θ_u (Unit.PreferredDir, uniform)
// and lead L (Behaviour.Lead, default 0). For "ou", (v·d)/V is N(0, 1), so
// a tuned unit's rate is b + m·N(0,1) rectified; the expected spike count
// in a bin is ∫λ dt reduced by the refractory factor above (and raised by
// bursts). That is everything a decoder needs to compute its optimum.
//
// # Speed
//
// The target is 20× real time for 1,024 channels at 30 kHz on two cores,
// measured by BenchmarkGenerate (x_realtime; cpu_ns/sample and
// x_realtime_2cpu give the same from CPU time, for a shared machine):
//
//	go test ./sim -run XXX -bench 'Generate/1024|Mix4' -benchtime 600x -count 5
//
// Each internal chunk (270 samples at 30 kHz) is split across the workers
// by channel range, one fan-out per chunk when the ranges are whole groups
// of channels. Per channel-sample, the work is: the mix of two noise
// tiles, the group's slow signal (LFP, mains, artifacts: fillGroups, once
// per group of channels) and the DC, with conversion to int16; then the
// spikes drawn on top (drawSpikes, whose cost is mostly fetching templates:
// four sub-sample phases of float32 per unit, megabytes for 1,024
// channels); and every four chunks each unit's spike times (spikesOf).
// The mix is the hot loop: mix in sim.go is the scalar reference, mix4
// four channels per 64-bit store in Go, and on amd64 mixRows8
// (mix_amd64.s, SSE2, off with -tags purego) eight samples of all of a
// worker's channels per call, four channels transposed into each 64-bit
// store, so that the rows of the time-major chunk fill in order (a single
// channel's column over a chunk, rows 2·C bytes apart, falls into a
// handful of cache sets when C is a power of two). TestGoldenBytes pins
// the output for fixed seeds, with and without the assembly.
//
// Measured on the shared 2-core development machine (AMD EPYC, 1 MiB L2
// per core, load average 4–6 from other work), ten runs alternating the
// pure-Go generator and this one: CPU per channel-sample 3.2–5.0 ns
// before, 2.5–3.2 ns now, i.e. x_realtime_2cpu 13–20 before, 20–27 now;
// the mix alone 0.56–3.1 ns per sample on one core (0.56–0.79 in the
// quieter second set; 1.6–2.6 ns before). Wall-clock x_realtime on that
// loaded machine was 6–13 (before: 3–10): the 20× target is met in CPU
// terms; in wall time it needs two otherwise idle cores, which this
// machine never had (not measured).
// sim/testdata/generate_benchmark.txt has the raw output.
package sim
