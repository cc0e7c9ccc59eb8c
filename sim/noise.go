package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"gonum.org/v1/gonum/dsp/fourier"

	"github.com/spikeline/spikeline/dsp"
)

// Background noise is read from a small bank of precomputed, seamlessly
// periodic noise tiles: every channel adds one tile of length 2^14 and one
// of length 3^9 at its own offsets. The two lengths are coprime, so a
// channel's noise repeats only after 2^14·3^9 samples (3 h at 30 kHz), and
// the whole bank (288 KiB) stays in a core's L2 cache. Each tile is coloured noise with the spectrum of a real
// headstage (white + 1/f, 7.5 kHz anti-alias roll-off) synthesised in the
// frequency domain, plus multi-unit hum: dozens of small, distant units
// firing at random. Channels that share a tile read it at offsets spread
// evenly around it, so their noise is uncorrelated at equal times (it
// correlates by 0.5 only at one lag of at least tileLen/sharers samples).
const (
	tileLenA   = 1 << 14 // 16384
	tileLenB   = 19683   // 3^9, coprime with tileLenA
	tilesPerAB = 4
	humUnits   = 40
)

// band300to6000 returns the spike-band filter used for calibration and
// SNR: the sorter's default 3rd-order Butterworth band-pass.
func bandFilter(rate float64) []dsp.Section {
	hi := math.Min(6000, 0.45*rate)
	lo := math.Min(300, hi/4)
	sec, err := dsp.Butterworth(3, lo, hi, rate)
	if err != nil {
		panic("sim: band filter: " + err.Error()) // rate is validated
	}
	return sec
}

// filterSOS runs x through sections in place (direct form II transposed),
// starting from state z (len 2·len(sec)), which it updates.
func filterSOS(sec []dsp.Section, z []float64, x []float64) {
	for i, v := range x {
		for k, s := range sec {
			y := s.B0*v + z[2*k]
			z[2*k] = s.B1*v - s.A1*y + z[2*k+1]
			z[2*k+1] = s.B2*v - s.A2*y
			v = y
		}
		x[i] = v
	}
}

// bandRMS is the rms of periodic x after the band filter in steady state
// (the filter runs over x twice; the second pass is measured).
func bandRMS(sec []dsp.Section, x []float64) float64 {
	z := make([]float64, 2*len(sec))
	y := make([]float64, len(x))
	copy(y, x)
	filterSOS(sec, z, y)
	copy(y, x)
	filterSOS(sec, z, y)
	var ss float64
	for _, v := range y {
		ss += v * v
	}
	return math.Sqrt(ss / float64(len(y)))
}

// colouredNoise returns n samples of periodic Gaussian noise whose power
// spectrum is white plus 1/f (equal at 500 Hz), rolled off by a 3rd-order
// anti-alias low-pass at min(7500 Hz, 0.4·rate) and a 0.5 Hz high-pass.
func colouredNoise(r *rand.Rand, n int, rate float64) []float64 {
	fc := math.Min(7500, 0.4*rate)
	coeff := make([]complex128, n/2+1)
	for k := 1; k < len(coeff); k++ {
		f := float64(k) * rate / float64(n)
		s := 1 + 500/f
		s /= 1 + math.Pow(f/fc, 6)
		h := (f / 0.5) * (f / 0.5)
		s *= h / (1 + h)
		a := math.Sqrt(s / 2)
		coeff[k] = complex(a*r.NormFloat64(), a*r.NormFloat64())
	}
	if n%2 == 0 {
		coeff[n/2] = complex(real(coeff[n/2])*math.Sqrt2, 0)
	}
	return fourier.NewFFT(n).Sequence(nil, coeff)
}

// humNoise renders humUnits small units firing at random into a periodic
// buffer of n samples (unit amplitude; the caller calibrates).
func humNoise(r *rand.Rand, n int, rate float64) []float64 {
	x := make([]float64, n)
	pre := int(math.Round(templatePreMs * rate / 1000))
	post := int(math.Round(templatePostMs * rate / 1000))
	w := make([]float64, pre+post)
	for h := 0; h < humUnits; h++ {
		u := unitModel{shape: newShape(r, r.Float64() < 0.3)}
		u.shape.finish()
		u.amp = logUniform(r, 0.3, 1)
		u.templateAt(w, rate, pre, 0)
		hz := logUniform(r, 2, 20)
		refr := 0.002 * rate
		for t := r.ExpFloat64() * rate / hz; t < float64(n); t += refr + r.ExpFloat64()*rate/hz {
			s := int(t)
			for j, v := range w {
				x[(s+j)%n] += v
			}
		}
	}
	return x
}

