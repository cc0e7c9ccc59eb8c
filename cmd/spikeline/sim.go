package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spikeline/spikeline/plots"
	"github.com/spikeline/spikeline/sim"
)

func init() {
	register(command{
		name:    "sim",
		summary: "write a simulated recording with ground truth (sim serve: emulate a headstage)",
		run:     runSim,
	})
}

// simServe runs "spikeline sim serve"; cmd/spikeline/simserve.go sets it
// from its init so the two files can land independently.
var simServe func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// simFlags registers the realism flags shared by "sim" and "sim serve" on
// fs and returns a function that builds the sim.Config after parsing.
func simFlags(fs *flag.FlagSet, channels0 int) func() (sim.Config, error) {
	channels := fs.Int("channels", channels0, "number of channels")
	seed := fs.Int64("seed", 1, "random seed: same seed and flags give identical bytes")
	rate := fs.Float64("rate", 30000, "sample rate in Hz")
	gain := fs.Float64("gain", 0.195, "µV per count of the int16 samples")
	units := fs.String("units", "0-4", "single units per channel: N or MIN-MAX")
	peak := fs.String("peak", "30-300", "trough amplitude range of the units in µV: MIN-MAX")
	noise := fs.Float64("noise", 7, "background noise rms in the 300–6000 Hz band, µV (0 = none)")
	spread := fs.Float64("noise-spread", 0.15, "channel-to-channel spread of the noise level (fraction)")
	hum := fs.Float64("hum", 0.3, "share of the band noise variance from multi-unit hum (0 = none)")
	lfp := fs.Float64("lfp", 120, "LFP rms in µV (0 = none)")
	noLFP := fs.Bool("no-lfp", false, "no LFP (same as --lfp 0)")
	group := fs.Int("group", 16, "adjacent channels sharing one LFP, mains and artifact coupling")
	mains := fs.Float64("mains", 60, "mains frequency in Hz, 50 or 60 (0 = none)")
	mainsUV := fs.Float64("mains-uv", 20, "mains amplitude in µV")
	dc := fs.Float64("dc", 300, "per-channel DC offsets drawn in ±this many µV (0 = none)")
	artifacts := fs.Float64("artifacts", 0.05, "movement artifacts per second, common to all channels (0 = none)")
	artUV := fs.Float64("artifact-uv", 1500, "typical artifact peak in µV")
	drift := fs.Float64("drift", 0.1, "peak fractional drift of unit amplitudes (0 = none)")
	tuned := fs.Float64("tuned", 0.75, "fraction of units cosine-tuned to the behaviour")
	noBursts := fs.Bool("no-bursts", false, "no bursts")
	noJitter := fs.Bool("no-jitter", false, "spikes on the sample grid (no sub-sample jitter)")
	behModel := fs.String("behaviour", "ou", "behaviour model: ou (Ornstein–Uhlenbeck velocity) or reach (centre-out)")
	speed := fs.Float64("speed", 10, "behaviour speed scale V in cm/s")
	tau := fs.Duration("tau", 500*time.Millisecond, "OU velocity time constant")
	lead := fs.Duration("lead", 0, "neural firing leads the behaviour by this much")
	return func() (sim.Config, error) {
		var c sim.Config
		c.Channels, c.Seed, c.Rate, c.Gain = *channels, *seed, *rate, *gain
		if *channels <= 0 {
			return c, usageErrorf("--channels %d: want > 0", *channels)
		}
		lo, hi, err := parseRange(*units)
		if err != nil || lo < 0 || hi > 16 || lo != math.Trunc(lo) || hi != math.Trunc(hi) {
			return c, usageErrorf("--units %q: want N or MIN-MAX with 0 <= MIN <= MAX <= 16", *units)
		}
		c.MinUnits, c.MaxUnits = int(lo), int(hi)
		if hi == 0 {
			c.MaxUnits = -1 // none (0..0 would mean the default)
		}
		if lo, hi, err = parseRange(*peak); err != nil || lo <= 0 {
			return c, usageErrorf("--peak %q: want MIN-MAX µV with 0 < MIN <= MAX", *peak)
		}
		c.MinPeakUV, c.MaxPeakUV = lo, hi
		c.NoiseUV, c.NoNoise = *noise, *noise == 0
		c.NoiseSpread = *spread
		if c.NoiseSpread == 0 {
			c.NoiseSpread = -1 // none
		}
		c.HumFraction, c.NoHum = *hum, *hum == 0
		c.LFPUV, c.NoLFP = *lfp, *lfp == 0 || *noLFP
		c.GroupChannels = *group
		if *mains != 0 && *mains != 50 && *mains != 60 {
			return c, usageErrorf("--mains %g: want 50, 60 or 0", *mains)
		}
		c.MainsHz, c.NoMains = *mains, *mains == 0 || *mainsUV == 0
		c.MainsUV = *mainsUV
		c.DCOffsetUV, c.NoDC = *dc, *dc == 0
		c.ArtifactRate, c.NoArtifacts = *artifacts, *artifacts == 0 || *artUV == 0
		c.ArtifactUV = *artUV
		c.Drift, c.NoDrift = *drift, *drift == 0
		c.TunedFraction = *tuned
		c.NoBursts, c.NoJitter = *noBursts, *noJitter
		c.Behaviour = sim.BehaviourConfig{Model: *behModel, Speed: *speed, Tau: *tau, Lead: *lead}
		// Zero means "default" inside sim.Config; the No* switches above
		// carry the user's zeros, so give the fields harmless values.
		if c.NoNoise {
			c.NoiseUV = 0
		}
		if c.NoMains {
			c.MainsHz = 0
		}
		if c.TunedFraction == 0 {
			c.TunedFraction = -1 // none
		}
		if err := c.Validate(); err != nil {
			return c, usageErrorf("%v", err)
		}
		return c, nil
	}
}

