package sort

import (
	"math"
	"math/bits"

	"github.com/spikeline/spikeline/dsp"
)

// shard is a contiguous range of channels run by one worker: its filter
// state, its ring of filtered samples (the residual after explained spikes
// are subtracted), per-channel noise, detection state and templates.
//
// The ring is time-major over the shard's channels: row t (a stream
// sample counter, not the device index) lives at ring[(t&mask)*n:][:n].
type shard struct {
	s         *Sorter
	index     int
	c0, n     int
	filt      *Filter
	ring      []float32
	mask      uint64
	sigma     []float32 // noise σ per channel, µV, as detection uses it
	sigmaNext []float32 // tracked σ, applied at the next epoch
	thr       []float32 // scan threshold per channel, µV (+Inf until σ is known)
	negThr    []float32 // -thr
	// detection threshold per channel, µV: crossings of thr below it
	// (channels with templates scan at the lower TemplateThreshold) are
	// spikes only when a template explains them
	full []float32
	next []uint64 // first row where the channel may detect again
	// After a spike no template explains, smaller crossings until
	// shadowUntil are taken for its later lobes: below shadowLevel
	// (sign-corrected µV) they are not spikes.
	shadowUntil []uint64
	shadowLevel []float32
	// The last detection per channel (row and sign-corrected amplitude),
	// recorded with each learning snippet: learning tells the later
	// spikes of bursts from other units by them.
	lastTau []uint64
	lastAmp []float32
	// The last matched spike per channel: its unit and row. A unit's next
	// spike within a burst interval may be smaller (bursts attenuate).
	lastID    []int32
	lastIDTau []uint64
	units     [][]*unit // templates per channel
	// noise: the last noiseM absolute values per channel, channel-major
	nbuf    []float32
	scratch []float32
	// learning
	collect bool
	sets    []snippetSet
	// output of the current step
	out       []Spike
	outTau    []uint64
	unmatched uint64
	snip      []float32  // scratch snippet (dfull)
	resid     []float32  // scratch residual (dfull)
	delta     float32    // sub-sample shift of the last match
	watch     []*watched // channels whose band-passed signal is kept (Watch)
	// with geometry (geo.go): the crossings phase A recorded this step,
	// and 1/σ² per channel
	cands []candidate
	inv2  []float32
	med   rowMedian   // the median reference's prediction (refmedian.go)
	segs  [][]float32 // scratch: row t of every shard (rowMiddle)
}

// unit is one template on one channel.
type unit struct {
	id     int32
	w      []float32 // dfull samples, µV
	e      float32   // energy of w over the matched part (first d samples)
	dw     []float32 // derivative of w over the matched part (deriv)
	ed, ec float32   // dw·dw and w·dw
	count  int       // spikes matched or learned from
	recent int       // spikes matched since the last learning pass
}

func newUnit(id int32, w []float32, d int) *unit {
	u := &unit{id: id, w: w}
	u.energy(d)
	return u
}

func (u *unit) energy(d int) {
	if len(u.dw) != d {
		u.dw = make([]float32, d)
	}
	var e, ed, ec float32
	for i, v := range u.w[:d] {
		dv := deriv(u.w, i)
		u.dw[i] = dv
		e += v * v
		ed += dv * dv
		ec += v * dv
	}
	u.e, u.ed, u.ec = e, ed, ec
}

// snippetSet holds a channel's snippets collected for learning.
type snippetSet struct {
	w    []float32 // dfull per snippet, µV
	tau  []uint64  // extremum row of each snippet
	gap  []uint32  // rows since the channel's previous detection (capped)
	prev []float32 // sign-corrected amplitude of that detection, µV
}

