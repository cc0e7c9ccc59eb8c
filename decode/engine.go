package decode

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// engine is the per-bin arithmetic shared by Online (spikes as they
// arrive) and Predict (binned counts): one code path decodes both.
//
// Every decoder here is linear in the z-scored counts z[j] = (c[j]-Mean[j])/Std[j],
// so a bin is summarised by its projection: acc = Σ_j c[j]·proj[j] - base,
// where proj[j] is unit j's row (p values) and base = Σ_j Mean[j]·proj[j].
// A spike of unit j adds proj[j] to its bin's accumulator: work per spike
// is p multiply-adds on one contiguous row, and closing a bin costs
// O(p + state²), independent of the number of units.
//
// Wiener: p = Lags·outputs; row j holds Weights[l][j][o]/Std[j] at l·no+o.
// The bin's estimate is Intercept + Σ_l acc(t-l)[l·no:(l+1)·no].
//
// Kalman: p = state size; row j holds HtQinv[:, j]/Std[j], so acc is
// Hᵀ·Q⁻¹·z, the information the bin brings.
type engine struct {
	m      *Model
	kind   Kind
	nu, no int
	p      int
	proj   []float64 // nu × p, unit-major
	base   []float64 // p

	// Wiener
	lags      int
	intercept []float64
	hist      []float64 // lags × p ring of the last bins' (acc - base), zero when unobserved
	t         uint64    // bins stepped
	lastGap   uint64    // 1 + index of the last unobserved bin (0: none)

	// Kalman, state size d = p
	d          int
	a          []float64 // d × d
	aoff       []float64
	w          []float64 // d × d
	mInfo      []float64 // HtQinvH, d × d
	hoff       []float64 // HtQinvOffset
	steady     bool
	x, xp, r   []float64
	pc, pp, tm []float64 // d × d: current P, predicted P, scratch
	pinv       []float64 // d × d scratch
}

func newEngine(m *Model) *engine {
	e := &engine{m: m, kind: m.Kind, nu: len(m.Keys), no: len(m.Outputs)}
	switch m.Kind {
	case Wiener:
		e.lags = m.Lags
		e.p = e.lags * e.no
		e.proj = make([]float64, e.nu*e.p)
		for l, wl := range m.Wiener.Weights {
			for j, wj := range wl {
				for o, v := range wj {
					e.proj[j*e.p+l*e.no+o] = v / m.Std[j]
				}
			}
		}
		e.intercept = m.Wiener.Intercept
		e.hist = make([]float64, e.lags*e.p)
	case Kalman:
		k := m.Kalman
		d := len(k.StateNames)
		e.d, e.p = d, d
		e.proj = make([]float64, e.nu*d)
		for i := range d {
			for j := range e.nu {
				e.proj[j*d+i] = k.HtQinv[i][j] / m.Std[j]
			}
		}
		e.a = flatten(k.A)
		e.aoff = k.AOffset
		e.w = flatten(k.W)
		e.mInfo = flatten(k.HtQinvH)
		e.hoff = k.HtQinvOffset
		e.steady = k.Steady
		e.x = make([]float64, d)
		e.xp = make([]float64, d)
		e.r = make([]float64, d)
		e.pc = make([]float64, d*d)
		e.pp = make([]float64, d*d)
		e.tm = make([]float64, d*d)
		e.pinv = make([]float64, d*d)
	default:
		panic(fmt.Sprintf("decode: engine for kind %q", m.Kind))
	}
	e.base = make([]float64, e.p)
	for j := range e.nu {
		mj := m.Mean[j]
		row := e.proj[j*e.p : (j+1)*e.p]
		for i, v := range row {
			e.base[i] += mj * v
		}
	}
	e.reset()
	return e
}

// reset returns the engine to its state before the first bin.
func (e *engine) reset() {
	e.t = 0
	e.lastGap = 0
	clear(e.hist)
	if e.kind == Kalman {
		copy(e.x, e.m.Kalman.X0)
		if e.steady {
			copy(e.pc, flatten(e.m.Kalman.SteadyP))
		} else {
			copy(e.pc, flatten(e.m.Kalman.P0))
		}
	}
}

func flatten(a [][]float64) []float64 {
	var out []float64
	for _, r := range a {
		out = append(out, r...)
	}
	return out
}

// addCount adds c spikes of column j to acc (len p).
func (e *engine) addCount(acc []float64, j int, c float64) {
	row := e.proj[j*e.p : (j+1)*e.p : (j+1)*e.p]
	acc = acc[:len(row)]
	for i, v := range row {
		acc[i] += c * v
	}
}

