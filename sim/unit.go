package sim

import (
	"math"
	"math/rand/v2"
)

// Template window around the continuous trough, in milliseconds.
const (
	templatePreMs  = 1.0
	templatePostMs = 2.5
	jitterPhases   = 4 // sub-sample phases a spike may fall on
)

// Unit is one simulated single unit: the ground truth a sorter should
// recover. All fields are fixed for the life of the simulator.
type Unit struct {
	ID      int32  // unique, > 0; ground-truth spikes carry it
	Channel int    // 0-based channel the unit is recorded on (no cross-talk)
	Kind    string // "narrow" (fast-spiking) or "broad" (regular-spiking)

	// Template is the raw (unfiltered) mean waveform in µV sampled at the
	// sample rate, with the continuous trough exactly at index Pre. Spikes
	// are rendered from it at a random sub-sample phase, scaled by drift
	// and burst attenuation. Shared; do not modify.
	Template []float32
	Pre      int

	PeakUV     float64 // raw template value at the trough (negative)
	BandPeakUV float64 // extremum of the template after the 300–6000 Hz causal band-pass (3rd-order Butterworth)
	BandLag    int     // samples from the raw trough to that extremum (the causal filter's delay)
	NoiseUV    float64 // rms of the channel's background noise in the 300–6000 Hz band
	SNR        float64 // |BandPeakUV| / NoiseUV (+Inf without noise)
	WidthMs    float64 // trough-to-peak time of the raw template

	BaselineHz   float64 // b in the tuning formula
	ModulationHz float64 // m in the tuning formula (0 if untuned)
	PreferredDir float64 // θ in radians, counter-clockwise from +x
	Tuned        bool

	RefractoryMs float64 // absolute refractory period
	BurstProb    float64 // probability that a spike starts a burst
}

// shape holds the rate-independent parameters of a unit's waveform; times
// in ms relative to the trough, amplitudes relative to the trough depth.
type shape struct {
	sigFall, sigRise      float64 // trough half-widths before and after the minimum
	post, postAt, postSig float64 // repolarisation peak
	pre, preAt, preSig    float64 // initial positive phase (triphasic units)
	shift, norm           float64 // shift puts the minimum at 0; norm makes it -1
}

func (p *shape) raw(t float64) float64 {
	s := p.sigRise
	if t < 0 {
		s = p.sigFall
	}
	w := -math.Exp(-t * t / (2 * s * s))
	d := t - p.postAt
	w += p.post * math.Exp(-d*d/(2*p.postSig*p.postSig))
	if p.pre != 0 {
		d = t + p.preAt
		w += p.pre * math.Exp(-d*d/(2*p.preSig*p.preSig))
	}
	return w
}

// at is the normalised waveform (trough -1 at t = 0), tapered to zero at
// the window edges.
func (p *shape) at(t float64) float64 {
	if t <= -templatePreMs || t >= templatePostMs {
		return 0
	}
	w := p.raw(t+p.shift) * p.norm
	const taperPre, taperPost = 0.3, 0.5
	if t < -templatePreMs+taperPre {
		x := (t + templatePreMs) / taperPre
		w *= 0.5 - 0.5*math.Cos(math.Pi*x)
	} else if t > templatePostMs-taperPost {
		x := (templatePostMs - t) / taperPost
		w *= 0.5 - 0.5*math.Cos(math.Pi*x)
	}
	return w
}

// finish locates the minimum on a fine grid and sets shift and norm; it
// returns the trough-to-peak width in ms.
func (p *shape) finish() float64 {
	p.shift, p.norm = 0, 1
	// Coarse grids, then golden-section refinement around the extremum.
	tmin := argExtreme(func(t float64) float64 { return p.raw(t) }, -0.3, 0.3, 0.005)
	p.shift, p.norm = tmin, -1/p.raw(tmin)
	return argExtreme(func(t float64) float64 { return -p.at(t) }, 0, templatePostMs, 0.01)
}

// argExtreme returns where f is smallest on [lo, hi], searching a grid of
// step dt and refining the best cell by golden-section search.
func argExtreme(f func(float64) float64, lo, hi, dt float64) float64 {
	best, fb := lo, f(lo)
	for t := lo + dt; t <= hi; t += dt {
		if v := f(t); v < fb {
			best, fb = t, v
		}
	}
	a, b := math.Max(lo, best-dt), math.Min(hi, best+dt)
	const g = 0.6180339887498949
	c, d := b-g*(b-a), a+g*(b-a)
	fc, fd := f(c), f(d)
	for b-a > 1e-7 {
		if fc < fd {
			b, d, fd = d, c, fc
			c = b - g*(b-a)
			fc = f(c)
		} else {
			a, c, fc = c, d, fd
			d = a + g*(b-a)
			fd = f(d)
		}
	}
	return (a + b) / 2
}