func newShard(s *Sorter, index, c0, n int, secs []dsp.Section) *shard {
	sh := &shard{
		s: s, index: index, c0: c0, n: n,
		filt:        NewFilter(secs, n),
		ring:        make([]float32, s.ringLen*n),
		mask:        s.mask,
		sigma:       make([]float32, n),
		sigmaNext:   make([]float32, n),
		thr:         make([]float32, n),
		negThr:      make([]float32, n),
		full:        make([]float32, n),
		next:        make([]uint64, n),
		shadowUntil: make([]uint64, n),
		shadowLevel: make([]float32, n),
		lastTau:     make([]uint64, n),
		lastAmp:     make([]float32, n),
		lastID:      make([]int32, n),
		lastIDTau:   make([]uint64, n),
		units:       make([][]*unit, n),
		nbuf:        make([]float32, n*s.noiseM),
		scratch:     make([]float32, s.noiseM),
		sets:        make([]snippetSet, n),
		snip:        make([]float32, s.dfull),
		resid:       make([]float32, s.dfull),
	}
	for c := range n {
		sh.thr[c] = float32(math.Inf(1))
		sh.negThr[c] = float32(math.Inf(-1))
		sh.full[c] = float32(math.Inf(1))
	}
	return sh
}

// settle starts the filter of every channel at the steady state of the
// first row of a segment (so DC offsets do not ring).
func (sh *shard) settle(row []int16, gain float32) {
	for c := range sh.n {
		sh.filt.Settle(c, float32(row[sh.c0+c])*gain)
	}
}

// filter band-passes the shard's channels of the time-major rows in into
// the ring starting at row from.
func (sh *shard) filter(in []int16, gain float32, from uint64) {
	C := sh.s.channels
	n := sh.n
	rows := len(in) / C
	for i := range rows {
		t := from + uint64(i)
		dst := sh.ring[int(t&sh.mask)*n:][:n]
		sh.filt.rowInt16(in[i*C+sh.c0:][:n], gain, dst)
	}
	if len(sh.watch) > 0 {
		sh.tap(from, rows)
	}
}

// pad writes zero rows [from, to) (the end of a segment).
func (sh *shard) pad(from, to uint64) {
	for t := from; t < to; t++ {
		clear(sh.ring[int(t&sh.mask)*sh.n:][:sh.n])
	}
}

// referenceRows computes the common reference of chunk rows [i0, i1)
// (rows from+i) across all shards into ref[3i:3i+3].
//
// Average: ref[3i] is the mean of all channels.
//
// Median: each channel is referenced to the median of the OTHER channels
// (leave-one-out), so that the channel that is the median is not left at
// exactly zero, which would bias its MAD noise estimate low (by about 1/N
// of the samples being zero: for 16 channels, thresholds ~10% too low and
// seven times the false crossings). The leave-one-out median only needs
// the middle order statistics: ref[3i:3i+3] holds the values just below,
// at and just above the middle (see refMedian).
func (sh *shard) referenceRows(from uint64, i0, i1 int, ref []float32) {
	s := sh.s
	all := sh.scratchAll()
	n := s.channels
	for i := i0; i < i1; i++ {
		t := from + uint64(i)
		if s.cfg.Reference == RefAverage {
			all = all[:0]
			for _, o := range s.shards {
				all = append(all, o.ring[int(t&o.mask)*o.n:][:o.n]...)
			}
			var sum float32
			for _, v := range all {
				sum += v
			}
			ref[3*i] = sum / float32(len(all))
			continue
		}
		if n == 1 {
			ref[3*i], ref[3*i+1], ref[3*i+2] = 0, 0, 0
			continue
		}
		lo, m, hi := sh.rowMiddle(t, all) // refmedian.go
		if n%2 == 0 {
			// Middle pair (lo, m); hi unused.
			ref[3*i], ref[3*i+1], ref[3*i+2] = lo, m, m
		} else {
			ref[3*i], ref[3*i+1], ref[3*i+2] = lo, m, hi
		}
	}
}

// refMedian returns the median of the other channels for a channel whose
// value is v, given a row's middle order statistics r (referenceRows).
func refMedian(v float32, r []float32, odd bool) float32 {
	lo, mid, hi := r[0], r[1], r[2]
	if !odd {
		// Even count: lower middle lo, upper middle mid.
		if v <= lo {
			return mid
		}
		return lo
	}
	switch {
	case v < mid:
		return 0.5 * (mid + hi)
	case v > mid:
		return 0.5 * (lo + mid)
	}
	return 0.5 * (lo + hi)
}