// step closes one bin whose raw projection is acc (Σ c[j]·proj[j], not
// yet minus base; ignored when !observed), writes the outputs to out and
// reports whether the estimate is degraded: for Wiener, the bin or a bin
// in its lag window was not observed (replaced by the training mean); for
// Kalman, the bin was not observed (prediction only). acc is left
// unchanged.
func (e *engine) step(acc []float64, observed bool, out []float64) (degraded bool) {
	e.t++
	if !observed {
		e.lastGap = e.t
	}
	if e.kind == Wiener {
		p, no := e.p, e.no
		slot := int((e.t - 1) % uint64(e.lags))
		h := e.hist[slot*p : (slot+1)*p]
		if observed {
			for i := range h {
				h[i] = acc[i] - e.base[i]
			}
		} else {
			clear(h)
		}
		copy(out[:no], e.intercept)
		for l := 0; l < e.lags; l++ {
			s := (slot - l + e.lags) % e.lags
			src := e.hist[s*p+l*no : s*p+(l+1)*no]
			for o, v := range src {
				out[o] += v
			}
		}
		return e.lastGap != 0 && e.t-e.lastGap < uint64(e.lags) || e.t < uint64(e.lags)
	}
	e.kalmanStep(acc, observed)
	copy(out[:e.no], e.x)
	return !observed
}

// kalmanStep runs predict (and, when observed, update) in information
// form: P⁺ = (P⁻⁻¹ + HᵀQ⁻¹H)⁻¹, x⁺ = x⁻ + P⁺·(HᵀQ⁻¹(z - HOffset) - HᵀQ⁻¹H·x⁻).
// The d×d inverses use LAPACK's Cholesky (potrf/potri) on preallocated
// storage: no allocation per bin.
func (e *engine) kalmanStep(acc []float64, observed bool) {
	d := e.d
	// xp = A x + aoff
	for i := range d {
		s := e.aoff[i]
		for k := range d {
			s += e.a[i*d+k] * e.x[k]
		}
		e.xp[i] = s
	}
	if !e.steady {
		// pp = A P Aᵀ + W
		for i := range d {
			for k := range d {
				s := 0.0
				for l := range d {
					s += e.a[i*d+l] * e.pc[l*d+k]
				}
				e.tm[i*d+k] = s
			}
		}
		for i := range d {
			for k := range d {
				s := e.w[i*d+k]
				for l := range d {
					s += e.tm[i*d+l] * e.a[k*d+l]
				}
				e.pp[i*d+k] = s
			}
		}
	}
	if !observed {
		copy(e.x, e.xp)
		if !e.steady {
			copy(e.pc, e.pp)
		}
		return
	}
	if !e.steady {
		// pinv = pp⁻¹ + M; pc = pinv⁻¹
		copy(e.pinv, e.pp)
		if !symInverse(e.pinv, d) {
			// Numerically singular prediction covariance: keep the
			// prediction (cannot weigh the observation).
			copy(e.x, e.xp)
			copy(e.pc, e.pp)
			return
		}
		for i := range e.pinv {
			e.pinv[i] += e.mInfo[i]
		}
		copy(e.pc, e.pinv)
		if !symInverse(e.pc, d) {
			copy(e.x, e.xp)
			copy(e.pc, e.pp)
			return
		}
	}
	// r = acc - base - hoff - M xp
	for i := range d {
		s := acc[i] - e.base[i] - e.hoff[i]
		for k := range d {
			s -= e.mInfo[i*d+k] * e.xp[k]
		}
		e.r[i] = s
	}
	for i := range d {
		s := e.xp[i]
		for k := range d {
			s += e.pc[i*d+k] * e.r[k]
		}
		e.x[i] = s
	}
}

// symInverse replaces the symmetric positive-definite d×d matrix a (both
// triangles) by its inverse using LAPACK Cholesky factorisation and
// inversion; it reports false if a is not positive definite.
func symInverse(a []float64, d int) bool {
	t := blas64.Triangular{Uplo: blas.Upper, Diag: blas.NonUnit, N: d, Stride: d, Data: a}
	if _, ok := lapack64.Potrf(blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: a}); !ok {
		return false
	}
	if _, ok := lapack64.Potri(t); !ok {
		return false
	}
	for i := range d {
		for k := 0; k < i; k++ {
			a[i*d+k] = a[k*d+i]
		}
	}
	return true
}

// Predict decodes binned counts (whose columns must be the model's units,
// in order) bin by bin, exactly as Online would: out is time-major
// (b.Len() rows of len(m.Outputs)), degraded[i] marks estimates made
// without full data (see Estimate.Degraded).
func (m *Model) Predict(b *Binned) (out []float64, degraded []bool, err error) {
	if b.Width != m.BinSamples {
		return nil, nil, fmt.Errorf("decode: bins of %d samples, model uses %d", b.Width, m.BinSamples)
	}
	if b.Grouping != m.Grouping {
		return nil, nil, fmt.Errorf("decode: counts grouped by %s, model by %s", b.Grouping, m.Grouping)
	}
	if len(b.Keys) != len(m.Keys) {
		return nil, nil, m.CheckKeys(b.Keys)
	}
	for j, k := range b.Keys {
		if m.Keys[j] != k {
			return nil, nil, m.CheckKeys(b.Keys)
		}
	}
	e := newEngine(m)
	no := len(m.Outputs)
	out = make([]float64, b.Len()*no)
	degraded = make([]bool, b.Len())
	acc := make([]float64, e.p)
	for i := range b.Len() {
		clear(acc)
		for j, c := range b.Row(i) {
			if c != 0 {
				e.addCount(acc, j, c)
			}
		}
		degraded[i] = e.step(acc, b.Observed[i], out[i*no:(i+1)*no])
	}
	return out, degraded, nil
}
