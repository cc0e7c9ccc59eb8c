package sort

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// This file decides which of one channel's snippets are one unit, in the
// manner of ISO-SPLIT (Magland & Barnett, "Unimodal clustering using
// isotonic regression", 2015): clusters from a first, deliberately too fine
// partition are compared pairwise and either merged or re-divided, until no
// pair changes.
//
// The comparison works on the whole snippet (pre + post + tail), not on a
// few principal components: those keep the directions of largest variance
// — a unit's amplitude jitter — and lose the small differences of shape
// that tell two similar units apart. The snippets are first whitened by
// the channel's noise covariance (estimated from the residuals of the
// snippets around their clusters), so noise has unit variance in every
// direction. A unit's snippets then scatter as snippet = a·T + noise with a
// random amplitude a ~ N(1, s²) and a random sub-sample shift δ,
// snippet ≈ a·T − δ·T′ + noise; between two clusters A and B the best
// linear rule (Fisher's discriminant) is
//
//	w = Σ⁻¹ (μB − μA),   Σ = I + s²(μA μAᵀ + μB μBᵀ)/2 + τ²(μA′ μA′ᵀ + μB′ μB′ᵀ)/2,
//
// in closed form (Σ is the identity plus a rank-four term); d′² =
// (μB − μA)·w says how well any linear rule separates them. Because Σ
// comes from the model, not from the snippets, w does not overfit small
// clusters, and a unit that the first partition cut along its amplitude
// or its sampling phase (the directions Σ discounts) merges back. The two clusters' snippets are
// projected on w, and one Gaussian and a mixture of two are fitted to the
// projection: when two explain it no better than one (the likelihood
// ratio, over log n, is below splitThreshold) the pair is one unit;
// otherwise it is re-divided where the two-Gaussian fit puts each snippet.

// clusterStats are a cluster's mean snippet (whitened, σ units), its
// derivative, and how much its snippets vary along each: amplitude jitter
// s² (relative) and timing jitter τ² (samples²).
type clusterStats struct {
	mean, deriv []float64
	s2, tau2    float64
	n           int
}

// statsOf returns the statistics of rows of x. Each snippet is fitted as
// a·μ − δ·μ′ + noise; the variances of a and δ, less the parts noise alone
// explains (1/|μ|² and 1/|μ′|²), are s² and τ², kept within their bounds.
// A snippet is block samples on each of len/block channels, one after the
// other (block = len: one channel); the derivative is taken per channel.
func statsOf(x [][]float64, rows []int, block int) clusterStats {
	dim := len(x[0])
	m := make([]float64, dim)
	for _, r := range rows {
		for t, v := range x[r] {
			m[t] += v
		}
	}
	for t := range m {
		m[t] /= float64(len(rows))
	}
	dm := make([]float64, dim)
	for b0 := 0; b0 < dim; b0 += block {
		m, dm := m[b0:b0+block], dm[b0:b0+block]
		for t := range block {
			switch {
			case block < 2:
			case t == 0:
				dm[t] = m[1] - m[0]
			case t == block-1:
				dm[t] = m[t] - m[t-1]
			default:
				dm[t] = 0.5 * (m[t+1] - m[t-1])
			}
		}
	}
	var e, ed float64
	for t := range dim {
		e += m[t] * m[t]
		ed += dm[t] * dm[t]
	}
	st := clusterStats{mean: m, deriv: dm, s2: minJitter * minJitter, tau2: minTimeJitter * minTimeJitter, n: len(rows)}
	if e == 0 || ed == 0 || len(rows) < 2 {
		return st
	}
	var sa, saa, sd, sdd float64
	for _, r := range rows {
		var dot, dotD float64
		for t, v := range x[r] {
			dot += v * m[t]
			dotD += v * dm[t]
		}
		a := dot / e
		d := -(dotD - a*dmDot(m, dm)) / ed
		sa += a
		saa += a * a
		sd += d
		sdd += d * d
	}
	k := float64(len(rows))
	va := (saa - sa*sa/k) / (k - 1)
	vd := (sdd - sd*sd/k) / (k - 1)
	st.s2 = min(max(va-1/e, minJitter*minJitter), maxJitter*maxJitter)
	st.tau2 = min(max(vd-1/ed, minTimeJitter*minTimeJitter), maxTimeJitter*maxTimeJitter)
	return st
}