// scratchAll returns a scratch buffer with room for every channel.
func (sh *shard) scratchAll() []float32 {
	if cap(sh.resid) < sh.s.channels+sh.s.dfull {
		// Allocated once: resid doubles as the reference scratch.
		sh.resid = make([]float32, sh.s.dfull, sh.s.channels+sh.s.dfull)
	}
	return sh.resid[sh.s.dfull:sh.s.dfull]
}

// detect subtracts the reference from new rows [from, to), samples them
// for the noise estimate, then scans rows [scanFrom, scanTo) for threshold
// crossings.
func (sh *shard) detect(from, to, scanFrom, scanTo uint64, ref []float32) {
	n := sh.n
	if ref != nil {
		odd := sh.s.channels%2 == 1
		median := sh.s.cfg.Reference == RefMedian
		for i := range int(to - from) {
			t := from + uint64(i)
			row := sh.ring[int(t&sh.mask)*n:][:n]
			r := ref[3*i : 3*i+3]
			if median {
				subtractMedian(row, r, odd) // refmedian.go
				continue
			}
			for c := range row {
				row[c] -= r[0]
			}
		}
	}
	stride := uint64(sh.s.noiseStride)
	M := sh.s.noiseM
	for t := (from + stride - 1) / stride * stride; t < to; t += stride {
		k := t / stride
		slot := int(k % uint64(M))
		row := sh.ring[int(t&sh.mask)*n:][:n]
		for c, v := range row {
			sh.nbuf[c*M+slot] = float32(math.Abs(float64(v)))
		}
		sh.noiseUpdate(k)
	}
	n8 := 0
	if useSIMD {
		n8 = n &^ 7
	}
	switch sh.s.cfg.Sign {
	case Negative:
		neg := sh.negThr[:n]
		for t := scanFrom; t < scanTo; t++ {
			row := sh.ring[int(t&sh.mask)*n:][:n]
			c := 0
			if useAVX2 {
				// 64 channels per call; crossings are rare. A crossing
				// changes only its own channel's column of the ring, so
				// the mask stays valid for the others.
				for ; c+64 <= n; c += 64 {
					for m := belowMask64(&row[c], &neg[c]); m != 0; m &= m - 1 {
						sh.crossing(c+bits.TrailingZeros64(m), t, -1)
					}
				}
			}
			for ; c < n8; c += 8 {
				// Eight channels per compare; crossings are rare.
				for m := belowMask(row, neg, c); m != 0; m &= m - 1 {
					sh.crossing(c+bits.TrailingZeros8(m), t, -1)
				}
			}
			for ; c < n; c++ {
				if row[c] < neg[c] {
					sh.crossing(c, t, -1)
				}
			}
		}
	case Positive:
		thr := sh.thr[:n]
		for t := scanFrom; t < scanTo; t++ {
			row := sh.ring[int(t&sh.mask)*n:][:n]
			c := 0
			if useAVX2 {
				for ; c+64 <= n; c += 64 {
					for m := aboveMask64(&row[c], &thr[c]); m != 0; m &= m - 1 {
						sh.crossing(c+bits.TrailingZeros64(m), t, 1)
					}
				}
			}
			for ; c < n8; c += 8 {
				for m := aboveMask(row, thr, c); m != 0; m &= m - 1 {
					sh.crossing(c+bits.TrailingZeros8(m), t, 1)
				}
			}
			for ; c < n; c++ {
				if row[c] > thr[c] {
					sh.crossing(c, t, 1)
				}
			}
		}
	default:
		thr := sh.thr[:n]
		for t := scanFrom; t < scanTo; t++ {
			row := sh.ring[int(t&sh.mask)*n:][:n]
			for c, v := range row {
				if v > thr[c] {
					sh.crossing(c, t, 1)
				} else if v < -thr[c] {
					sh.crossing(c, t, -1)
				}
			}
		}
	}
}

// at returns the residual of channel c at row t.
func (sh *shard) at(c int, t uint64) float32 { return sh.ring[int(t&sh.mask)*sh.n+c] }

