package sort

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/spikeline/spikeline/probe"
)

// Reference selects the common reference subtracted across channels after
// band-pass filtering.
type Reference uint8

const (
	RefNone    Reference = iota // no common reference
	RefAverage                  // common average reference (CAR)
	RefMedian                   // common median reference (CMR)
)

func (r Reference) String() string {
	switch r {
	case RefNone:
		return "none"
	case RefAverage:
		return "average"
	case RefMedian:
		return "median"
	}
	return fmt.Sprintf("reference(%d)", uint8(r))
}

// ParseReference parses "none", "average" (or "car") and "median" (or "cmr").
func ParseReference(s string) (Reference, error) {
	switch s {
	case "none", "":
		return RefNone, nil
	case "average", "car", "avg":
		return RefAverage, nil
	case "median", "cmr":
		return RefMedian, nil
	}
	return 0, fmt.Errorf("sort: unknown reference %q (want none, average or median)", s)
}

// Sign selects the polarity of threshold crossings.
type Sign int8

const (
	Negative Sign = iota // troughs below -Threshold·σ (extracellular default)
	Positive             // peaks above +Threshold·σ
	Both                 // either; aligned on the extremum of the crossing's sign
)

func (s Sign) String() string {
	switch s {
	case Negative:
		return "negative"
	case Positive:
		return "positive"
	case Both:
		return "both"
	}
	return fmt.Sprintf("sign(%d)", int8(s))
}

// ParseSign parses "negative" ("neg"), "positive" ("pos") and "both".
func ParseSign(s string) (Sign, error) {
	switch s {
	case "negative", "neg", "":
		return Negative, nil
	case "positive", "pos":
		return Positive, nil
	case "both":
		return Both, nil
	}
	return 0, fmt.Errorf("sort: unknown sign %q (want negative, positive or both)", s)
}

// Config configures a Sorter. The zero value is usable: every zero field
// takes the default documented beside it. Times are in milliseconds and
// frequencies in Hz; the sorter converts them with the stream's sample rate.
type Config struct {
	Low   float64 // band-pass low corner, Hz (300)
	High  float64 // band-pass high corner, Hz (6000; clipped to 0.45·rate)
	Order int     // Butterworth order of the low-pass prototype (3 → 3 biquads)

	Reference Reference // common reference across channels (RefNone)

	Threshold float64 // detection threshold in noise σ (4)
	// TemplateThreshold, in noise σ, is the lower threshold of channels
	// with templates: a crossing between it and Threshold is a spike only
	// when a template explains it (0.75·Threshold; Threshold or more turns
	// this off). SetThreshold keeps the ratio of the two.
	TemplateThreshold float64
	Sign              Sign    // polarity of detection (Negative)
	DeadTime          float64 // ms after an unexplained detection during which the channel takes no other (1); after a matched spike, Pre/2
	Pre               float64 // snippet ms before the aligned extremum (0.5)
	Post              float64 // snippet ms after the aligned extremum (1)
	Align             float64 // ms after a crossing searched for the extremum (0.4)
	Tail              float64 // ms after the snippet that a template also covers and explains (1.5)

	NoiseWindow float64 // seconds of signal per noise (MAD) estimate (0.5)
	NoiseTrack  float64 // seconds: time constant of slow noise tracking (10)

	LearnSeconds float64 // seconds of spikes collected before templates are learned (10)
	MaxSnippets  int     // snippets kept per channel for learning (1000)
	MaxUnits     int     // most units per channel (4)
	MinSpikes    int     // fewest spikes a cluster needs to become a unit (10)
	RelearnEvery float64 // seconds between re-learning passes (120); < 0 = never

	MatchTolerance float64 // a snippet matches a template when its residual energy is below (1+MatchTolerance)·noise energy (1)
	TrackRate      float64 // weight of each matched snippet in the running-average template (1/200)

	Workers int // channel shards run in parallel (GOMAXPROCS)

	// Probe, when set, is the layout of the channels (package probe; its
	// channel count must be the stream's). A spike seen on several
	// channels within Radius of each other is then one event: it belongs
	// to the channel with the largest trough, templates span that
	// channel's neighbourhood, and the spike is reported once, on its
	// unit's main channel. nil, or a layout where no two channels are
	// within Radius: every channel is sorted alone.
	Probe *probe.Probe
	// Radius is how far apart, in µm, two channels may be and still see
	// one spike (50). At most maxNeighbours channels (the nearest) make a
	// neighbourhood.
	Radius float64

	// Deterministic makes learning run inside Process (and Flush) instead
	// of beside it, so results never depend on goroutine timing: for
	// offline sorting and tests. Real-time use leaves it false.
	Deterministic bool

	// Templates, when set, seed the sorter: channels with seeded templates
	// match from the first spike, as in the second pass of an offline sort.
	// Channels without seeded templates still learn.
	Templates []Template

	// Part, when Total > 0, says that the sorter's channels are channels
	// [First, First+channels) of a stream of Total channels sorted in
	// parts (remote sorting, package shard): the noise re-estimates are
	// spread over the channels as one sorter of the whole stream spreads
	// them, so the parts together give that sorter's spikes exactly
	// (with Reference none: a common reference is per part).
	Part Part
}

