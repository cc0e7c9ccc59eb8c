package quality

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/spikeline/spikeline/stream/schema"
)

// Params are the parameters of the metrics and of the good/mua label. The
// zero value gives SpikeInterface's defaults (0.104.8) and the label rule
// described in docs/quality.md; a zero field takes its default.
type Params struct {
	// PresenceBin is the presence_ratio bin, seconds (60).
	PresenceBin float64
	// ISIThreshold is the isi_violations threshold, ms (1.5): adjacent
	// spikes closer than this are a violation.
	ISIThreshold float64
	// MinISI is the artificial refractory period (dead time) of the
	// isi_violations_ratio formula, ms (0).
	MinISI float64
	// Refractory and Censored are the refractory and censored periods of
	// rp_violations / rp_contamination, ms (1.0 and 0).
	Refractory float64
	Censored   float64
	// CutoffBins is the number of amplitude histogram bins of
	// amplitude_cutoff (100), CutoffSmoothing the σ of its Gaussian
	// smoothing in bins (3), and CutoffMinRatio the fewest spikes per bin
	// for the metric to be defined (5: 500 spikes).
	CutoffBins      int
	CutoffSmoothing float64
	CutoffMinRatio  float64

	// MinSpikes and MaxContamination decide the label: a unit is good
	// when it has at least MinSpikes spikes (50) and its rp_contamination
	// is at most MaxContamination (0.1); otherwise mua.
	MinSpikes        int
	MaxContamination float64
}

// Defaults returns p with every zero field set to its default.
func (p Params) Defaults() Params {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&p.PresenceBin, 60)
	def(&p.ISIThreshold, 1.5)
	def(&p.Refractory, 1.0)
	def(&p.CutoffSmoothing, 3)
	def(&p.CutoffMinRatio, 5)
	def(&p.MaxContamination, 0.1)
	if p.CutoffBins == 0 {
		p.CutoffBins = 100
	}
	if p.MinSpikes == 0 {
		p.MinSpikes = 50
	}
	return p
}

// Validate reports the first parameter (after defaults) that cannot be used.
func (p Params) Validate() error {
	p = p.Defaults()
	bad := func(name string, v float64) error {
		return fmt.Errorf("quality: %s %g: %w", name, v, ErrParam)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !(p.PresenceBin > 0) || !finite(p.PresenceBin):
		return bad("presence bin (s)", p.PresenceBin)
	case !(p.ISIThreshold > 0) || !finite(p.ISIThreshold):
		return bad("ISI threshold (ms)", p.ISIThreshold)
	case !(p.MinISI >= 0) || p.MinISI >= p.ISIThreshold:
		return bad("minimum ISI (ms), want >= 0 and below the ISI threshold,", p.MinISI)
	case !(p.Censored >= 0) || !finite(p.Censored):
		return bad("censored period (ms)", p.Censored)
	case !(p.Refractory > p.Censored) || !finite(p.Refractory):
		return bad("refractory period (ms), want above the censored period,", p.Refractory)
	case p.CutoffBins < 1:
		return bad("amplitude cutoff bins", float64(p.CutoffBins))
	case !(p.CutoffSmoothing > 0) || !finite(p.CutoffSmoothing):
		return bad("amplitude cutoff smoothing (bins)", p.CutoffSmoothing)
	case !(p.CutoffMinRatio >= 0) || !finite(p.CutoffMinRatio):
		return bad("amplitude cutoff spikes per bin", p.CutoffMinRatio)
	case p.MinSpikes < 0:
		return bad("fewest spikes of a good unit", float64(p.MinSpikes))
	case !(p.MaxContamination >= 0) || !finite(p.MaxContamination):
		return bad("largest contamination of a good unit", p.MaxContamination)
	}
	return nil
}

// Errors.
var (
	// ErrParam reports a parameter out of range.
	ErrParam = errors.New("parameter out of range")
	// ErrInput reports inputs that cannot be measured: spike times not in
	// increasing order or past the end of the recording, amplitudes not
	// one per spike, a sample rate that is not positive.
	ErrInput = errors.New("bad input")
)