// peak aligns a crossing of channel c at row t with polarity sign on
// its extremum within the alignment window and returns the extremum's row
// and value (times sign); ok is false (and channel c skips past it) when
// it is a later lobe of an unexplained larger spike.
func (sh *shard) peak(c int, t uint64, sign float32) (tr uint64, best float32, ok bool) {
	tr = t
	best = sign * sh.at(c, t)
	for k := uint64(1); k <= uint64(sh.s.align); k++ {
		if v := sign * sh.at(c, t+k); v > best {
			best, tr = v, t+k
		}
	}
	if tr < sh.shadowUntil[c] && best < sh.shadowLevel[c] {
		sh.next[c] = tr + 1
		return tr, best, false
	}
	return tr, best, true
}

// advance moves channel c past its event at row tr (extremum best, times
// sign) and returns the rows since the channel's previous full-threshold
// event and that event's extremum; ok is false when a weak crossing
// matched no template (the channel moves on by one row only).
func (sh *shard) advance(c int, tr uint64, best float32, weak, matched bool) (gap uint32, prev float32, ok bool) {
	if weak && !matched {
		sh.next[c] = tr + 1
		return 0, 0, false
	}
	sh.next[c] = tr + uint64(sh.s.dead)
	gap = uint32(min(tr-sh.lastTau[c], math.MaxUint32))
	prev = sh.lastAmp[c]
	if !weak {
		sh.lastTau[c], sh.lastAmp[c] = tr, best
	}
	return gap, prev, true
}

// crossing handles a threshold crossing of channel c at row t with
// polarity sign: align on the extremum, take the snippet, match it to the
// channel's templates, explain it (subtract the template) and record it.
func (sh *shard) crossing(c int, t uint64, sign float32) {
	s := sh.s
	if s.g != nil {
		sh.record(c, t, sign)
		return
	}
	if t < sh.next[c] {
		return
	}
	tr, best, ok := sh.peak(c, t, sign)
	if !ok {
		return
	}
	x := sh.snip
	base := tr - uint64(s.pre)
	for i := range x {
		x[i] = sh.at(c, base+uint64(i))
	}
	// Below the detection threshold (channels with templates scan lower):
	// a spike only if a template explains it.
	weak := best < sh.full[c]
	var id int32
	var k int
	var a float32
	if us := sh.units[c]; len(us) > 0 {
		var burst int32
		if tr-sh.lastIDTau[c] <= uint64(s.burst) {
			burst = sh.lastID[c]
		}
		k, a = sh.match(c, x, us, sign, weak, burst)
	}
	gap, prev, ok := sh.advance(c, tr, best, weak, k >= 0)
	if !ok {
		return
	}
	if !weak && sh.collect && (s.relearnAll || len(sh.units[c]) == 0) {
		set := &sh.sets[c]
		if len(set.tau) < s.cfg.MaxSnippets {
			set.w = append(set.w, x...)
			set.tau = append(set.tau, tr)
			set.gap = append(set.gap, gap)
			set.prev = append(set.prev, prev)
		}
	}
	if us := sh.units[c]; len(us) > 0 {
		if k >= 0 {
			u := us[k]
			id = u.id
			sh.lastID[c], sh.lastIDTau[c] = id, tr
			u.count++
			if !weak {
				// Weak matches do not keep a unit alive across learning passes.
				u.recent++
			}
			// Explain the spike: subtract the scaled template.
			dl := sh.delta
			for i, w := range u.w {
				sh.ring[int((base+uint64(i))&sh.mask)*sh.n+c] -= a * (w - dl*deriv(u.w, i))
			}
		} else {
			sh.unmatched++
		}
	}
	if id != 0 && matchedDeadTime {
		// Explained: the template took the spike's lobes away, so only
		// a short refractory keeps the same trough from firing again and
		// a second unit's spike overlapping this one can be detected.
		sh.next[c] = tr + uint64(max(1, s.pre/2))
	}
	if id == 0 {
		sh.shadowUntil[c] = tr + uint64(s.post+s.tail)
		sh.shadowLevel[c] = lobeShare * best
	}
	sp := Spike{
		Sample:    s.segFirst + (tr - s.segTau),
		Channel:   int32(sh.c0 + c),
		Unit:      id,
		Amplitude: x[s.pre],
	}
	if tr < s.segTau {
		sp.Sample = s.segFirst
	}
	sh.out = append(sh.out, sp)
	sh.outTau = append(sh.outTau, tr)
}

