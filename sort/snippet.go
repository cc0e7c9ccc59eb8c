package sort

import (
	"fmt"
	"math"
	"slices"

	"github.com/spikeline/spikeline/device"
)

// SnippetSorter sorts the spike events a headstage detected itself
// (protocol version 2, spike-event mode: device.Spikes): there is no
// signal to filter or detect on, only each event's snippet of the
// device's band-passed signal. It learns templates from the snippets with
// the same learning as the Sorter (PCA, k-means over-split, merging of
// unimodal pairs, rejection of noise clusters) and matches each snippet
// to the nearest template with the Sorter's amplitude prior and residual
// test; an event no template explains leaves as unit 0.
//
// Noise comes from the device's thresholds: the host sets them at k σ
// and says k in the settings (device.Settings.SigmaTenths; Config.Threshold
// if it does not), so channel c's σ is |T_c| × gain / k. A device may
// detect below Config.Threshold (spikeline sets it at the template
// threshold, 0.8 × Threshold): an event whose extremum is below
// Threshold σ is then a spike only if a template explains it, as in the
// Sorter. A snippet is int(v) << shift counts × gain µV; snippets are
// centred on their sub-sample extremum before matching, as in learning.
//
// Templates are learned once, from the events of the first LearnSeconds
// (Config.Templates seeds them instead, as in the second pass of an
// offline sort); until then spikes leave unsorted. Process is not safe
// for concurrent use; Templates, Noise and Stats may be called from other
// goroutines.
type SnippetSorter struct {
	cfg      Config
	channels int
	rate     float64
	pre      int // snippet samples before the extremum
	d        int // snippet length
	gain     float64

	sigma []float32 // per channel, µV; 0: unknown (threshold off)
	units [][]*unit
	next  int32

	started            bool
	learnFrom, learnAt uint64
	learned            bool
	sets               []snippetSet
	lastTau            []uint64
	lastAmp            []float32
	x, xs              []float32
	st                 Stats
	end                uint64 // end of the stream so far
}

// NewSnippetSorter returns a SnippetSorter for channels channels at rate
// Hz whose snippets have pre samples before the extremum and post after
// it; gain is the µV per count of Blocks that carry none. It takes the
// sorter's Config: Threshold (the σ the device's thresholds stand for),
// Sign, LearnSeconds, MaxSnippets, MaxUnits, MinSpikes, MatchTolerance
// and Templates; the band-pass, reference, dead time, alignment and tail
// are the device's.
func NewSnippetSorter(cfg Config, channels int, rate float64, pre, post int, gain float64) (*SnippetSorter, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(rate); err != nil {
		return nil, err
	}
	if channels < 1 || channels > device.MaxChannels {
		return nil, fmt.Errorf("%w: %d channels", ErrConfig, channels)
	}
	if pre < 0 || post < 1 || pre > device.MaxSnippetSide || post > device.MaxSnippetSide {
		return nil, fmt.Errorf("%w: snippets of %d+1+%d samples", ErrConfig, pre, post)
	}
	if !(gain > 0) || math.IsInf(gain, 0) {
		gain = device.IntanGain
	}
	s := &SnippetSorter{cfg: cfg, channels: channels, rate: rate, pre: pre, d: pre + 1 + post, gain: gain, next: 1,
		sigma: make([]float32, channels), units: make([][]*unit, channels), sets: make([]snippetSet, channels),
		lastTau: make([]uint64, channels), lastAmp: make([]float32, channels)}
	for i, t := range cfg.Templates {
		if t.Channel < 0 || int(t.Channel) >= channels || t.Unit <= 0 || t.Pre != pre || len(t.Waveform) < s.d {
			return nil, fmt.Errorf("%w: seed template %d (unit %d, channel %d, pre %d, %d samples) does not fit snippets of %d+1+%d on %d channels",
				ErrConfig, i, t.Unit, t.Channel, t.Pre, len(t.Waveform), pre, post, channels)
		}
		u := newUnit(t.Unit, slices.Clone(t.Waveform[:s.d]), s.d)
		u.count = t.Count
		s.units[t.Channel] = append(s.units[t.Channel], u)
		s.next = max(s.next, t.Unit+1)
		s.learned = true
	}
	return s, nil
}

// Channels returns the number of channels.
func (s *SnippetSorter) Channels() int { return s.channels }

// Rate returns the sample rate in Hz.
func (s *SnippetSorter) Rate() float64 { return s.rate }

// Lag returns the snippet's samples after the extremum: a device sends an
// event once its snippet is complete, so when a spike frame ends at sample
// t, every spike before t - Lag() has arrived.
func (s *SnippetSorter) Lag() int { return s.d - s.pre - 1 }