func dmDot(a, b []float64) float64 {
	var s float64
	for t := range a {
		s += a[t] * b[t]
	}
	return s
}

// Bounds on the amplitude jitter (relative standard deviation) and the
// timing jitter (samples) a unit is modelled with.
const (
	minJitter     = 0.05
	maxJitter     = 0.3
	minTimeJitter = 0.1
	maxTimeJitter = 1
)

// fisher returns the discriminant direction w between clusters a and b and
// d′ = sqrt((μb − μa)·w), under the model: noise of unit variance plus,
// for each cluster, amplitude jitter along its mean and timing jitter
// along its derivative,
//
//	Σ = I + Σₖ cₖ uₖ uₖᵀ,  u = (μa, μb, μa′, μb′),  c = (s², s², τ², τ²)/2,
//
// inverted with the Woodbury identity (a 4×4 system).
//
// With a basis (rows orthonormal, basis.go), everything is taken in the
// subspace it spans and w lifted back.
func fisher(a, b clusterStats, basis [][]float64) ([]float64, float64) {
	dim := len(a.mean)
	d := make([]float64, dim)
	for t := range d {
		d[t] = b.mean[t] - a.mean[t]
	}
	u := [4][]float64{a.mean, b.mean, a.deriv, b.deriv}
	if basis != nil {
		d = inBasis(basis, d)
		for i := range u {
			u[i] = inBasis(basis, u[i])
		}
		dim = len(basis)
	}
	s2 := 0.5 * (a.s2 + b.s2)
	tau2 := 0.5 * (a.tau2 + b.tau2)
	c := [4]float64{s2 / 2, s2 / 2, tau2 / 2, tau2 / 2}
	// Σ⁻¹ d = d − U (C⁻¹ + UᵀU)⁻¹ Uᵀ d.
	m := mat.NewDense(4, 4, nil)
	ud := mat.NewVecDense(4, nil)
	for i := range 4 {
		for j := range 4 {
			v := dmDot(u[i], u[j])
			if i == j {
				v += 1 / c[i]
			}
			m.Set(i, j, v)
		}
		ud.SetVec(i, dmDot(u[i], d))
	}
	w := slices.Clone(d)
	var y mat.VecDense
	if err := y.SolveVec(m, ud); err == nil {
		for i := range 4 {
			yi := y.AtVec(i)
			for t := range dim {
				w[t] -= u[i][t] * yi
			}
		}
	}
	dp := math.Sqrt(max(dmDot(d, w), 0))
	if basis != nil {
		w = fromBasis(basis, w)
	}
	return w, dp
}