// Amplitude scaling allowed when fitting a template to a snippet.
const (
	minScale        = 0.7
	maxScale        = 1.4
	jitterShare     = 0.1  // residual allowed per unit of template energy
	lobeShare       = 0.6  // later lobes of unexplained spikes are below this share of the trough
	matchedDeadTime = true // shorter dead time after explained spikes
	scaleLambda     = 1    // weight of the prior that a unit's amplitude is its template's
	maxShift        = 0.7  // largest sub-sample shift fitted, samples
	weakScale       = 0.85 // least amplitude, relative to the template, of a spike below the detection threshold
	weakMargin      = 3    // noise σ a weak spike's trough may lie above weakScale of its template's
	minMatchedZ     = 9    // least matched-filter output (σ) of a match
)

// deriv is the central difference of w at i.
func deriv(w []float32, i int) float32 {
	switch {
	case i == 0:
		return w[1] - w[0]
	case i == len(w)-1:
		return w[i] - w[i-1]
	}
	return 0.5 * (w[i+1] - w[i-1])
}

// subsample fits the shift δ (samples) that best aligns a·u to x over the
// matched window.
func (sh *shard) subsample(x []float32, u *unit, a float32) float32 {
	var num, den float32
	for i, v := range x[:sh.s.d] {
		dw := deriv(u.w, i)
		num += (v - a*u.w[i]) * dw
		den += dw * dw
	}
	if den == 0 || a == 0 {
		return 0
	}
	return min(max(-num/(a*den), -maxShift), maxShift)
}