// SnippetLen returns the samples in a snippet and those before the
// extremum.
func (s *SnippetSorter) SnippetLen() (n, pre int) { return s.d, s.pre }

// Config returns the configuration in use, defaults filled in.
func (s *SnippetSorter) Config() Config {
	c := s.cfg
	c.Templates = nil
	return c
}

// SetNoise sets channel c's noise σ to sigma[c] µV (0: unknown).
func (s *SnippetSorter) SetNoise(sigma []float32) {
	copy(s.sigma, sigma)
}

// settings takes the noise from a device's thresholds.
func (s *SnippetSorter) settings(st *device.Settings, gain float64) error {
	if st.Pre != s.pre || st.Pre+1+st.Post != s.d {
		return fmt.Errorf("%w: the device's snippets changed to %d+1+%d samples, the sorter's are %d+1+%d",
			ErrFormat, st.Pre, st.Post, s.pre, s.d-s.pre-1)
	}
	if len(st.Thresholds) == 0 || len(st.Thresholds[0]) != s.channels {
		return fmt.Errorf("%w: device settings without thresholds for the sorter's %d channels", ErrFormat, s.channels)
	}
	// The σ multiple the thresholds stand for: the host says (settings
	// frame), else the sorter's threshold.
	d := s.cfg.Threshold
	if st.SigmaTenths[0] > 0 {
		d = float64(st.SigmaTenths[0]) / 10
	}
	for c, t := range st.Thresholds[0] {
		s.sigma[c] = float32(math.Abs(float64(t)) * gain / d)
	}
	return nil
}

// Process sorts the spike events of b (a Block of a device in spike-event
// mode; its Settings, when present, give the noise) and appends the
// spikes to dst in the order the events came. A Block without Spikes
// is ignored.
func (s *SnippetSorter) Process(b device.Block, dst []Spike) ([]Spike, error) {
	if b.Channels != s.channels {
		return dst, fmt.Errorf("%w: block at sample %d has %d channels, sorter %d", ErrFormat, b.First, b.Channels, s.channels)
	}
	gain := b.Gain
	if !(gain > 0) || math.IsInf(gain, 0) {
		gain = s.gain
	}
	if b.Settings != nil {
		if err := s.settings(b.Settings, gain); err != nil {
			return dst, err
		}
	}
	if !s.started {
		s.started = true
		s.learnFrom = b.First
		s.learnAt = b.First + uint64(s.cfg.LearnSeconds*s.rate)
	}
	s.end = max(s.end, b.End())
	s.st.Samples += uint64(b.Span)
	if b.Spikes == nil {
		return dst, nil
	}
	sp := b.Spikes
	if sp.Pre != s.pre || sp.Pre+1+sp.Post != s.d {
		return dst, fmt.Errorf("%w: block at sample %d has snippets of %d+1+%d samples, sorter %d+1+%d",
			ErrFormat, b.First, sp.Pre, sp.Post, s.pre, s.d-s.pre-1)
	}
	if cap(s.x) < s.d {
		s.x = make([]float32, s.d)
	}
	x := s.x[:s.d]
	for _, e := range sp.Events {
		c := e.Channel
		if c < 0 || c >= s.channels {
			continue
		}
		sp := Spike{Sample: e.Sample, Channel: int32(c)}
		if len(e.Snippet) == s.d {
			g := float32(gain) * float32(int32(1)<<e.Shift)
			for i, v := range e.Snippet {
				x[i] = float32(v) * g
			}
			sp.Amplitude = x[s.pre]
			// Below the detection threshold (a device detecting lower,
			// at the template threshold): a spike only if a template
			// explains it, as in the Sorter.
			weak := math.Abs(float64(sp.Amplitude)) < s.cfg.Threshold*float64(s.sigma[c])
			if !s.learned {
				if weak {
					continue
				}
				s.collect(c, e.Sample, x)
			} else {
				sp.Unit = s.match(c, x, weak)
				if weak && sp.Unit == 0 {
					continue
				}
			}
		}
		if sp.Unit != 0 {
			s.st.Sorted++
		}
		s.st.Spikes++
		dst = append(dst, sp)
	}
	if !s.learned && s.end >= s.learnAt {
		s.learn()
	}
	return dst, nil
}