// Metrics are one unit's quality metrics, with SpikeInterface's names
// (schema.Metrics: the JSON keys and the columns of units.csv). A metric
// that is not defined for the unit is NaN; the two violation counts are -1
// for a unit without spikes.
type Metrics = schema.Metrics

// Input is what the metrics of one unit are computed from.
type Input struct {
	// Spikes are the unit's spike sample indices, counted from the first
	// sample of the recording, in increasing order (repeats allowed).
	Spikes []uint64
	// Amplitudes are the spikes' amplitudes in µV (signed: negative for
	// troughs), one per spike; nil leaves amplitude_cutoff and
	// amplitude_median NaN.
	Amplitudes []float32
	// Template is the unit's mean waveform in µV on its channel; Noise the
	// channel's noise σ in µV (MAD/0.6745). snr is max|Template| / Noise,
	// NaN when either is missing.
	Template []float32
	Noise    float32
}

// Compute returns the metrics of one unit of a recording of samples
// samples at rate Hz.
func (p Params) Compute(in Input, samples uint64, rate float64) (Metrics, error) {
	if err := p.Validate(); err != nil {
		return Metrics{}, err
	}
	p = p.Defaults()
	if !(rate > 0) || math.IsInf(rate, 0) {
		return Metrics{}, fmt.Errorf("quality: sample rate %g Hz: %w", rate, ErrInput)
	}
	for i, s := range in.Spikes {
		if s >= samples {
			return Metrics{}, fmt.Errorf("quality: spike %d at sample %d, past the recording's %d samples: %w", i, s, samples, ErrInput)
		}
		if i > 0 && s < in.Spikes[i-1] {
			return Metrics{}, fmt.Errorf("quality: spike %d at sample %d before spike %d at %d: %w", i, s, i-1, in.Spikes[i-1], ErrInput)
		}
	}
	if in.Amplitudes != nil && len(in.Amplitudes) != len(in.Spikes) {
		return Metrics{}, fmt.Errorf("quality: %d amplitudes for %d spikes: %w", len(in.Amplitudes), len(in.Spikes), ErrInput)
	}
	n := len(in.Spikes)
	m := Metrics{NumSpikes: n}
	m.FiringRate = firingRate(n, samples, rate)
	m.PresenceRatio = p.presenceRatio(in.Spikes, samples, rate)
	m.SNR = snr(in.Template, in.Noise)
	m.ISIViolationsRatio, m.ISIViolationsCount = p.isiViolations(in.Spikes, samples, rate)
	m.RPContamination, m.RPViolations = p.rpViolations(in.Spikes, samples, rate)
	m.AmplitudeMedian, m.AmplitudeCutoff = math.NaN(), math.NaN()
	if in.Amplitudes != nil {
		sorted := slices.Clone(in.Amplitudes)
		slices.Sort(sorted)
		med := median32(sorted)
		m.AmplitudeMedian = float64(med)
		m.AmplitudeCutoff = p.amplitudeCutoff(in.Amplitudes, sorted, med < 0)
	}
	return m, nil
}

// duration is the recording's length in seconds, as SpikeInterface
// computes it (total samples / rate).
func duration(samples uint64, rate float64) float64 { return float64(samples) / rate }

// firingRate is num_spikes / duration; NaN without spikes.
func firingRate(n int, samples uint64, rate float64) float64 {
	if n == 0 {
		return math.NaN()
	}
	return float64(n) / duration(samples, rate)
}

// binSamples is the presence bin in samples (truncated, as SpikeInterface).
func (p Params) binSamples(rate float64) uint64 { return uint64(p.PresenceBin * rate) }

// presenceRatio is the fraction of the recording's whole bins that hold
// at least one spike. The bins are [k·B, (k+1)·B) for k < K = samples/B,
// the last one closed ([(K-1)·B, K·B]); spikes after K·B are not counted.
// NaN when the recording is shorter than one bin or there are no spikes.
func (p Params) presenceRatio(spikes []uint64, samples uint64, rate float64) float64 {
	b := p.binSamples(rate)
	if b == 0 || samples < b || len(spikes) == 0 {
		return math.NaN()
	}
	k := samples / b
	active, last := uint64(0), uint64(math.MaxUint64)
	for _, s := range spikes {
		if s > k*b {
			break
		}
		bin := min(s/b, k-1)
		if bin != last {
			active++
			last = bin
		}
	}
	return float64(active) / float64(k)
}