// tileBank is the shared background noise, in counts.
type tileBank struct {
	a, b   [][]int16 // tilesPerAB tiles of tileLenA and of tileLenB
	sa, sb []float64 // spike-band rms of each tile, µV
}

// tileKey identifies the inputs of a tile bank.
type tileKey struct {
	seed                           int64
	rate, gain, noise, spread, hum float64
}

// tileCache keeps the last few tile banks: building one takes a few
// hundred milliseconds and tests build many simulators with one seed.
var tileCache struct {
	sync.Mutex
	keys  []tileKey
	banks []*tileBank
}

// tilesFor returns a private copy (the tile data are shared and never
// written) of the tile bank for cfg, from the cache when possible.
func tilesFor(cfg *Config) *tileBank {
	hum := cfg.HumFraction
	if cfg.NoHum {
		hum = 0
	}
	k := tileKey{cfg.Seed, cfg.Rate, cfg.Gain, cfg.NoiseUV, cfg.NoiseSpread, hum}
	tileCache.Lock()
	defer tileCache.Unlock()
	var tb *tileBank
	if i := slices.Index(tileCache.keys, k); i >= 0 {
		tb = tileCache.banks[i]
	} else {
		tb = newTileBank(cfg)
		if len(tileCache.keys) == 4 {
			tileCache.keys, tileCache.banks = tileCache.keys[1:], tileCache.banks[1:]
		}
		tileCache.keys = append(tileCache.keys, k)
		tileCache.banks = append(tileCache.banks, tb)
	}
	c := *tb
	c.a, c.b = slices.Clone(tb.a), slices.Clone(tb.b)
	return &c
}

// newTileBank synthesises and calibrates the noise tiles: tile k has
// spike-band rms NoiseUV·f_k/√2 with f_k in 1±NoiseSpread, of which a
// share HumFraction of the variance is hum.
func newTileBank(cfg *Config) *tileBank {
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6e6f697365)) // "noise"
	sec := bandFilter(cfg.Rate)
	hum := cfg.HumFraction
	if cfg.NoHum {
		hum = 0
	}
	tb := &tileBank{}
	var float [][]float64
	for i := 0; i < 2*tilesPerAB; i++ {
		n := tileLenA
		if i >= tilesPerAB {
			n = tileLenB
		}
		f := 1 + cfg.NoiseSpread*(2*r.Float64()-1)
		sigma := cfg.NoiseUV * f / math.Sqrt2
		x := colouredNoise(r, n, cfg.Rate)
		gx := sigma * math.Sqrt(1-hum) / bandRMS(sec, x)
		for j := range x {
			x[j] *= gx
		}
		if hum > 0 {
			h := humNoise(r, n, cfg.Rate)
			gh := sigma * math.Sqrt(hum) / bandRMS(sec, h)
			for j := range x {
				x[j] += gh * h[j]
			}
		}
		// The sum of independent coloured noise and hum has the target
		// band variance only on average: rescale exactly.
		g := sigma / bandRMS(sec, x)
		for j := range x {
			x[j] *= g
		}
		float = append(float, x)
		if i < tilesPerAB {
			tb.sa = append(tb.sa, sigma)
		} else {
			tb.sb = append(tb.sb, sigma)
		}
	}
	// Counts (validation keeps the noise well inside the int16 range).
	scale := 1 / cfg.Gain
	for i, x := range float {
		t := make([]int16, len(x))
		for j, v := range x {
			t[j] = int16(math.Max(-32767, math.Min(32767, math.Round(v*scale))))
		}
		if i < tilesPerAB {
			tb.a = append(tb.a, t)
		} else {
			tb.b = append(tb.b, t)
		}
	}
	return tb
}

// lfpSource is one 1/f² LFP generator with theta (7 Hz) and beta (20 Hz)
// rhythms, stepped at about 1 kHz and low-passed at 100 Hz (4th-order
// Butterworth) so that it stays out of the spike band; unit variance.
type lfpSource struct {
	y, t1, t2, b1, b2 float64
	z                 [4]float64 // low-pass state
}

type lfpParams struct {
	a, ga        float64 // brown component: AR(1)
	tc1, tc2, gt float64 // theta resonator AR(2) coefficients and gain
	bc1, bc2, gb float64 // beta resonator
	lp           []dsp.Section
}

