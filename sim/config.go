package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/spikeline/spikeline/device"
)

// Config describes a simulated recording. The zero value of every field
// means "the default" (documented per field); the No* switches turn a
// component off. New validates the result.
type Config struct {
	Channels     int     // number of channels (required, > 0)
	Rate         float64 // sample rate in Hz; default 30000
	Gain         float64 // µV per count of the int16 output; default 0.195 (Intan RHD)
	Seed         int64   // everything is a pure function of the seed and the other fields
	BlockSamples int     // samples per channel in each Block from Next; default 30 (1 ms at 30 kHz)

	// Duration ends the stream (io.EOF) after this many samples per
	// channel; 0 streams forever.
	Duration uint64

	// Units per channel are drawn uniformly from MinUnits..MaxUnits.
	// Defaults 0..4. Set MinUnits = MaxUnits to fix the count; a negative
	// MaxUnits means no units at all (noise-only recordings).
	MinUnits, MaxUnits int
	// MinPeakUV, MaxPeakUV bound the trough amplitude of the raw unit
	// templates (log-uniform); defaults 30 and 300 µV.
	MinPeakUV, MaxPeakUV float64

	// NoiseUV is the rms of the background noise in the 300–6000 Hz spike
	// band (white + 1/f + multi-unit hum), averaged over channels; default
	// 7 µV. Channels vary around it by ±NoiseSpread (fraction, default
	// 0.15, negative for none); Sim.NoiseUV gives each channel's level.
	NoiseUV     float64
	NoiseSpread float64
	// HumFraction is the share of the spike-band noise variance that comes
	// from multi-unit hum (many small, distant units); default 0.3.
	HumFraction float64

	// LFPUV is the rms of the local field potential (1–100 Hz, 1/f with
	// theta and beta rhythms), shared by groups of GroupChannels adjacent
	// channels; default 120 µV.
	LFPUV float64
	// GroupChannels is the number of adjacent channels that share one LFP,
	// mains pick-up and artifact coupling (a shank neighbourhood);
	// default 16.
	GroupChannels int
	// MainsHz is the power-line frequency, 50 or 60; default 60.
	// MainsUV is its amplitude (plus a third harmonic at a third of it);
	// default 20 µV.
	MainsHz, MainsUV float64
	// DCOffsetUV bounds the per-channel DC offset, drawn uniformly in
	// ±DCOffsetUV; default 300 µV.
	DCOffsetUV float64
	// ArtifactRate is the mean rate (per second) of movement artifacts
	// common to all channels; default 0.05. ArtifactUV is their typical
	// peak (each varies 0.6–1.4×, and each group's coupling 0.5–1.5×);
	// default 1500 µV. Larger values saturate at the int16 range as a
	// real amplifier does.
	ArtifactRate, ArtifactUV float64
	// Drift is the peak fractional change of each unit's amplitude over
	// its slow drift cycle (periods of 2–10 minutes); default 0.1.
	Drift float64
	// TunedFraction of the units are cosine-tuned to the behaviour; the
	// rest fire at their baseline. Default 0.75; negative for none.
	TunedFraction float64

	NoNoise     bool // no background noise or hum (ground-truth tests)
	NoHum       bool // no multi-unit hum (noise is white + 1/f only)
	NoLFP       bool
	NoMains     bool
	NoDC        bool
	NoArtifacts bool
	NoDrift     bool
	NoBursts    bool
	NoJitter    bool // spikes aligned to the sample grid (no sub-sample phase)

	Behaviour BehaviourConfig
}

// BehaviourConfig describes the simulated 2-D hand velocity to which unit
// firing is tuned. See the package documentation for the exact formulas.
type BehaviourConfig struct {
	// Model is "ou" (default: an Ornstein–Uhlenbeck velocity per axis) or
	// "reach" (centre-out reaches to 8 targets and back, minimum-jerk
	// velocity profiles with holds between them).
	Model string
	// Speed is V in the tuning formula, in cm/s. For "ou" it is the
	// stationary standard deviation of each velocity component; for
	// "reach" the peak speed of a reach. Default 10.
	Speed float64
	// Tau is the OU time constant; default 500 ms.
	Tau time.Duration
	// Lead is how far neural firing leads the behaviour: a spike at time
	// t is driven by the velocity at t + Lead. Default 0.
	Lead time.Duration
	// Rate is the behaviour sample rate in Hz (velocity is held constant
	// between samples); default 1000. It is rounded so that a behaviour
	// step is a whole number of signal samples.
	Rate float64
}

func (c Config) withDefaults() Config {
	def := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Rate, 30000)
	def(&c.Gain, 0.195)
	if c.BlockSamples == 0 {
		c.BlockSamples = int(math.Max(1, math.Round(c.Rate/1000)))
	}
	switch {
	case c.MaxUnits < 0:
		c.MinUnits, c.MaxUnits = 0, 0
	case c.MinUnits == 0 && c.MaxUnits == 0:
		c.MaxUnits = 4
	}
	def(&c.MinPeakUV, 30)
	def(&c.MaxPeakUV, 300)
	def(&c.NoiseUV, 7)
	def(&c.NoiseSpread, 0.15)
	def(&c.HumFraction, 0.3)
	def(&c.LFPUV, 120)
	if c.GroupChannels == 0 {
		c.GroupChannels = 16
	}
	def(&c.MainsHz, 60)
	def(&c.MainsUV, 20)
	def(&c.DCOffsetUV, 300)
	def(&c.ArtifactRate, 0.05)
	def(&c.ArtifactUV, 1500)
	def(&c.Drift, 0.1)
	def(&c.TunedFraction, 0.75)
	c.TunedFraction = max(c.TunedFraction, 0)
	c.NoiseSpread = max(c.NoiseSpread, 0)
	b := &c.Behaviour
	if b.Model == "" {
		b.Model = "ou"
	}
	def(&b.Speed, 10)
	if b.Tau == 0 {
		b.Tau = 500 * time.Millisecond
	}
	def(&b.Rate, 1000)
	return c
}

