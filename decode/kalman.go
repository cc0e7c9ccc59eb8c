package decode

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// kalmanStates returns the state sequence (rows × d, time-major) for every
// bin of ds and the state names: the outputs, then for
// StatePositionVelocity their running integrals (output·seconds; held
// across bins without behaviour).
func kalmanStates(ds *Dataset, state string) ([]float64, []string) {
	no := len(ds.Outputs)
	names := append([]string(nil), ds.Outputs...)
	if state != StatePositionVelocity {
		return ds.Behaviour, names
	}
	for _, n := range ds.Outputs {
		names = append(names, "int_"+n)
	}
	d := 2 * no
	dt := float64(ds.Bins.Width) / ds.Bins.Rate
	x := make([]float64, ds.Len()*d)
	integ := make([]float64, no)
	for t := range ds.Len() {
		if ds.BehaviourObserved[t] {
			for o := range no {
				integ[o] += ds.Behaviour[t*no+o] * dt
			}
		}
		copy(x[t*d:], ds.Behaviour[t*no:(t+1)*no])
		copy(x[t*d+no:], integ)
	}
	return x, names
}

// leastSquares solves min ‖X·B - Y‖ (QR, via mat.Dense.Solve) and returns
// B and the residual covariance RᵀR/(n - cols).
func leastSquares(x, y *mat.Dense) (*mat.Dense, *mat.SymDense, error) {
	n, k := x.Dims()
	_, c := y.Dims()
	if n <= k {
		return nil, nil, fmt.Errorf("%w: %d bins for %d regressors", ErrTooFewBins, n, k)
	}
	var b mat.Dense
	if err := b.Solve(x, y); err != nil {
		return nil, nil, fmt.Errorf("decode: least squares: %w", err)
	}
	var r mat.Dense
	r.Mul(x, &b)
	r.Sub(y, &r)
	// RᵀR by Dgemm (blocked, parallel), several times faster than gonum's
	// Dsyrk for many units; the upper triangle makes the SymDense.
	var rr mat.Dense
	rr.Mul(r.T(), &r)
	rr.Scale(1/float64(n-k), &rr)
	return &b, mat.NewSymDense(c, rr.RawMatrix().Data), nil
}

func fitKalman(m *Model, ds *Dataset, trainEnd int, cfg FitConfig) error {
	state := cfg.State
	if state == "" {
		state = StateVelocity
	}
	if state != StateVelocity && state != StatePositionVelocity {
		return fmt.Errorf("decode: kalman state %q, want %q or %q", state, StateVelocity, StatePositionVelocity)
	}
	if cfg.Shrink < 0 || cfg.Shrink > 1 {
		return fmt.Errorf("decode: kalman Q shrinkage %g, want in [0, 1]", cfg.Shrink)
	}
	m.Lags = 1
	xs, names := kalmanStates(ds, state)
	d := len(names)
	nu := len(m.Keys)
	b := ds.Bins

	// State model: x[t] = A x[t-1] + a + w over consecutive behaviour bins.
	var pairs []int
	for t := 1; t < trainEnd; t++ {
		if ds.BehaviourObserved[t] && ds.BehaviourObserved[t-1] {
			pairs = append(pairs, t)
		}
	}
	if len(pairs) < 2*(d+1) {
		return fmt.Errorf("%w: %d consecutive behaviour bins for the state model", ErrTooFewBins, len(pairs))
	}
	xa := mat.NewDense(len(pairs), d+1, nil)
	ya := mat.NewDense(len(pairs), d, nil)
	for r, t := range pairs {
		row := xa.RawRowView(r)
		copy(row, xs[(t-1)*d:t*d])
		row[d] = 1
		copy(ya.RawRowView(r), xs[t*d:(t+1)*d])
	}
	ba, wcov, err := leastSquares(xa, ya)
	if err != nil {
		return err
	}

	// Observation model: z[t] = H x[t] + c + q over bins with both.
	var obs []int
	for t := range trainEnd {
		if ds.BehaviourObserved[t] && b.Observed[t] {
			obs = append(obs, t)
		}
	}
	if len(obs) < 2*(d+1) {
		return fmt.Errorf("%w: %d bins with spikes and behaviour", ErrTooFewBins, len(obs))
	}
	xh := mat.NewDense(len(obs), d+1, nil)
	z := mat.NewDense(len(obs), nu, nil)
	for r, t := range obs {
		row := xh.RawRowView(r)
		copy(row, xs[t*d:(t+1)*d])
		row[d] = 1
		zr := z.RawRowView(r)
		for j, c := range b.Row(t) {
			zr[j] = (c - m.Mean[j]) / m.Std[j]
		}
	}
	bh, q, err := leastSquares(xh, z)
	if err != nil {
		return err
	}
	// Shrink Q toward its diagonal so it stays well conditioned when units
	// are many compared with bins.
	shrink := cfg.Shrink
	if shrink == 0 {
		shrink = float64(nu) / float64(nu+len(obs))
	}
	for i := range nu {
		for j := 0; j < i; j++ {
			q.SetSym(i, j, (1-shrink)*q.At(i, j))
		}
		if q.At(i, i) < 1e-6 {
			q.SetSym(i, i, 1e-6) // a unit the state explains perfectly
		}
	}
	var qc mat.Cholesky
	if !qc.Factorize(q) {
		return errors.New("decode: kalman observation noise Q is not positive definite")
	}
	h := mat.NewDense(nu, d, nil) // H = B[:d]ᵀ
	for i := range d {
		for j := range nu {
			h.Set(j, i, bh.At(i, j))
		}
	}
	qinvH := mat.NewDense(nu, d, nil)
	if err := qc.SolveTo(qinvH, h); err != nil {
		var cond mat.Condition
		if !errors.As(err, &cond) {
			return err
		}
	}
	htqinvh := mat.NewDense(d, d, nil)
	htqinvh.Mul(h.T(), qinvH)
	hoff := make([]float64, d) // Hᵀ Q⁻¹ c
	for i := range d {
		for j := range nu {
			hoff[i] += qinvH.At(j, i) * bh.At(d, j)
		}
	}

	// Initial state: the training mean and covariance of the state.
	x0 := make([]float64, d)
	p0 := mat.NewDense(d, d, nil)
	for _, t := range obs {
		for i := range d {
			x0[i] += xs[t*d+i] / float64(len(obs))
		}
	}
	for _, t := range obs {
		for i := range d {
			for k := range d {
				p0.Set(i, k, p0.At(i, k)+(xs[t*d+i]-x0[i])*(xs[t*d+k]-x0[k])/float64(len(obs)-1))
			}
		}
	}

	kp := &KalmanParams{
		State:        state,
		StateNames:   names,
		A:            make([][]float64, d),
		AOffset:      make([]float64, d),
		W:            make([][]float64, d),
		HtQinv:       make([][]float64, d),
		HtQinvH:      make([][]float64, d),
		HtQinvOffset: hoff,
		X0:           x0,
		P0:           make([][]float64, d),
		Shrink:       shrink,
		Steady:       cfg.Steady,
	}
	// A tiny jitter keeps W positive definite when a state component is
	// an exact function of the others (e.g. an integral).
	wscale := 0.0
	for i := range d {
		wscale += wcov.At(i, i) / float64(d)
	}
	for i := range d {
		kp.A[i] = make([]float64, d)
		kp.W[i] = make([]float64, d)
		kp.HtQinvH[i] = make([]float64, d)
		kp.P0[i] = make([]float64, d)
		for k := range d {
			kp.A[i][k] = ba.At(k, i)
			kp.W[i][k] = wcov.At(i, k)
			kp.HtQinvH[i][k] = 0.5 * (htqinvh.At(i, k) + htqinvh.At(k, i))
			kp.P0[i][k] = p0.At(i, k)
		}
		kp.W[i][i] += 1e-9*wscale + 1e-12
		kp.P0[i][i] += 1e-9*wscale + 1e-12
		kp.AOffset[i] = ba.At(d, i)
		kp.HtQinv[i] = make([]float64, nu)
		for j := range nu {
			kp.HtQinv[i][j] = qinvH.At(j, i)
		}
	}
	if cfg.Steady {
		sp, err := steadyCovariance(kp)
		if err != nil {
			return err
		}
		kp.SteadyP = sp
	}
	m.Kalman = kp
	m.Fit.TrainBins = len(obs)
	return nil
}