// snr is max|template| / noise, divided in float32 as SpikeInterface does;
// NaN if either is missing or noise is not positive.
func snr(template []float32, noise float32) float64 {
	if len(template) == 0 || !(noise > 0) || math.IsInf(float64(noise), 0) {
		return math.NaN()
	}
	var peak float32
	for _, v := range template {
		peak = max(peak, float32(math.Abs(float64(v))))
	}
	return float64(peak / noise)
}

// isiViolated reports whether the interval from sample a to sample b is
// an ISI violation. The times are converted to seconds before they are
// subtracted, as SpikeInterface does, so that a gap of exactly the
// threshold is decided the same way.
func isiViolated(a, b uint64, rate, threshold float64) bool {
	return float64(b)/rate-float64(a)/rate < threshold
}

// isiRatio is Hill et al.'s ISI violations ratio for n spikes and v
// violations: the rate of the hypothetical contaminating neuron over the
// unit's rate. NaN without spikes.
func (p Params) isiRatio(n, v int, samples uint64, rate float64) float64 {
	if n == 0 {
		return math.NaN()
	}
	thr, minISI := p.ISIThreshold/1000, p.MinISI/1000
	violationTime := float64(2*n) * (thr - minISI)
	totalRate := float64(n) / duration(samples, rate)
	return float64(v) / violationTime / totalRate
}

// isiViolations returns isi_violations_ratio and isi_violations_count:
// adjacent spikes closer than ISIThreshold.
func (p Params) isiViolations(spikes []uint64, samples uint64, rate float64) (float64, int) {
	if len(spikes) == 0 {
		return math.NaN(), -1
	}
	thr := p.ISIThreshold / 1000
	v := 0
	for i := 1; i < len(spikes); i++ {
		if isiViolated(spikes[i-1], spikes[i], rate, thr) {
			v++
		}
	}
	return p.isiRatio(len(spikes), v, samples, rate), v
}

// periods returns the refractory and censored periods in samples, rounded
// half to even as Python's round.
func (p Params) periods(rate float64) (tr, tc uint64) {
	return uint64(math.RoundToEven(p.Refractory * rate * 1e-3)), uint64(math.RoundToEven(p.Censored * rate * 1e-3))
}

// rpContamination is Llobet et al.'s contamination estimate from v
// refractory period violations among n spikes: the root of
// 1 - v·(T - 2·n·tc) / (n²·(tr - tc)), 1 when that is negative. NaN
// with fewer than 2 spikes.
func (p Params) rpContamination(n, v int, samples uint64, rate float64) float64 {
	if n <= 1 {
		return math.NaN()
	}
	tr, tc := p.periods(rate)
	fn := float64(n)
	denom := 1 - float64(v)*(float64(samples)-2*fn*float64(tc))/(fn*fn*float64(tr-tc))
	if denom < 0 {
		return 1
	}
	return 1 - math.Sqrt(denom)
}

// rpViolations returns rp_contamination and rp_violations: the number of
// pairs of spikes (not only adjacent ones) at most Refractory apart.
func (p Params) rpViolations(spikes []uint64, samples uint64, rate float64) (float64, int) {
	if len(spikes) == 0 {
		return math.NaN(), -1
	}
	tr, _ := p.periods(rate)
	v := 0
	for i, s := range spikes {
		for _, t := range spikes[i+1:] {
			if t-s > tr {
				break
			}
			v++
		}
	}
	return p.rpContamination(len(spikes), v, samples, rate), v
}

// median32 is NumPy's median of sorted float32 values: the middle value,
// or the float32 mean of the two middle ones; NaN when empty.
func median32(sorted []float32) float32 {
	n := len(sorted)
	if n == 0 {
		return float32(math.NaN())
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