// Validate reports the first impossible field of c (after defaults), as
// New would, without building anything.
func (c Config) Validate() error { return c.withDefaults().validate() }

// validate reports the first impossible field of a defaulted Config.
func (c Config) validate() error {
	bad := func(format string, a ...any) error { return fmt.Errorf("sim: "+format, a...) }
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"Rate", c.Rate}, {"Gain", c.Gain}, {"MinPeakUV", c.MinPeakUV}, {"MaxPeakUV", c.MaxPeakUV},
		{"NoiseUV", c.NoiseUV}, {"NoiseSpread", c.NoiseSpread}, {"HumFraction", c.HumFraction},
		{"LFPUV", c.LFPUV}, {"MainsHz", c.MainsHz}, {"MainsUV", c.MainsUV}, {"DCOffsetUV", c.DCOffsetUV},
		{"ArtifactRate", c.ArtifactRate}, {"ArtifactUV", c.ArtifactUV}, {"Drift", c.Drift},
		{"TunedFraction", c.TunedFraction}, {"Behaviour.Speed", c.Behaviour.Speed}, {"Behaviour.Rate", c.Behaviour.Rate},
	} {
		if !finite(f.v) {
			return bad("%s = %v, want a finite number", f.name, f.v)
		}
	}
	switch {
	case c.Channels <= 0 || c.Channels > device.MaxChannels:
		return bad("Channels = %d, want 1..%d", c.Channels, device.MaxChannels)
	case c.Rate < 1000 || c.Rate > device.MaxRate:
		return bad("Rate = %g Hz, want 1000..%d", c.Rate, device.MaxRate)
	case c.Gain <= 0:
		return bad("Gain = %g µV/count, want > 0", c.Gain)
	case c.BlockSamples < 1:
		return bad("BlockSamples = %d, want >= 1", c.BlockSamples)
	case c.MinUnits < 0 || c.MaxUnits < c.MinUnits || c.MaxUnits > 16:
		return bad("units per channel %d..%d, want 0 <= min <= max <= 16", c.MinUnits, c.MaxUnits)
	case c.MinPeakUV <= 0 || c.MaxPeakUV < c.MinPeakUV:
		return bad("peak amplitude range %g..%g µV, want 0 < min <= max", c.MinPeakUV, c.MaxPeakUV)
	case c.NoiseUV < 0:
		return bad("NoiseUV = %g, want >= 0", c.NoiseUV)
	case c.NoiseSpread < 0 || c.NoiseSpread >= 1:
		return bad("NoiseSpread = %g, want 0 <= spread < 1", c.NoiseSpread)
	case c.HumFraction < 0 || c.HumFraction >= 1:
		return bad("HumFraction = %g, want 0 <= fraction < 1", c.HumFraction)
	case c.LFPUV < 0 || c.MainsUV < 0 || c.DCOffsetUV < 0 || c.ArtifactUV < 0:
		return bad("LFPUV, MainsUV, DCOffsetUV and ArtifactUV must be >= 0")
	case c.GroupChannels < 1:
		return bad("GroupChannels = %d, want >= 1", c.GroupChannels)
	case c.MainsHz <= 0 || c.MainsHz >= c.Rate/2:
		return bad("MainsHz = %g, want 0 < f < Nyquist", c.MainsHz)
	case c.ArtifactRate < 0 || c.ArtifactRate > 100:
		return bad("ArtifactRate = %g /s, want 0..100", c.ArtifactRate)
	case c.Drift < 0 || c.Drift >= 1:
		return bad("Drift = %g, want 0 <= drift < 1", c.Drift)
	case c.TunedFraction < 0 || c.TunedFraction > 1:
		return bad("TunedFraction = %g, want 0..1", c.TunedFraction)
	case c.Behaviour.Model != "ou" && c.Behaviour.Model != "reach":
		return bad("Behaviour.Model = %q, want \"ou\" or \"reach\"", c.Behaviour.Model)
	case c.Behaviour.Speed <= 0:
		return bad("Behaviour.Speed = %g, want > 0", c.Behaviour.Speed)
	case c.Behaviour.Tau <= 0:
		return bad("Behaviour.Tau = %v, want > 0", c.Behaviour.Tau)
	case c.Behaviour.Lead < 0 || c.Behaviour.Lead > 10*time.Second:
		return bad("Behaviour.Lead = %v, want 0..10s", c.Behaviour.Lead)
	case c.Behaviour.Rate <= 0 || c.Behaviour.Rate > c.Rate:
		return bad("Behaviour.Rate = %g Hz, want 0 < rate <= sample rate", c.Behaviour.Rate)
	}
	// The noise is kept in fixed point inside int16 tiles: refuse levels
	// that would not fit.
	if c.NoiseUV/c.Gain > 2000 {
		return bad("NoiseUV = %g µV is %g counts rms at Gain %g, want < 2000 counts", c.NoiseUV, c.NoiseUV/c.Gain, c.Gain)
	}
	return nil
}