// steadyCovariance iterates the Riccati recursion
// P ← ((A P Aᵀ + W)⁻¹ + HᵀQ⁻¹H)⁻¹ from P0 until it converges and returns
// the steady-state posterior covariance.
func steadyCovariance(k *KalmanParams) ([][]float64, error) {
	d := len(k.StateNames)
	a := mat.NewDense(d, d, flatten(k.A))
	w := mat.NewSymDense(d, flatten(k.W))
	minfo := mat.NewSymDense(d, flatten(k.HtQinvH))
	p := mat.NewSymDense(d, flatten(k.P0))
	var ap, apa mat.Dense
	pp := mat.NewSymDense(d, nil)
	var ch mat.Cholesky
	inv := mat.NewSymDense(d, nil)
	next := mat.NewSymDense(d, nil)
	for it := 0; it < 100000; it++ {
		ap.Mul(a, p)
		apa.Mul(&ap, a.T())
		for i := range d {
			for j := i; j < d; j++ {
				pp.SetSym(i, j, 0.5*(apa.At(i, j)+apa.At(j, i))+w.At(i, j))
			}
		}
		if !ch.Factorize(pp) {
			return nil, errors.New("decode: kalman Riccati iteration: predicted covariance not positive definite")
		}
		if err := ch.InverseTo(inv); err != nil {
			return nil, fmt.Errorf("decode: kalman Riccati iteration: %w", err)
		}
		inv.AddSym(inv, minfo)
		if !ch.Factorize(inv) {
			return nil, errors.New("decode: kalman Riccati iteration: posterior information not positive definite")
		}
		if err := ch.InverseTo(next); err != nil {
			return nil, fmt.Errorf("decode: kalman Riccati iteration: %w", err)
		}
		diff, scale := 0.0, 0.0
		for i := range d {
			for j := range d {
				diff = math.Max(diff, math.Abs(next.At(i, j)-p.At(i, j)))
				scale = math.Max(scale, math.Abs(next.At(i, j)))
			}
		}
		p.CopySym(next)
		if diff <= 1e-12*scale {
			out := make([][]float64, d)
			for i := range d {
				out[i] = make([]float64, d)
				for j := range d {
					out[i][j] = p.At(i, j)
				}
			}
			return out, nil
		}
	}
	return nil, errors.New("decode: kalman Riccati iteration did not converge")
}