// collect keeps a snippet for learning.
func (s *SnippetSorter) collect(c int, tau uint64, x []float32) {
	amp := float32(math.Abs(float64(x[s.pre])))
	gap := uint32(min(tau-s.lastTau[c], math.MaxUint32))
	prev := s.lastAmp[c]
	s.lastTau[c], s.lastAmp[c] = tau, amp
	set := &s.sets[c]
	if len(set.tau) >= s.cfg.MaxSnippets {
		return
	}
	set.w = append(set.w, x...)
	set.tau = append(set.tau, tau)
	set.gap = append(set.gap, gap)
	set.prev = append(set.prev, prev)
}

// learn learns templates from the snippets collected (the Sorter's
// learning, on snippets: no tail).
func (s *SnippetSorter) learn() {
	post := s.d - s.pre - 1
	p := learnParams{d: s.d, dfull: s.d, pre: s.pre, post: post, tail: 0,
		maxUnits: s.cfg.MaxUnits, minSpikes: s.cfg.MinSpikes, sign: s.cfg.Sign, threshold: s.cfg.Threshold,
		burstGap: ms(burstGapMs, s.rate)}
	for c := range s.channels {
		set := &s.sets[c]
		if len(set.tau) < s.cfg.MinSpikes || !(s.sigma[c] > 0) {
			continue
		}
		waves, counts := learnChannel(learnJob{ch: c, sigma: s.sigma[c], w: set.w, tau: set.tau, gap: set.gap, prev: set.prev}, p)
		for i, w := range waves {
			u := newUnit(s.next, w, s.d)
			u.count = counts[i]
			s.next++
			s.units[c] = append(s.units[c], u)
		}
		*set = snippetSet{}
	}
	s.learned = true
	s.st.Learned++
}

// Flush learns from what was collected if templates were never learned
// (a stream shorter than LearnSeconds), so that Templates reports them.
func (s *SnippetSorter) Flush(dst []Spike) []Spike {
	if !s.learned && s.started {
		s.learn()
	}
	return dst
}

// match returns the unit whose template explains snippet x of channel c,
// or 0: the Sorter's test (amplitude prior, residual energy under
// (1+MatchTolerance)·d·σ² plus a share of the template's energy, and a
// matched-filter output of at least minMatchedZ σ).
func (s *SnippetSorter) match(c int, x []float32, weak bool) int32 {
	us := s.units[c]
	sig2 := s.sigma[c] * s.sigma[c]
	if len(us) == 0 || !(sig2 > 0) {
		return 0
	}
	d := s.d
	// Centre the snippet on its sub-sample extremum, as learning centred
	// the snippets its templates are made of.
	if cap(s.xs) < d {
		s.xs = make([]float32, d)
	}
	shiftSnippet(s.xs[:d], x, s.pre)
	x = s.xs[:d]
	var xx float32
	for _, v := range x {
		xx += v * v
	}
	bk, ba, bd, bs := -1, float32(1), float32(math.Inf(1)), float32(math.Inf(1))
	var bdot float32
	for k, u := range us {
		var dot float32
		for i, v := range x {
			dot += v * u.w[i]
		}
		a := float32(1)
		if u.e > 0 {
			a = min(max((dot+scaleLambda*u.e)/((1+scaleLambda)*u.e), minScale), maxScale)
		}
		dist := xx - 2*a*dot + a*a*u.e
		if score := dist + scaleLambda*(a-1)*(a-1)*u.e; score < bs {
			bk, ba, bd, bs, bdot = k, a, dist, score, dot
		}
	}
	u := us[bk]
	tol := float32(1 + s.cfg.MatchTolerance)
	if bd >= tol*float32(d)*sig2+jitterShare*ba*ba*u.e {
		s.st.Unmatched++
		return 0
	}
	if bdot < 0 || bdot*bdot < minMatchedZ*minMatchedZ*sig2*u.e || (weak && bdot < weakScale*u.e) {
		if !weak {
			s.st.Unmatched++
		}
		return 0
	}
	u.count++
	return u.id
}

// Templates returns copies of the templates, by channel then unit.
func (s *SnippetSorter) Templates() []Template {
	var out []Template
	for c, us := range s.units {
		for _, u := range us {
			out = append(out, Template{Unit: u.id, Channel: int32(c), Pre: s.pre, Waveform: slices.Clone(u.w),
				PeakUV: u.w[s.pre], Count: u.count})
		}
	}
	return out
}

// Noise appends each channel's noise σ in µV to dst.
func (s *SnippetSorter) Noise(dst []float32) []float32 { return append(dst, s.sigma...) }

// Stats returns the counters so far.
func (s *SnippetSorter) Stats() Stats {
	st := s.st
	for _, us := range s.units {
		st.Units += len(us)
	}
	return st
}
