package quality

import (
	"fmt"
	"math"

	"github.com/spikeline/spikeline/sort"
)

// Sizes of a Tracker's per-unit state.
const (
	// recentSpikes is how many of a unit's last spike samples are kept
	// for refractory period violations: a pair is counted when its second
	// spike arrives, so more than recentSpikes spikes within Refractory of
	// each other would be undercounted.
	recentSpikes = 8
	// ampBins is the size of a unit's amplitude histogram. Its bin width
	// doubles whenever an amplitude falls beyond it, so it always spans
	// the amplitudes seen in at most ampBins bins.
	ampBins = 1024
)

// Tracker keeps bounded per-unit state from which the quality metrics of a
// live session are computed at any time: spike and violation counts, the
// presence bins, and an amplitude histogram. Add costs O(1) per spike and
// allocates only when a unit is first seen (about 4 KB); Metrics does the
// rest. All metrics are exact (the same as Params.Compute on the same
// spikes) except amplitude_median and amplitude_cutoff, which come from
// the histogram. A Tracker is not safe for concurrent use.
type Tracker struct {
	p     Params
	rate  float64
	first uint64 // device sample of the session's first sample
	thr   float64
	tr    uint64
	bin   uint64
	units map[int32]*unitState

	h      []float64 // scratch for amplitude_cutoff
	pdf    []int64
	kernel []float64
	keep   map[int32]bool
}

type unitState struct {
	n      int
	last   uint64 // last spike, samples from first
	isi    int
	rp     int
	recent [recentSpikes]uint64
	head   int // next slot of recent

	// Presence: the bin of the last spike, its first spike, and the bins
	// before it that held spikes.
	curBin     uint64
	curFirst   uint64
	active     uint64
	lastActive uint64 // last bin before curBin with spikes (valid if active > 0)

	// Amplitudes, multiplied by sign (so that the unit's typical
	// amplitude is positive), in ampBins bins of width w from 0; values
	// below 0 count in bin 0. lo and hi are the exact extremes.
	sign   float32
	w      float32
	hist   []uint32
	lo, hi float32
}

// NewTracker returns a Tracker for a session at rate Hz whose first sample
// is first (spike samples are counted from it).
func NewTracker(p Params, rate float64, first uint64) (*Tracker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("quality: sample rate %g Hz: %w", rate, ErrInput)
	}
	p = p.Defaults()
	tr, _ := p.periods(rate)
	return &Tracker{p: p, rate: rate, first: first, thr: p.ISIThreshold / 1000, tr: tr, bin: p.binSamples(rate),
		units: map[int32]*unitState{}, h: make([]float64, p.CutoffBins), pdf: make([]int64, p.CutoffBins),
		kernel: gaussianKernel(p.CutoffSmoothing), keep: map[int32]bool{}}, nil
}

// Add counts spikes (unit 0 and spikes before the session's first sample
// are ignored). A unit's spikes must come in time order, as the sorter
// emits them.
func (t *Tracker) Add(spikes []sort.Spike) {
	for i := range spikes {
		sp := &spikes[i]
		if sp.Unit == 0 || sp.Sample < t.first {
			continue
		}
		u := t.units[sp.Unit]
		if u == nil {
			u = &unitState{hist: make([]uint32, ampBins)}
			t.units[sp.Unit] = u
		}
		t.add(u, sp.Sample-t.first, sp.Amplitude)
	}
}

func (t *Tracker) add(u *unitState, s uint64, amp float32) {
	if u.n > 0 {
		if isiViolated(u.last, s, t.rate, t.thr) {
			u.isi++
		}
		// Earlier spikes within the refractory period, newest first.
		for k := 1; k <= min(u.n, recentSpikes); k++ {
			r := u.recent[(u.head-k+recentSpikes)%recentSpikes]
			if s-r > t.tr {
				break
			}
			u.rp++
		}
	}
	u.recent[u.head] = s
	u.head = (u.head + 1) % recentSpikes
	u.last = s

	if t.bin > 0 {
		b := s / t.bin
		switch {
		case u.n == 0:
			u.curBin, u.curFirst = b, s
		case b != u.curBin:
			u.active++
			u.lastActive = u.curBin
			u.curBin, u.curFirst = b, s
		}
	}

	if u.n == 0 {
		u.sign = -1
		if amp > 0 {
			u.sign = 1
		}
		a := amp * u.sign
		if !(a < math.MaxFloat32) {
			a = 1
		}
		u.w = max(a, 1) / (ampBins / 4) // the first amplitude at a quarter of the range
		u.lo, u.hi = a, a
	}
	a := amp * u.sign
	if math.IsNaN(float64(a)) || math.IsInf(float64(a), 0) {
		a = 0 // not a measurement: counted, in the lowest bin
	}
	u.lo, u.hi = min(u.lo, a), max(u.hi, a)
	for a >= u.w*ampBins {
		// Double the bin width: merge neighbouring bins.
		for i := range ampBins / 2 {
			u.hist[i] = u.hist[2*i] + u.hist[2*i+1]
		}
		clear(u.hist[ampBins/2:])
		u.w *= 2
	}
	u.hist[max(int(a/u.w), 0)]++
	u.n++
}