// match returns the template that best explains snippet x (and its scale)
// or -1. A template explains x when the residual energy over the matched
// window is below (1+MatchTolerance)·d·σ², the energy of noise alone with
// margin. When none does over the whole window, a template that explains
// the core around the extremum, with a second crossing left in the
// residual, still matches: an overlapping spike; the residual is scanned
// next and the second spike found there.
//
// A weak snippet (below the detection threshold) matches only over the
// whole window, and only if its projection on the template is at least
// weakScale of the template's energy: the template, not a noise dip or a
// smaller unit of a similar shape, explains it.
//
// burst is the unit whose spike preceded this one within a burst interval
// (0 if none): no prior holds its amplitude up, as spikes shrink within a
// burst.
func (sh *shard) match(c int, x []float32, us []*unit, sign float32, weak bool, burst int32) (int, float32) {
	s := sh.s
	d := s.d
	sig2 := sh.sigma[c] * sh.sigma[c]
	tol := float32(1 + s.cfg.MatchTolerance)
	var xx float32
	for _, v := range x[:d] {
		xx += v * v
	}
	bk, ba, bd := -1, float32(1), float32(math.Inf(1))
	var bestE, bestL, bdot float32
	// With several templates the choice discounts sub-sample shifts.
	shifts := len(us) > 1
	for k, u := range us {
		var dot, dotD float32
		w := u.w[:d]
		if shifts {
			dw := u.dw[:d]
			for i, v := range x[:d] {
				dot += v * w[i]
				dotD += v * dw[i]
			}
		} else {
			for i, v := range x[:d] {
				dot += v * w[i]
			}
		}
		// Amplitude with a prior pulling it to 1 (weight scaleLambda), so
		// units that differ mostly in amplitude stay apart.
		a := float32(1)
		lambda := float32(scaleLambda)
		if u.e > 0 {
			a = min(max((dot+lambda*u.e)/((1+lambda)*u.e), minScale), maxScale)
			if u.id == burst && dot < u.e {
				a, lambda = max(dot/u.e, minScale), 0
			}
		}
		dist := xx - 2*a*dot + a*a*u.e
		if shifts && u.ed > 0 {
			// Less what a sub-sample shift explains (the residual's
			// projection on the derivative), so that a sampling phase
			// that lowers a sharp spike's samples does not make it look
			// like a smaller unit.
			r := dotD - a*u.ec
			dist -= r * r / u.ed
		}
		if dist+lambda*(a-1)*(a-1)*u.e < bd+bestL*(ba-1)*(ba-1)*bestE {
			bestE, bestL, bdot = u.e, lambda, dot
			bk, ba, bd = k, a, dist
		}
	}
	// Sub-sample alignment: T(t-δ) ≈ T - δ·T', δ fitted by least squares.
	u := us[bk]
	delta := sh.subsample(x, u, ba)
	if delta != 0 {
		bd = 0
		for i, v := range x[:d] {
			r := v - ba*(u.w[i]-delta*deriv(u.w, i))
			bd += r * r
		}
	}
	// Noise energy with margin, plus a share of the template's energy for
	// the waveform's own variability (larger spikes vary more in µV).
	if bd < tol*float32(d)*sig2+jitterShare*ba*ba*u.e {
		dot := bdot
		if weak && dot < weakScale*u.e {
			return -1, 0
		}
		if dot*dot < minMatchedZ*minMatchedZ*sig2*u.e || dot < 0 {
			// The matched-filter output x·ŵ/σ: a noise crossing's stays
			// a few σ; a spike's is its template's norm in σ.
			return -1, 0
		}
		sh.delta = delta
		if rate := float32(s.cfg.TrackRate); rate > 0 && !weak && bd < (1+0.5*float32(s.cfg.MatchTolerance))*float32(d)*sig2+0.5*jitterShare*ba*ba*u.e {
			// Follow slow drift: running average of clean matches.
			for i, v := range x {
				u.w[i] += rate * (v/ba - u.w[i])
			}
			u.energy(d)
		}
		return bk, ba
	}
	if weak {
		return -1, 0
	}
	// Overlap: match the core (±quarter of the snippet around the extremum).
	half := max(2, s.post/3)
	lo, hi := max(0, s.pre-half), min(d, s.pre+half+1)
	bk, bd = -1, float32(math.Inf(1))
	for k, u := range us {
		var dot, e, xe float32
		for i := lo; i < hi; i++ {
			dot += x[i] * u.w[i]
			e += u.w[i] * u.w[i]
			xe += x[i] * x[i]
		}
		a := float32(1)
		if e > 0 {
			a = min(max((dot+scaleLambda*e)/((1+scaleLambda)*e), minScale), maxScale)
		}
		if dist := xe - 2*a*dot + a*a*e + scaleLambda*(a-1)*(a-1)*e; dist < bd {
			bk, ba, bd = k, a, dist
		}
	}
	if bk < 0 || bd >= tol*float32(hi-lo)*sig2+jitterShare*ba*ba*us[bk].e*float32(hi-lo)/float32(d) {
		return -1, 0
	}
	sh.delta = 0
	// The rest must hold another crossing for the overlap to be real.
	thr := sh.full[c]
	u = us[bk]
	for i := hi; i < d; i++ {
		r := x[i] - ba*u.w[i]
		if sign*r > thr || -r > thr && s.cfg.Sign == Both {
			return bk, ba
		}
	}
	return -1, 0
}

// noiseUpdate runs after noise value k was taken: the first estimate of
// every channel once noiseInit values are in, then one channel at a time,
// channel c when k mod M reaches c·M/channels (channels of the whole
// stream, with Config.Part), so each channel is re-estimated once per
// noise window and the work is spread evenly.
func (sh *shard) noiseUpdate(k uint64) {
	s := sh.s
	M := s.noiseM
	taken := k + 1
	switch {
	case taken < uint64(s.noiseInit):
	case taken == uint64(s.noiseInit):
		for c := range sh.n {
			sh.setSigma(c, sh.mad(c, s.noiseInit), 1)
		}
	default:
		// Channel c of the whole stream (Config.Part: this sorter's
		// channels are from off of total).
		total, off := s.channels, 0
		if p := s.cfg.Part; p.Total > 0 {
			total, off = p.Total, p.First
		}
		slot := int(k % uint64(M))
		g0 := (slot*total+M-1)/M - off
		g1 := ((slot+1)*total+M-1)/M - off
		for g := max(g0, sh.c0); g < min(g1, sh.c0+sh.n); g++ {
			sh.setSigma(g-sh.c0, sh.mad(g-sh.c0, int(min(taken, uint64(M)))), s.noiseAlpha)
		}
	}
}

