package sort

import (
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// This file holds template learning with probe geometry. A main
// channel's snippets span its neighbourhood (learnJob.chans, the channel
// first). They are partitioned as on one channel (learn.go, split.go), but
// on the neighbourhood: a first, too fine partition by k-means on cheap
// features (the main channel's three principal components, taken on every
// channel of the neighbourhood), then ISO-SPLIT-style merging and
// re-dividing on the whole snippets of every channel, each whitened by
// the noise covariance (one Toeplitz block per channel). Units are then
// per main channel with multi-channel templates; units of neighbouring
// main channels that are one neuron (a neuron between two channels has
// its largest trough on either) become one unit (dedup).

// featureChannels is the most channels of a neighbourhood whose
// projections make the first partition's features.
const featureChannels = 8

// learnGeo clusters one main channel's neighbourhood snippets into
// templates (each len(j.chans)·dfull samples, channel after channel).
func learnGeo(j learnJob, p learnParams) ([][]float32, []int) {
	nc := len(j.chans)
	df, d, pre := p.dfull, p.d, p.pre
	L := nc * df
	n := len(j.tau)
	if n < p.minSpikes || !(j.sigma > 0) {
		return nil, nil
	}
	sig := make([]float64, nc)
	for k := range nc {
		sig[k] = float64(j.sigma)
		if k < len(j.sigmas) && j.sigmas[k] > 0 {
			sig[k] = float64(j.sigmas[k])
		}
	}
	snip := func(i int) []float32 { return j.w[i*L : (i+1)*L] }
	// Later lobes of larger spikes on the main channel are left out (as
	// on one channel).
	keep := dropLobes(j, p, L)
	n = len(keep)
	if n < p.minSpikes {
		return nil, nil
	}
	// Every channel shifted by the main channel's sub-sample extremum.
	aligned := make([]float32, n*L)
	for r, i := range keep {
		x, dst := snip(i), aligned[r*L:(r+1)*L]
		copy(dst, x)
		if delta, ok := peakShift(x[:df], pre); ok {
			for k := range nc {
				resample(dst[k*df:(k+1)*df], x[k*df:(k+1)*df], delta)
			}
		}
	}
	kept0 := slices.Clone(keep)
	at := func(r int) []float32 { return aligned[r*L : (r+1)*L] }
	// First partition: the main channel's principal components, taken on
	// each of the nearest channels, reduced again by PCA.
	X := mat.NewDense(n, d, nil)
	for r := range n {
		row := X.RawRowView(r)
		for k, v := range at(r)[:d] {
			row[k] = float64(v) / sig[0]
		}
	}
	var feat [][]float64
	comps := min(3, d, n-1)
	var vecs *mat.Dense
	ok := false
	if comps >= 1 {
		_, vecs, ok = principalAxes(X)
	}
	if ok {
		F := min(nc, featureChannels)
		Y := mat.NewDense(n, comps*F, nil)
		for r := range n {
			row := Y.RawRowView(r)
			x := at(r)
			for k := range F {
				for q := range comps {
					var s float64
					for t := range d {
						s += float64(x[k*df+t]) / sig[k] * vecs.At(t, q)
					}
					row[k*comps+q] = s
				}
			}
		}
		dims := min(6, comps*F, n-1)
		if centred, v2, ok := principalAxes(Y); ok {
			feat = make([][]float64, n)
			for r := range n {
				row := centred.RawRowView(r)
				f := make([]float64, dims)
				for q := range dims {
					var s float64
					for t, v := range row {
						s += v * v2.At(t, q)
					}
					f[q] = s
				}
				feat[r] = f
			}
		}
	}
	if feat == nil {
		feat = make([][]float64, n)
		for r := range n {
			feat[r] = []float64{X.At(r, pre)}
		}
	}
	k0 := min(2*p.maxUnits+2, max(1, n/p.minSpikes))
	rng := rand.New(rand.NewPCG(uint64(j.ch)+1, 0x5eed))
	label := kmeansBest(feat, k0, rng, 4)
	if learnLabels != nil {
		taus := make([]uint64, len(kept0))
		for r, i := range kept0 {
			taus[r] = j.tau[i]
		}
		defer func() { learnLabels(j.ch, taus, label) }()
		learnLabels(j.ch, taus, slices.Clone(label))
	}
	if learnDebug != nil {
		learnDebug(j.ch, "snippets %d kept %d k0 %d channels %d sizes %v", len(j.tau), n, k0, nc, sizes(label))
	}
	dropPieces(label)
	whole := make([][]float64, n)
	for r := range n {
		row := make([]float64, L)
		x := at(r)
		for k := range nc {
			for t := range df {
				row[k*df+t] = float64(x[k*df+t]) / sig[k]
			}
		}
		whole[r] = row
	}
	white, _ := whiten(whole, label, df)
	whole = nil
	label = isoSplit(j.ch, white, label, df, principalBasis(white, isoDims, rng))
	if learnDebug != nil {
		learnDebug(j.ch, "after merge sizes %v", sizes(label))
	}
	// shape is a template's matched window on every channel in noise σ.
	shape := func(w []float32) []float32 {
		out := make([]float32, 0, nc*d)
		for k := range nc {
			for _, v := range w[k*df : k*df+d] {
				out = append(out, float32(float64(v)/sig[k]))
			}
		}
		return out
	}
	// Coherence and noise, on the main channel as on one channel.
	cl := templates(j.ch, label, at, p, sig[0])
	// Same-shape clusters (over the neighbourhood) that are the later
	// spikes of bursts, or a small fraction of their neighbour, are one
	// unit (learnChannel).
	chance, follows := burstFollows(j, p, kept0, L)
	cl = mergeClusters(j.ch, cl, p, sig[0], shape, 1, chance, follows)
	return unitsOf(cl, p.maxUnits)
}

// geoShape returns u's waveform on channel list chans (zeros where u has
// none), matched window only, in noise σ of each channel (inv2 = 1/σ²),
// with u shifted by shift samples (u(t+shift) against t).
func (s *Sorter) geoShape(u *gunit, chans []int32, shift int) []float32 {
	g := s.g
	d, df := s.d, s.dfull
	out := make([]float32, len(chans)*d)
	for k, c := range chans {
		w := u.wave(c, df)
		if w == nil {
			continue
		}
		var inv float32
		if sg := g.chSh[c].sigmaNext[g.chLoc[c]]; sg > 0 {
			inv = 1 / sg
		}
		for i := range d {
			if t := i + shift; t >= 0 && t < df {
				out[k*d+i] = w[t] * inv
			}
		}
	}
	return out
}

// mergeGeo combines the units whose main channel is r.ch with a learning
// result for that channel, as mergeUnits does on one channel: a new
// cluster close to an existing template (mean squared difference below
// σ² over the matched windows of the neighbourhood, amplitude within
// 0.8–1.25) takes it over and keeps its unit id; a cluster of the same
// shape as a known unit not found otherwise keeps that id; other clusters
// get fresh ids; known units not found again survive while they keep
// matching spikes and stay distinct from the others.
func (s *Sorter) mergeGeo(r channelUnits) {
	g := s.g
	ch := int32(r.ch)
	var old, others []*gunit
	for _, u := range g.units {
		if u.chans[0] == ch {
			old = append(old, u)
		} else {
			others = append(others, u)
		}
	}
	fresh := make([]*gunit, len(r.waves))
	for i, w := range r.waves {
		fresh[i] = s.newGunit(0, slices.Clone(r.chans), w)
	}
	chans := r.chans
	shapes := make([][]float32, len(fresh))
	for i, u := range fresh {
		shapes[i] = s.geoShape(u, chans, 0)
	}
	oldShapes := make([][]float32, len(old))
	for j, u := range old {
		oldShapes[j] = s.geoShape(u, chans, 0)
	}
	type pair struct {
		i, j int
		cost float32
	}
	var pairs []pair
	for i, a := range shapes {
		for j, b := range oldShapes {
			var dot, ee, ww float32
			for k, v := range a {
				dot += v * b[k]
				ee += b[k] * b[k]
				ww += v * v
			}
			sc := float32(1)
			if ee > 0 {
				sc = min(max(dot/ee, 0.8), 1.25)
			}
			pairs = append(pairs, pair{i, j, (ww - 2*sc*dot + sc*sc*ee) / float32(len(a))})
		}
	}
	slices.SortStableFunc(pairs, func(a, b pair) int {
		switch {
		case a.cost < b.cost:
			return -1
		case a.cost > b.cost:
			return 1
		}
		return 0
	})
	used := make([]bool, len(fresh))
	taken := make([]bool, len(old))
	var out []*gunit
	keep := func(i int, o *gunit) {
		u := fresh[i]
		u.id, u.count, u.last, u.seen = o.id, o.count, o.last, o.seen
		out = append(out, u)
	}
	for _, p := range pairs {
		if p.cost >= 1 || used[p.i] || taken[p.j] {
			continue
		}
		used[p.i], taken[p.j] = true, true
		keep(p.i, old[p.j])
	}
	for i := range fresh {
		if used[i] {
			continue
		}
		dup := false
		for j, o := range old {
			if !taken[j] && sameShape(shapes[i], oldShapes[j]) {
				dup, taken[j] = true, true
				keep(i, o)
				break
			}
		}
		if dup {
			continue
		}
		u := fresh[i]
		u.id, u.count = s.nextUnit, r.counts[i]
		s.nextUnit++
		out = append(out, u)
	}
	n := len(out)
	sigma := g.chSh[ch].sigmaNext[g.chLoc[ch]]
	for j, u := range old {
		noise := float64(u.peak[0]) < (s.cfg.Threshold+0.3)*float64(sigma)
		if taken[j] || u.recent < s.cfg.MinSpikes || noise {
			continue
		}
		if !slices.ContainsFunc(out[:n], func(v *gunit) bool {
			a, b := v, u
			if a.peak[0] < b.peak[0] {
				a, b = b, a
			}
			same, _, _ := s.alike(a, b)
			return same || !distinct(oldShapes[j], s.geoShape(v, chans, 0), 1)
		}) {
			out = append(out, u)
		}
	}
	g.units = append(others, out...)
}

// dedup makes one unit of units that are one neuron: a neuron between
// two channels has its largest trough on either, so learning finds it on
// both, and a re-learning pass may find again a unit it did not recognise
// (alike). The unit with the larger main trough stays (its events on the
// other channel still find it: a channel where a unit can have its
// largest trough is one of its candidates, buildCand).
func (s *Sorter) dedup() {
	g := s.g
	for merged := true; merged; {
		merged = false
		for a := 0; a < len(g.units) && !merged; a++ {
			for b := 0; b < len(g.units) && !merged; b++ {
				A, B := g.units[a], g.units[b]
				if a == b || A.sign != B.sign || A.peak[0] < B.peak[0] || A.peak[0] == B.peak[0] && a > b {
					continue
				}
				same, r, e := s.alike(A, B)
				if learnDebug != nil && !math.IsInf(r, 1) {
					learnDebug(int(B.chans[0]), "dedup: unit %d (peak %.1f µV) against unit %d of channel %d (peak %.1f µV): residual %.1f, energy %.1f", B.id, B.peak[0], A.id, A.chans[0], A.peak[0], r, e)
				}
				if !same {
					continue
				}
				A.count += B.count
				A.recent += B.recent
				g.units = slices.Delete(g.units, b, b+1)
				merged = true
			}
		}
	}
}

// dupShare is the share of a unit's energy (over the channels it shares
// with another) that may differ from the other unit, beyond minSeparation,
// for the two to be one neuron: estimates of one neuron from different
// events (those with their largest trough on one channel or the other, or
// of two learning passes) differ by more than their noise.
const dupShare = 0.1

// alike reports whether units A and B (A the larger) are one neuron: both
// main channels among both units' channels, and over the channels they
// share, B is A shifted to its extremum on B's main channel, within
// minSeparation² + dupShare of B's energy (σ²), once an amplitude
// (minScale–maxScale) and a sub-sample shift are fitted. It also returns
// the residual and the energy.
func (s *Sorter) alike(A, B *gunit) (bool, float64, float64) {
	jb := slices.Index(A.chans, B.chans[0])
	if jb < 0 || !slices.Contains(B.chans, A.chans[0]) {
		return false, math.Inf(1), 0
	}
	var common []int32
	for _, c := range B.chans {
		if slices.Contains(A.chans, c) {
			common = append(common, c)
		}
	}
	r := s.sameNeuron(A, B, common, int(A.off[jb]))
	var e float64
	for _, v := range s.geoShape(B, common, 0) {
		e += float64(v) * float64(v)
	}
	return r < minSeparation*minSeparation+dupShare*e, r, e
}

// sameNeuron returns how far B is from A seen from B's main channel (A
// shifted by shift samples, ±1), over channels chans: the least residual
// (σ²) once an amplitude and a sub-sample shift are fitted.
func (s *Sorter) sameNeuron(A, B *gunit, chans []int32, shift int) float64 {
	best := math.Inf(1)
	for _, sh := range []int{shift, shift - 1, shift + 1} {
		a := s.geoShape(A, chans, sh)
		b := s.geoShape(B, chans, 0)
		// b' (derivative per channel) for a sub-sample shift.
		d := s.d
		db := make([]float32, len(b))
		for k := 0; k < len(b); k += d {
			for i := range d {
				db[k+i] = deriv(b[k:k+d], i)
			}
		}
		// Least squares a ≈ c·b + e·b′.
		var bb, bd, dd, ab, ad, aa float64
		for i := range a {
			x, y, z := float64(a[i]), float64(b[i]), float64(db[i])
			bb += y * y
			bd += y * z
			dd += z * z
			ab += x * y
			ad += x * z
			aa += x * x
		}
		det := bb*dd - bd*bd
		if bb == 0 || det <= 0 {
			continue
		}
		c := (ab*dd - ad*bd) / det
		e := (bb*ad - bd*ab) / det
		if c < minScale || c > maxScale || math.Abs(e/c) > 1.5 {
			continue
		}
		r := aa - 2*c*ab - 2*e*ad + c*c*bb + 2*c*e*bd + e*e*dd
		best = min(best, r)
	}
	return best
}