// Metrics appends to dst the metrics of the units of templates, in their
// order, for the session up to sample end (exclusive: every spike before
// end has been added); noise is the per-channel noise σ (may be nil).
// Units with no spikes get the metrics of a unit without spikes.
func (t *Tracker) Metrics(dst []Unit, templates []sort.Template, noise []float32, end uint64) []Unit {
	samples := uint64(0)
	if end > t.first {
		samples = end - t.first
	}
	for _, tm := range templates {
		var nz float32
		if tm.Channel >= 0 && int(tm.Channel) < len(noise) {
			nz = noise[tm.Channel]
		}
		m := t.metrics(t.units[tm.Unit], samples)
		m.SNR = snr(tm.Waveform, nz)
		dst = append(dst, Unit{ID: tm.Unit, Channel: tm.Channel, Metrics: m, Label: t.p.Label(m)})
	}
	return dst
}

func (t *Tracker) metrics(u *unitState, samples uint64) Metrics {
	if u == nil || samples == 0 {
		in := Input{}
		m, _ := t.p.Compute(in, max(samples, 1), t.rate)
		m.AmplitudeMedian, m.AmplitudeCutoff = math.NaN(), math.NaN()
		return m
	}
	m := Metrics{NumSpikes: u.n}
	m.FiringRate = firingRate(u.n, samples, t.rate)
	m.ISIViolationsCount, m.RPViolations = u.isi, u.rp
	m.ISIViolationsRatio = t.p.isiRatio(u.n, u.isi, samples, t.rate)
	m.RPContamination = t.p.rpContamination(u.n, u.rp, samples, t.rate)
	m.PresenceRatio = math.NaN()
	if t.bin > 0 && samples >= t.bin {
		k := samples / t.bin
		active := u.active
		switch {
		case u.curBin < k:
			active++
		case u.curFirst == k*t.bin && (u.active == 0 || u.lastActive != k-1):
			// A spike on the last edge counts in the last bin.
			active++
		}
		m.PresenceRatio = float64(active) / float64(k)
	}
	m.AmplitudeMedian = float64(u.sign * u.median())
	m.AmplitudeCutoff = t.cutoff(u)
	return m
}

// median is the median of the unit's amplitudes (times sign) from the
// histogram: the mean of the values of rank ⌊(n-1)/2⌋ and ⌈(n-1)/2⌉, each
// placed within its bin as if the bin's spikes were evenly spread.
func (u *unitState) median() float32 {
	if u.n == 0 {
		return float32(math.NaN())
	}
	if u.lo == u.hi {
		return u.lo
	}
	return float32((u.at(u.n-1) / 2) + u.at(u.n)/2) // n-1 and n: ranks ⌊(n-1)/2⌋ and ⌈(n-1)/2⌉ doubled
}

// at returns the value of 0-based rank r2/2 (r2 rounded down to even) from
// the histogram, clamped to the extremes.
func (u *unitState) at(r2 int) float64 {
	r := float64(r2 / 2)
	var before float64
	lo, hi := u.span()
	for i := lo; i <= hi; i++ {
		c := u.hist[i]
		if before+float64(c) <= r {
			before += float64(c)
			continue
		}
		v := (float64(i) + (r-before+0.5)/float64(c)) * float64(u.w)
		return min(max(v, float64(u.lo)), float64(u.hi))
	}
	return float64(u.hi)
}

// span returns the first and last histogram bins that can hold counts.
func (u *unitState) span() (int, int) {
	first := min(max(int(u.lo/u.w), 0), ampBins-1)
	last := min(max(int(u.hi/u.w), 0), ampBins-1)
	return first, last
}

// cutoff is amplitude_cutoff from the histogram: each fine bin's count
// is spread over the CutoffBins bins between the extremes in proportion
// to their overlap.
func (t *Tracker) cutoff(u *unitState) float64 {
	n := u.n
	if float64(n)/float64(t.p.CutoffBins) < t.p.CutoffMinRatio || n == 0 {
		return math.NaN()
	}
	lo, hi := float64(u.lo), float64(u.hi)
	neg := u.median() < 0 // SpikeInterface negates when the median is negative
	nb := t.p.CutoffBins
	h := t.h[:nb]
	clear(h)
	if hi == lo {
		h[nb/2] = float64(n) // NumPy: one value in the middle bin
		return cutoffFromHistogram(h, n, t.kernel, t.pdf)
	}
	width := (hi - lo) / float64(nb)
	first, last := u.span()
	for i := first; i <= last; i++ {
		c := u.hist[i]
		if c == 0 {
			continue
		}
		// The fine bin within the extremes (bin 0 also holds values
		// below 0; the extremes hold the rest).
		a := max(float64(i)*float64(u.w), lo)
		b := min(float64(i+1)*float64(u.w), hi)
		if i == 0 {
			a = lo
		}
		if b <= a {
			// Entirely outside: the count belongs at the nearer extreme.
			a = min(max(a, lo), hi)
			b = a
		}
		k := min(int((a-lo)/width), nb-1)
		for {
			end := b
			if k < nb-1 {
				end = min(lo+float64(k+1)*width, b)
			}
			share := 1.0
			if b > a {
				share = max(end-a, 0) / (b - a)
			}
			if neg {
				h[nb-1-k] += share * float64(c)
			} else {
				h[k] += share * float64(c)
			}
			if end >= b {
				break
			}
			a, k = end, k+1
		}
	}
	return cutoffFromHistogram(h, n, t.kernel, t.pdf)
}

// Retain drops the state of every unit not among templates (units the
// sorter retired), so that memory follows the current units.
func (t *Tracker) Retain(templates []sort.Template) {
	clear(t.keep)
	for _, tm := range templates {
		t.keep[tm.Unit] = true
	}
	for id := range t.units {
		if !t.keep[id] {
			delete(t.units, id)
		}
	}
}

// Units returns the number of units the Tracker holds state for.
func (t *Tracker) Units() int { return len(t.units) }