// lowPass4 is a 4th-order Butterworth low-pass at fc as two biquads
// (bilinear transform with prewarping, RBJ form with the Butterworth Qs).
func lowPass4(fc, fs float64) []dsp.Section {
	var sec []dsp.Section
	w := 2 * math.Pi * fc / fs
	cw, sw := math.Cos(w), math.Sin(w)
	for _, q := range []float64{0.5411961001461969, 1.3065629648763766} {
		alpha := sw / (2 * q)
		a0 := 1 + alpha
		sec = append(sec, dsp.Section{
			B0: (1 - cw) / 2 / a0, B1: (1 - cw) / a0, B2: (1 - cw) / 2 / a0,
			A1: -2 * cw / a0, A2: (1 - alpha) / a0,
		})
	}
	return sec
}

func newLFPParams(lrate float64) lfpParams {
	var p lfpParams
	p.a = math.Exp(-2 * math.Pi * 2 / lrate)
	varA := 1 / (1 - p.a*p.a)
	res := func(f, bw float64) (c1, c2, v float64) {
		r := math.Exp(-2 * math.Pi * bw / lrate)
		w := 2 * math.Pi * f / lrate
		c1, c2 = 2*r*math.Cos(w), -r*r
		// Stationary variance of x[n] = c1 x[n-1] + c2 x[n-2] + e[n].
		v = (1 - c2) / ((1 + c2) * ((1-c2)*(1-c2) - c1*c1))
		return
	}
	var vt, vb float64
	p.tc1, p.tc2, vt = res(7, 1.5)
	p.bc1, p.bc2, vb = res(20, 4)
	p.ga = math.Sqrt(0.8 / varA)
	p.gt = math.Sqrt(0.15 / vt)
	p.gb = math.Sqrt(0.05 / vb)
	p.lp = lowPass4(math.Min(100, 0.2*lrate), lrate)
	return p
}

func (s *lfpSource) step(p *lfpParams, r *rand.Rand) float64 {
	s.y = p.a*s.y + r.NormFloat64()
	t := p.tc1*s.t1 + p.tc2*s.t2 + r.NormFloat64()
	s.t2, s.t1 = s.t1, t
	b := p.bc1*s.b1 + p.bc2*s.b2 + r.NormFloat64()
	s.b2, s.b1 = s.b1, b
	v := p.ga*s.y + p.gt*t + p.gb*b
	for k, c := range p.lp {
		y := c.B0*v + s.z[2*k]
		s.z[2*k] = c.B1*v - c.A1*y + s.z[2*k+1]
		s.z[2*k+1] = c.B2*v - c.A2*y
		v = y
	}
	return v
}

// Artifact is one simulated artifact: a movement artifact, common to all
// channels (each group of channels sees it scaled by its own coupling
// gain), or a stimulation train (see Sim.Stimulate).
type Artifact struct {
	Sample  uint64  // first sample
	Samples int     // length in samples
	PeakUV  float64 // signed peak before per-group coupling
	Channel int     // -1 for movement artifacts; the electrode of a stimulation train
}

type artifact struct {
	Artifact
	rise, decay float64 // time constants in samples
	norm        float64
}

func (a *artifact) at(n uint64) float64 {
	t := float64(n - a.Sample)
	return a.norm * (1 - math.Exp(-t/a.rise)) * math.Exp(-t/a.decay)
}

func newArtifact(r *rand.Rand, start uint64, rate, peak float64) artifact {
	a := artifact{rise: uniform(r, 0.2, 1) * rate / 1000, decay: uniform(r, 5, 30) * rate / 1000}
	a.Sample = start
	a.Channel = -1
	a.Samples = int(6 * a.decay)
	a.PeakUV = peak * uniform(r, 0.6, 1.4)
	if r.Float64() < 0.5 {
		a.PeakUV = -a.PeakUV
	}
	// Peak of (1-e^{-t/r})e^{-t/d} is at t* = r·ln(1+d/r).
	ts := a.rise * math.Log(1+a.decay/a.rise)
	a.norm = a.PeakUV / ((1 - math.Exp(-ts/a.rise)) * math.Exp(-ts/a.decay))
	return a
}

// BandPass filters x, sampled at rate, in place through the spike band
// of the ground truth (Unit.BandPeakUV, Unit.SNR): the sorter's default
// 3rd-order Butterworth band-pass from 300 to 6000 Hz, causal, from rest.
func BandPass(rate float64, x []float64) {
	sec := bandFilter(rate)
	filterSOS(sec, make([]float64, 2*len(sec)), x)
}