// unitModel is a Unit plus its private generation parameters.
type unitModel struct {
	Unit
	shape       shape
	amp         float64 // trough depth, µV (positive)
	driftPeriod float64 // seconds
	driftPhase  float64
}

func logUniform(r *rand.Rand, lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo)))
}

func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }

// newShape draws a waveform of the given kind.
func newShape(r *rand.Rand, narrow bool) shape {
	var p shape
	if narrow {
		p.sigFall = uniform(r, 0.05, 0.07)
		p.sigRise = uniform(r, 0.07, 0.10)
		p.post = uniform(r, 0.35, 0.7)
		p.postAt = uniform(r, 0.2, 0.35)
		p.postSig = uniform(r, 0.08, 0.14)
	} else {
		p.sigFall = uniform(r, 0.07, 0.10)
		p.sigRise = uniform(r, 0.10, 0.18)
		p.post = uniform(r, 0.12, 0.35)
		p.postAt = uniform(r, 0.45, 1.1)
		p.postSig = uniform(r, 0.2, 0.4)
	}
	if r.Float64() < 0.5 { // triphasic: a small positive phase before the trough
		p.pre = uniform(r, 0.08, 0.25)
		p.preAt = uniform(r, 0.18, 0.3)
		p.preSig = uniform(r, 0.06, 0.1)
	}
	return p
}

// newUnits draws the units of every channel from the seed.
func newUnits(cfg *Config) []*unitModel {
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x756e697473)) // "units"
	var units []*unitModel
	id := int32(1)
	for ch := 0; ch < cfg.Channels; ch++ {
		n := cfg.MinUnits + r.IntN(cfg.MaxUnits-cfg.MinUnits+1)
		first := len(units)
		for k := 0; k < n; k++ {
			u := &unitModel{}
			u.ID, u.Channel = id, ch
			id++
			narrow := r.Float64() < 0.3
			u.Kind = "broad"
			if narrow {
				u.Kind = "narrow"
			}
			u.shape = newShape(r, narrow) // finished below
			// Units on one channel must be told apart by a sorter:
			// redraw an amplitude within 15% of a same-kind neighbour.
			for try := 0; ; try++ {
				u.amp = logUniform(r, cfg.MinPeakUV, cfg.MaxPeakUV)
				ok := true
				for _, v := range units[first:] {
					if v.Kind == u.Kind && math.Abs(u.amp/v.amp-1) < 0.15 {
						ok = false
					}
				}
				if ok || try == 20 {
					break
				}
			}
			if narrow {
				u.BaselineHz = logUniform(r, 5, 30)
				u.RefractoryMs = uniform(r, 1.0, 1.5)
			} else {
				u.BaselineHz = logUniform(r, 1, 15)
				u.RefractoryMs = uniform(r, 1.5, 2.5)
				if !cfg.NoBursts && r.Float64() < 0.4 {
					u.BurstProb = uniform(r, 0.05, 0.3)
				}
			}
			u.PreferredDir = r.Float64() * 2 * math.Pi
			if r.Float64() < cfg.TunedFraction {
				u.Tuned = true
				u.ModulationHz = u.BaselineHz * uniform(r, 0.5, 1.2)
			}
			u.driftPeriod = uniform(r, 120, 600)
			u.driftPhase = r.Float64() * 2 * math.Pi
			u.PeakUV = -u.amp
			units = append(units, u)
		}
	}
	// Normalising the shapes (a search for their extrema) draws nothing:
	// units in parallel.
	forRanges(len(units), func(lo, hi int) {
		for _, u := range units[lo:hi] {
			u.WidthMs = u.shape.finish()
		}
	})
	return units
}

// templateAt samples the unit's template at sample rate rate with the
// continuous trough at index pre+phase (0 <= phase < 1).
func (u *unitModel) templateAt(dst []float64, rate float64, pre int, phase float64) {
	for j := range dst {
		t := (float64(j-pre) - phase) * 1000 / rate
		dst[j] = u.amp * u.shape.at(t)
	}
}