// Part places a sorter's channels in a larger stream (Config.Part).
type Part struct {
	First, Total int
}

// ErrConfig reports a configuration the sorter cannot run.
var ErrConfig = errors.New("sort: bad configuration")

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Low, 300)
	def(&c.High, 6000)
	if c.Order == 0 {
		c.Order = 3
	}
	def(&c.Threshold, 4)
	def(&c.TemplateThreshold, defaultTemplateShare*c.Threshold)
	def(&c.DeadTime, 1)
	def(&c.Pre, 0.5)
	def(&c.Post, 1)
	def(&c.Align, 0.4)
	def(&c.Tail, 1.5)
	def(&c.NoiseWindow, 0.5)
	def(&c.NoiseTrack, 10)
	def(&c.LearnSeconds, 10)
	if c.MaxSnippets == 0 {
		c.MaxSnippets = 1000
	}
	if c.MaxUnits == 0 {
		c.MaxUnits = 4
	}
	if c.MinSpikes == 0 {
		c.MinSpikes = 10
	}
	def(&c.RelearnEvery, 120)
	def(&c.MatchTolerance, 1)
	def(&c.TrackRate, 1.0/200)
	def(&c.Radius, 50)
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// templateThreshold is TemplateThreshold, at most Threshold.
func (c *Config) templateThreshold() float64 {
	return min(c.TemplateThreshold, c.Threshold)
}

// defaultTemplateShare is the default TemplateThreshold over Threshold.
const defaultTemplateShare = 0.75

// Default returns the configuration a zero Config stands for, with every
// default filled in (useful for printing and for flags).
func Default() Config { return Config{}.withDefaults() }

func (c Config) validate(rate float64) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for _, f := range []struct {
		name string
		v    float64
	}{{"Low", c.Low}, {"High", c.High}, {"Threshold", c.Threshold}, {"TemplateThreshold", c.TemplateThreshold}, {"DeadTime", c.DeadTime},
		{"Pre", c.Pre}, {"Post", c.Post}, {"Align", c.Align}, {"Tail", c.Tail},
		{"NoiseWindow", c.NoiseWindow}, {"NoiseTrack", c.NoiseTrack}, {"LearnSeconds", c.LearnSeconds},
		{"RelearnEvery", c.RelearnEvery}, {"MatchTolerance", c.MatchTolerance}, {"TrackRate", c.TrackRate}, {"Radius", c.Radius}} {
		if !finite(f.v) {
			return bad("%s is %v", f.name, f.v)
		}
	}
	if !(rate > 0) || !finite(rate) {
		return bad("sample rate %v Hz", rate)
	}
	if c.Low <= 0 || c.High <= c.Low {
		return bad("band %v–%v Hz: need 0 < Low < High", c.Low, c.High)
	}
	if c.Low >= 0.5*rate*0.9 {
		return bad("Low %v Hz is too close to Nyquist (%v Hz)", c.Low, rate/2)
	}
	if c.Order < 1 || c.Order > 10 {
		return bad("Order %d (want 1–10)", c.Order)
	}
	if c.Part.Total < 0 || c.Part.First < 0 || c.Part.Total == 0 && c.Part.First != 0 {
		return bad("Part: channels from %d of %d", c.Part.First, c.Part.Total)
	}
	if c.Reference > RefMedian {
		return bad("Reference %d", c.Reference)
	}
	if c.Sign < Negative || c.Sign > Both {
		return bad("Sign %d", c.Sign)
	}
	if c.Threshold <= 0 {
		return bad("Threshold %v σ (want > 0)", c.Threshold)
	}
	if c.TemplateThreshold < 0 {
		return bad("TemplateThreshold %v σ (want >= 0; 0 = %v·Threshold)", c.TemplateThreshold, defaultTemplateShare)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"DeadTime", c.DeadTime}, {"Pre", c.Pre}, {"Post", c.Post}, {"Align", c.Align}, {"Tail", c.Tail}} {
		if f.v < 0 || f.v > 100 {
			return bad("%s %v ms (want 0–100)", f.name, f.v)
		}
	}
	if c.NoiseWindow <= 0 || c.NoiseTrack < 0 || c.LearnSeconds < 0 {
		return bad("NoiseWindow %v s, NoiseTrack %v s, LearnSeconds %v s", c.NoiseWindow, c.NoiseTrack, c.LearnSeconds)
	}
	if c.MaxSnippets < 2 || c.MaxUnits < 1 || c.MaxUnits > 64 || c.MinSpikes < 1 {
		return bad("MaxSnippets %d, MaxUnits %d, MinSpikes %d", c.MaxSnippets, c.MaxUnits, c.MinSpikes)
	}
	if c.Radius <= 0 || c.Radius > 1e6 {
		return bad("Radius %v µm (want > 0)", c.Radius)
	}
	if c.MatchTolerance <= 0 || c.TrackRate < 0 || c.TrackRate >= 1 {
		return bad("MatchTolerance %v, TrackRate %v", c.MatchTolerance, c.TrackRate)
	}
	return nil
}

// ms converts milliseconds to a whole number of samples at rate.
func ms(v, rate float64) int { return int(math.Round(v * rate / 1000)) }