func (sh *shard) mad(c, k int) float32 {
	M := sh.s.noiseM
	return medianAbs(sh.nbuf[c*M:c*M+k], sh.scratch) / 0.6745
}

// medianAbs returns the median of x — the value median(x) returns, the
// len(x)/2-th smallest — for x of absolute values (≥ 0, no negative
// zeros), without reordering x; scratch needs len(x) room.
//
// It selects by radix on the float bits, which for non-negative floats
// order like the values: a histogram of the top byte finds the byte of
// the wanted order statistic, the values with that byte are kept, and so
// on down to the last byte. Branch-free counting, about four times faster
// than quickselect on 1,024 values.
func medianAbs(x, scratch []float32) float32 {
	n := len(x)
	if n == 0 {
		return 0
	}
	k := n / 2
	src := x
	for shift := 24; ; shift -= 8 {
		var hist [256]int32
		for _, v := range src {
			hist[(math.Float32bits(v)>>shift)&255]++
		}
		b := 0
		for ; b < 255 && k >= int(hist[b]); b++ {
			k -= int(hist[b])
		}
		if shift == 0 || hist[b] == 1 {
			// The bucket's values are all equal, or it holds one value.
			for _, v := range src {
				if int(math.Float32bits(v)>>shift)&255 == b {
					return v
				}
			}
		}
		// Keep the values in bucket b.
		m := 0
		dst := scratch[:len(src)]
		for _, v := range src {
			dst[m] = v
			if int(math.Float32bits(v)>>shift)&255 == b {
				m++
			}
		}
		src = dst[:m]
	}
}

// setSigma updates the tracked estimate; applySigma makes it the one
// detection uses (at fixed rows, so results do not depend on block sizes).
func (sh *shard) setSigma(c int, sigma, alpha float32) {
	if sh.sigmaNext[c] == 0 || alpha >= 1 {
		sh.sigmaNext[c] = sigma
	} else {
		sh.sigmaNext[c] += alpha * (sigma - sh.sigmaNext[c])
	}
}

func (sh *shard) applySigma() {
	copy(sh.sigma, sh.sigmaNext)
	sh.applyThreshold()
}

// applyThreshold sets the detection thresholds from the noise estimates in
// use and the configured thresholds: channels with templates scan at
// TemplateThreshold, the others at Threshold.
func (sh *shard) applyThreshold() {
	cfg := &sh.s.cfg
	for c, sg := range sh.sigma {
		th := float32(cfg.Threshold) * sg
		if !(th > 0) {
			// A flat channel (or no estimate yet): never detect.
			th = float32(math.Inf(1))
		}
		sh.full[c] = th
		if us := sh.units[c]; len(us) > 0 {
			// Scan no lower than the smallest template's weak spikes can
			// reach (weakScale of its peak, less weakMargin σ of noise):
			// channels with only large units pay for no extra crossings.
			peak := float32(math.Inf(1))
			for _, u := range us {
				peak = min(peak, float32(math.Abs(float64(u.w[sh.s.pre]))))
			}
			th = min(th, max(float32(cfg.templateThreshold())*sg, weakScale*peak-weakMargin*sg))
		} else if g := sh.s.g; g != nil && g.candPeak[sh.c0+c] > 0 {
			th = min(th, max(float32(cfg.templateThreshold())*sg, weakScale*g.candPeak[sh.c0+c]-weakMargin*sg))
		}
		if sh.inv2 != nil {
			sh.inv2[c] = 0
			if sg > 0 {
				sh.inv2[c] = 1 / (sg * sg)
			}
		}
		sh.thr[c] = th
		sh.negThr[c] = -th
	}
}