// parseRange parses "N" or "MIN-MAX".
func parseRange(s string) (lo, hi float64, err error) {
	a, b, ok := strings.Cut(s, "-")
	if lo, err = strconv.ParseFloat(strings.TrimSpace(a), 64); err != nil {
		return 0, 0, err
	}
	hi = lo
	if ok {
		if hi, err = strconv.ParseFloat(strings.TrimSpace(b), 64); err != nil {
			return 0, 0, err
		}
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("%v > %v", lo, hi)
	}
	return lo, hi, nil
}

// parseSeconds accepts a Go duration ("90s", "2m") or plain seconds.
func parseSeconds(s string) (float64, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d.Seconds(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is neither a duration nor a positive number of seconds", s)
	}
	return v, nil
}

// runSim writes a simulated recording (or dispatches "sim serve").
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "serve" {
		if simServe == nil {
			return fmt.Errorf("sim serve is not available in this build")
		}
		return simServe(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("sim", stderr)
	out := fs.String("out", "", "output directory (required)")
	dur := fs.String("duration", "60s", "length of the recording: a Go duration or seconds")
	quiet := fs.Bool("quiet", false, "no progress line")
	plot := fs.String("plot", "", "also write a PNG of the first seconds of data and the unit templates to this file")
	direct := fs.Bool("direct", false, "write recording.dat by direct I/O where the file system has it: far less CPU where filling the page cache is dear, but at the disk's speed and leaving the data uncached; the bytes are the same")
	profile := fs.String("cpuprofile", "", "write a Go CPU profile of the simulation and its file writing to this file (go tool pprof)")
	build := simFlags(fs, 32)
	recordOpts := simRecordFlags(fs) // run_interop.go
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline sim --out DIR [--channels N] [--duration D] [--seed S] [flags]")
		fmt.Fprintln(stderr, "       spikeline sim serve [flags]   (emulate a headstage on a pty, TCP or file)")
		fmt.Fprintln(stderr, "\nWrites recording.dat (int16, time-major), recording.json, gt_spikes.csv,")
		fmt.Fprintln(stderr, "units.csv, behaviour.csv, templates.csv, artifacts.csv and sim_config.json.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *out == "" {
		return usageErrorf("--out DIR is required")
	}
	secs, err := parseSeconds(*dur)
	if err != nil {
		return usageErrorf("--duration: %v", err)
	}
	cfg, err := build()
	if err != nil {
		return err
	}
	opts, err := recordOpts(cfg)
	if err != nil {
		return err
	}
	opts.Direct = *direct
	samples := uint64(math.Round(secs * cfg.Rate))
	if samples == 0 {
		return usageErrorf("--duration %s is shorter than one sample", *dur)
	}
	stop, err := startCPUProfile(*profile)
	if err != nil {
		return err
	}
	defer stop()
	start := time.Now()
	var last time.Time
	progress := func(done, total uint64) {
		if *quiet {
			return
		}
		now := time.Now()
		if done < total && now.Sub(last) < 250*time.Millisecond {
			return
		}
		last = now
		el := now.Sub(start).Seconds()
		fmt.Fprintf(stderr, "\rsim: %.1f / %.1f s (%3.0f%%), %.1f× real time ", float64(done)/cfg.Rate, float64(total)/cfg.Rate,
			100*float64(done)/float64(total), float64(done)/cfg.Rate/math.Max(el, 1e-9))
		if done == total {
			fmt.Fprintln(stderr)
		}
	}
	if err := sim.WriteRecordingWith(ctx, *out, cfg, samples, opts, progress); err != nil {
		return err
	}
	if *plot != "" {
		if err := plots.Simulation(*plot, cfg, 2*time.Second); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s: %d channels, %.1f s at %g Hz (seed %d)\n", *out, cfg.Channels, float64(samples)/cfg.Rate, cfg.Rate, cfg.Seed)
	return nil
}
