package decode

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
)

func longTests() bool { return os.Getenv("SPIKELINE_LONG") != "" }

// TestAccuracyBound checks the decoders against the optimal instantaneous
// linear estimator of a cosine-tuned Poisson population.
//
// Derivation. With per-bin counts c_i ~ Poisson(Δ(b + m·v·d_i)), v with
// covariance σ²I per axis, the counts have Cov(c, v) = Δm·D·σ² (D the N×2
// matrix of preferred directions) and Cov(c) = Δb·I + Δ²m²σ²·D·Dᵀ
// (E[Var(c|v)] = Δb because E[v] = 0). The linear MMSE error covariance
// is σ²·(I + (Δm²σ²/b)·DᵀD)⁻¹ (Woodbury); with evenly spaced directions
// DᵀD = (N/2)·I exactly, so each axis has R² = S/(1+S), S = N·Δ·m²·σ²/(2b).
// The formula assumes σ² = 1 and no rectification (b > m·|v| always):
// both are checked on the simulated data.
func TestAccuracyBound(t *testing.T) {
	if testing.Short() {
		t.Skip("fits five decoders on 10 minutes of a simulated population")
	}
	// b/m = 3.75: a rate is clipped at 0 only when v·d < -3.75σ.
	p := &population{Units: 60, Base: 30, Mod: 8, Rate: 30000, Width: 600, Bins: 30000, Rho: 0.95, Seed: 7, FirstID: 1}
	lags := 5 // the default 10 in the long run: same conclusion, 4× the fit cost
	if longTests() {
		p.Units, p.Mod, p.Bins = 200, 6, 60000
		lags = DefaultLags
	}
	spikes, beh := p.generate()
	if frac := float64(p.rectified) / float64(p.Units*p.Bins); frac > 2e-4 {
		t.Fatalf("rates clipped at 0 in %.2g of unit-bins: the bound assumes no rectification", frac)
	}
	// DᵀD = (N/2)·I for the evenly spaced directions.
	var cc, ss, cs float64
	for i := range p.Units {
		a := 2 * math.Pi * float64(i) / float64(p.Units)
		cc += math.Cos(a) * math.Cos(a)
		ss += math.Sin(a) * math.Sin(a)
		cs += math.Cos(a) * math.Sin(a)
	}
	if n2 := float64(p.Units) / 2; math.Abs(cc-n2) > 1e-9 || math.Abs(ss-n2) > 1e-9 || math.Abs(cs) > 1e-9 {
		t.Fatalf("DᵀD = [[%g %g] [%g %g]], want %g·I", cc, cs, cs, ss, n2)
	}
	ds := p.dataset(t, spikes, beh)
	split := ds.SplitRow(0.7)
	// The held-out velocity variance, which the bound's σ² must match.
	sigma2 := make([]float64, 2)
	for o := range 2 {
		var s, s2 float64
		n := float64(ds.Len() - split)
		for i := split; i < ds.Len(); i++ {
			v := ds.Behaviour[i*2+o]
			s += v
			s2 += v * v
		}
		sigma2[o] = s2/n - (s/n)*(s/n)
		if math.Abs(sigma2[o]-1) > 0.2 {
			t.Errorf("held-out velocity variance %s = %.3f, the bound assumes 1", ds.Outputs[o], sigma2[o])
		}
	}
	bound := p.bound()
	sOf := func(v float64) float64 {
		s := float64(p.Units) * p.binSeconds() * p.Mod * p.Mod * v / (2 * p.Base)
		return s / (1 + s)
	}
	t.Logf("population: N=%d b=%g Hz m=%g Hz Δ=%g s, %d bins (%.0f s), AR(1) ρ=%g; bound R²=S/(1+S)=%.4f (with held-out σ²: vx %.4f vy %.4f)",
		p.Units, p.Base, p.Mod, p.binSeconds(), p.Bins, float64(p.Bins)*p.binSeconds(), p.Rho, bound, sOf(sigma2[0]), sOf(sigma2[1]))

	// The oracle: the optimal linear estimator built from the true
	// parameters, v̂ = Δm/(Δb + Δ²m²N/2) · Dᵀ(c - Δb) (push-through identity
	// on Cov(v,c)·Cov(c)⁻¹). Its held-out R² must match the formula, which
	// checks the derivation numerically.
	dt := p.binSeconds()
	gain := dt * p.Mod / (dt*p.Base + dt*dt*p.Mod*p.Mod*float64(p.Units)/2)
	for o := range 2 {
		var truth, est []float64
		for i := split; i < ds.Len(); i++ {
			v := 0.0
			for j, c := range ds.Bins.Row(i) {
				a := 2 * math.Pi * float64(ds.Bins.Keys[j]-p.FirstID) / float64(p.Units)
				d := math.Cos(a)
				if o == 1 {
					d = math.Sin(a)
				}
				v += d * (c - dt*p.Base)
			}
			truth = append(truth, ds.Behaviour[i*2+o])
			est = append(est, gain*v)
		}
		r2 := R2(truth, est)
		t.Logf("oracle linear estimator %s: R² %.4f (formula with held-out σ²: %.4f)", ds.Outputs[o], r2, sOf(sigma2[o]))
		if math.Abs(r2-sOf(sigma2[o])) > 0.03 {
			t.Errorf("oracle R² %s = %.4f, formula %.4f: the bound's derivation or the simulation is off", ds.Outputs[o], r2, sOf(sigma2[o]))
		}
	}

	fitEval := func(name string, cfg FitConfig) *Evaluation {
		t.Helper()
		m, err := Fit(ds, split, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ev, err := Evaluate(m, ds, split)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lam := ""
		if m.Wiener != nil {
			lam = " λ/n=" + ftoa(m.Wiener.Lambda/float64(m.Fit.TrainBins))
		}
		t.Logf("%-22s R² vx %.4f vy %.4f mean %.4f (%.3f of bound)  r vx %.4f vy %.4f%s",
			name, ev.Scores[0].R2, ev.Scores[1].R2, ev.MeanR2, ev.MeanR2/bound, ev.Scores[0].Corr, ev.Scores[1].Corr, lam)
		return ev
	}
	lag0 := fitEval("wiener lag 0", FitConfig{Kind: Wiener, Lags: 1})
	for o, s := range lag0.Scores {
		b := sOf(sigma2[o])
		if s.R2 < 0.95*b {
			t.Errorf("lag-0 ridge R² %s = %.4f < 0.95 × bound %.4f", s.Output, s.R2, b)
		}
		if s.R2 > b+0.03 {
			t.Errorf("lag-0 ridge R² %s = %.4f above the optimal linear bound %.4f: the simulation or the scoring is wrong", s.Output, s.R2, b)
		}
	}
	lagged := fitEval(fmt.Sprintf("wiener %d lags", lags), FitConfig{Kind: Wiener, Lags: lags})
	if lagged.MeanR2 <= lag0.MeanR2+0.02 {
		t.Errorf("%d lags R² %.4f not better than lag 0 %.4f on a temporally correlated behaviour", lags, lagged.MeanR2, lag0.MeanR2)
	}
	kal := fitEval("kalman", FitConfig{Kind: Kalman})
	if kal.MeanR2 < lag0.MeanR2 {
		t.Errorf("kalman R² %.4f below lag-0 ridge %.4f", kal.MeanR2, lag0.MeanR2)
	}
	kss := fitEval("kalman steady-state", FitConfig{Kind: Kalman, Steady: true})
	if math.Abs(kss.MeanR2-kal.MeanR2) > 0.01 {
		t.Errorf("steady-state kalman R² %.4f far from full kalman %.4f", kss.MeanR2, kal.MeanR2)
	}
	fitEval("kalman pos-vel", FitConfig{Kind: Kalman, State: StatePositionVelocity})
}

func ftoa(v float64) string {
	return fmtG(v)
}

func fmtG(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) }