// whiten returns x (snippets in σ units) multiplied by the inverse
// Cholesky factor of the noise covariance, estimated from the residuals of
// the snippets around their clusters' means (label ≥ 0) after each one's
// amplitude is fitted: stationary noise, so a Toeplitz covariance from the
// autocovariance of the residuals, which is returned too (nil, and x
// itself, without enough residuals). A snippet of several channels (block
// samples each, statsOf) is whitened channel by channel with one
// covariance, the autocovariance pooled over channels: the noise of
// different channels is taken as independent (block diagonal).
func whiten(x [][]float64, label []int, block int) ([][]float64, []float64) {
	full := len(x[0])
	dim := block
	k := 0
	for _, l := range label {
		k = max(k, l+1)
	}
	rows := make([][]int, k)
	for r, l := range label {
		if l >= 0 {
			rows[l] = append(rows[l], r)
		}
	}
	ac := make([]float64, dim)
	cnt := make([]float64, dim)
	res := make([]float64, full)
	for _, rs := range rows {
		if len(rs) < 2 {
			continue
		}
		st := statsOf(x, rs, block)
		var e float64
		for _, v := range st.mean {
			e += v * v
		}
		for _, r := range rs {
			a := 1.0
			if e > 0 {
				var dot float64
				for t, v := range x[r] {
					dot += v * st.mean[t]
				}
				a = dot / e
			}
			for t, v := range x[r] {
				res[t] = v - a*st.mean[t]
			}
			for b0 := 0; b0 < full; b0 += block {
				autocov(ac, res[b0:b0+block])
				for lag := range dim {
					cnt[lag] += float64(dim - lag)
				}
			}
		}
	}
	if cnt[0] < 20*float64(dim) {
		return x, nil
	}
	for lag := range dim {
		ac[lag] /= cnt[lag]
	}
	cov := mat.NewSymDense(dim, nil)
	for i := range dim {
		for j := i; j < dim; j++ {
			v := ac[j-i]
			if i == j {
				v *= 1.01 // a little ridge
			}
			cov.SetSym(i, j, v)
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(cov) {
		return x, nil
	}
	var l mat.TriDense
	ch.LTo(&l)
	lr := l.RawTriangular()
	out := make([][]float64, len(x))
	all := make([]float64, len(x)*full)
	for r := range out {
		out[r] = all[r*full : (r+1)*full : (r+1)*full]
	}
	// Forward substitution, channel block by channel block, four at a
	// time: each is a chain of dependent sums, so four independent ones
	// keep the core busy (each summed in its own order, as alone).
	nb := full / block
	vec := func(i int) (p, y []float64) {
		r, b0 := i/nb, i%nb*block
		return x[r][b0 : b0+block], out[r][b0 : b0+block]
	}
	i := 0
	for ; i+4 <= len(x)*nb; i += 4 {
		p0, y0 := vec(i)
		p1, y1 := vec(i + 1)
		p2, y2 := vec(i + 2)
		p3, y3 := vec(i + 3)
		for a := range dim {
			row := lr.Data[a*lr.Stride : a*lr.Stride+a+1]
			s0, s1, s2, s3 := p0[a], p1[a], p2[a], p3[a]
			y0, y1, y2, y3 := y0[:a], y1[:a], y2[:a], y3[:a]
			for b, v := range row[:a] {
				s0 -= v * y0[b]
				s1 -= v * y1[b]
				s2 -= v * y2[b]
				s3 -= v * y3[b]
			}
			d := row[a]
			y0, y1, y2, y3 = y0[:a+1], y1[:a+1], y2[:a+1], y3[:a+1]
			y0[a], y1[a], y2[a], y3[a] = s0/d, s1/d, s2/d, s3/d
		}
	}
	for ; i < len(x)*nb; i++ {
		p, y := vec(i)
		for a := range dim {
			row := lr.Data[a*lr.Stride : a*lr.Stride+a+1]
			s := p[a]
			for b, v := range row[:a] {
				s -= v * y[b]
			}
			y[a] = s / row[a]
		}
	}
	return out, ac
}

// autocov adds Σₜ x[t]·x[t−lag] to ac[lag] for every lag < len(ac) (=
// len(x)). Four lags are summed at a time, each over ascending t as one
// lag at a time would (the same sums, bit for bit), with a quarter of the
// loads.
func autocov(ac, x []float64) {
	dim := len(x)
	L := 0
	for ; L+4 <= dim; L += 4 {
		s0 := x[L] * x[0]
		s0 += x[L+1] * x[1]
		s0 += x[L+2] * x[2]
		s1 := x[L+1] * x[0]
		s1 += x[L+2] * x[1]
		s2 := x[L+2] * x[0]
		var s3 float64
		for t := L + 3; t < dim; t++ {
			v := x[t]
			s0 += v * x[t-L]
			s1 += v * x[t-L-1]
			s2 += v * x[t-L-2]
			s3 += v * x[t-L-3]
		}
		ac[L] += s0
		ac[L+1] += s1
		ac[L+2] += s2
		ac[L+3] += s3
	}
	for ; L < dim; L++ {
		var s float64
		for t := L; t < dim; t++ {
			s += x[t] * x[t-L]
		}
		ac[L] += s
	}
}

// isoSplit refines a partition of snippets x (whitened, σ units; label -1
// = outlier) in the manner of ISO-SPLIT: pairs of clusters, the most
// similar first, are projected on their discriminant; a pair whose
// projection one Gaussian explains as well as two (likelihood ratio over
// log n below splitThreshold) becomes one cluster, and a pair that stays
// two is re-divided where the two-Gaussian fit of the projection puts
// each snippet. It ends when no pair changes.
//
// A basis (nil: none) restricts the discriminants to the subspace it
// spans: with many dimensions (snippets of a neighbourhood of channels)
// the difference of two pieces of one unit holds noise of the order of
// dim·(1/nA + 1/nB), and a discriminant taken in all of them separates
// the pieces on noise alone.
func isoSplit(ch int, x [][]float64, label []int, block int, basis [][]float64) []int {
	label = compact(label)
	type key struct{ i, j, vi, vj int }
	done := map[key]bool{} // pairs tested and left unchanged, by cluster versions
	version := map[int]int{}
	cache := map[int]clusterStats{} // by label, while the cluster is unchanged
	type disc struct {
		w []float64
		d float64
	}
	discs := map[key]disc{} // discriminants by cluster versions (cleared with cache)
	for iter := 0; iter < maxIsoSteps; iter++ {
		k := 0
		for _, l := range label {
			k = max(k, l+1)
		}
		if k <= 1 {
			return label
		}
		rows := make([][]int, k)
		for r, l := range label {
			if l >= 0 {
				rows[l] = append(rows[l], r)
			}
		}
		st := make([]clusterStats, k)
		for q := range k {
			c, ok := cache[q]
			if !ok {
				c = statsOf(x, rows[q], block)
				cache[q] = c
			}
			st[q] = c
		}
		type pair struct {
			i, j int
			d    float64
			w    []float64
		}
		var pairs []pair
		for i := range k {
			for j := i + 1; j < k; j++ {
				if done[key{i, j, version[i], version[j]}] {
					continue
				}
				kij := key{i, j, version[i], version[j]}
				f, ok := discs[kij]
				if !ok {
					f.w, f.d = fisher(st[i], st[j], basis)
					discs[kij] = f
				}
				pairs = append(pairs, pair{i, j, f.d, f.w})
			}
		}
		if len(pairs) == 0 {
			return label
		}
		slices.SortFunc(pairs, func(a, b pair) int {
			switch {
			case a.d < b.d:
				return -1
			case a.d > b.d:
				return 1
			}
			return 0
		})
		p := pairs[0]
		if p.d > clearlyTwo {
			// The most similar pair left is far apart: so are the rest.
			return label
		}
		pa := project(x, rows[p.i], p.w)
		pb := project(x, rows[p.j], p.w)
		stat, post := lrSplit(pa, pb)
		if learnDebug != nil {
			learnDebug(ch, "iso pair %d(%d) %d(%d): d' %.2f lr %.1f", p.i, st[p.i].n, p.j, st[p.j].n, p.d, stat)
		}
		if stat < splitThreshold || len(rows[p.i]) < 2 || len(rows[p.j]) < 2 {
			for _, r := range rows[p.j] {
				label[r] = p.i
			}
			// The clusters the merge left alone keep their statistics and
			// discriminants under their new labels (the same values: the
			// same rows in the same order); the pair tests start over.
			to := relabel(label)
			keep := map[int]clusterStats{}
			for q, c := range cache {
				if q != p.i && q != p.j {
					keep[to[q]] = c
				}
			}
			keepD := map[key]disc{}
			for kk, f := range discs {
				if kk.i == p.i || kk.j == p.i || kk.i == p.j || kk.j == p.j || kk.vi != version[kk.i] || kk.vj != version[kk.j] {
					continue
				}
				if ni, nj := to[kk.i], to[kk.j]; ni < nj {
					keepD[key{ni, nj, 0, 0}] = f
				}
			}
			cache, discs = keep, keepD
			clear(done)
			clear(version)
			continue
		}
		// Re-divide the pair by the two-Gaussian fit.
		moved := 0
		for t, r := range append(slices.Clone(rows[p.i]), rows[p.j]...) {
			to := p.i
			if post[t] < 0.5 {
				to = p.j
			}
			if label[r] != to {
				label[r] = to
				moved++
			}
		}
		if moved == 0 {
			done[key{p.i, p.j, version[p.i], version[p.j]}] = true
			continue
		}
		if moved*100 < len(pa)+len(pb) {
			// A few snippets changed sides: the pair is settled.
			done[key{p.i, p.j, version[p.i] + 1, version[p.j] + 1}] = true
		}
		version[p.i]++
		version[p.j]++
		delete(cache, p.i)
		delete(cache, p.j)
		// A cluster emptied by the move disappears (and the labels are
		// renumbered).
		if slices.Index(label, p.j) < 0 || slices.Index(label, p.i) < 0 {
			label = compact(label)
			clear(done)
			clear(version)
			clear(cache)
			clear(discs)
		}
	}
	return label
}

// clearlyTwo is the d′ beyond which a pair is two units without a test: a
// single unit's snippets lie within a few model σ of its mean.
const clearlyTwo = 12

// maxIsoSteps bounds the pair tests of one isoSplit.
const maxIsoSteps = 100

// splitThreshold is the likelihood ratio (over log n) of two Gaussians
// against one along a pair's discriminant above which the pair is two
// units. One Gaussian scores 0–2; two units d′ = 4 apart score 10–40.
const splitThreshold = 10

func project(x [][]float64, rows []int, w []float64) []float64 {
	out := make([]float64, len(rows))
	for i, r := range rows {
		var s float64
		for t, v := range x[r] {
			s += v * w[t]
		}
		out[i] = s
	}
	return out
}

// lrSplit fits one Gaussian and a mixture of two (EM from the partition a,
// b) to a ∪ b and returns twice the log-likelihood gain over log n and,
// per sample (a's then b's), the posterior of the component that started
// as a.
func lrSplit(a, b []float64) (float64, []float64) {
	x := append(slices.Clone(a), b...)
	post := make([]float64, len(x))
	for i := range a {
		post[i] = 1
	}
	n := float64(len(x))
	var m, v float64
	for _, t := range x {
		m += t
	}
	m /= n
	for _, t := range x {
		v += (t - m) * (t - m)
	}
	v /= n
	if v <= 0 || len(a) < 2 || len(b) < 2 {
		return 0, post
	}
	ll1 := -0.5 * n * (math.Log(2*math.Pi*v) + 1)
	mv := func(p []float64) (float64, float64) {
		var s, ss float64
		for _, t := range p {
			s += t
		}
		s /= float64(len(p))
		for _, t := range p {
			ss += (t - s) * (t - s)
		}
		return s, max(ss/float64(len(p)), 1e-3*v)
	}
	m1, v1 := mv(a)
	m2, v2 := mv(b)
	w := float64(len(a)) / n
	// EM until the parameters settle (the log-likelihood is taken once,
	// at the end: the logarithms cost more than the rest).
	estep := func() (r1, r1x, r1xx, r2x, r2xx float64) {
		c1, c2 := w/math.Sqrt(v1), (1-w)/math.Sqrt(v2)
		h1, h2 := -0.5/v1, -0.5/v2
		for i, t := range x {
			d1, d2 := t-m1, t-m2
			p1 := c1 * math.Exp(h1*d1*d1)
			p2 := c2 * math.Exp(h2*d2*d2)
			r := 0.5
			if s := p1 + p2; s > 0 {
				r = p1 / s
			}
			post[i] = r
			r1 += r
			r1x += r * t
			r1xx += r * t * t
			r2x += (1 - r) * t
			r2xx += (1 - r) * t * t
		}
		return
	}
	tol := 1e-4 * math.Sqrt(v)
	for range 40 {
		r1, r1x, r1xx, r2x, r2xx := estep()
		if r1 < 1 || n-r1 < 1 {
			break
		}
		nw, nm1, nm2 := r1/n, r1x/r1, r2x/(n-r1)
		moved := math.Abs(nm1-m1) > tol || math.Abs(nm2-m2) > tol || math.Abs(nw-w) > 1e-4
		w, m1, m2 = nw, nm1, nm2
		v1 = max(r1xx/r1-m1*m1, 1e-3*v)
		v2 = max(r2xx/(n-r1)-m2*m2, 1e-3*v)
		if !moved {
			break
		}
	}
	estep()
	var ll2 float64
	c1, c2 := w/math.Sqrt(2*math.Pi*v1), (1-w)/math.Sqrt(2*math.Pi*v2)
	for _, t := range x {
		d1, d2 := t-m1, t-m2
		ll2 += math.Log(max(c1*math.Exp(-0.5*d1*d1/v1)+c2*math.Exp(-0.5*d2*d2/v2), 1e-300))
	}
	return max(0, 2*(ll2-ll1)/math.Log(n)), post
}
