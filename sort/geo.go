package sort

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// This file holds sorting with probe geometry (Config.Probe): one event
// per spike however many neighbouring channels see it, multi-channel
// templates, and their matching and subtraction.
//
// Each step runs in two phases. Phase A is the per-channel hot path, in
// parallel over shards as without geometry: filter, noise, threshold scan;
// but a crossing is only recorded (channel, row, sign), not handled
// inline. Phase B (resolve) then handles the recorded crossings of the
// step in time order across channels, on the caller's goroutine once
// every shard's worker is done (so it may read and write every shard's
// ring): a crossing whose neighbour within the radius holds a larger
// value within ±eventMs belongs to that neighbour's event; otherwise its
// channel is the event's main channel, the event is matched against the
// multi-channel templates of the units that can have their largest
// trough there, the matched template is subtracted from every channel it
// spans, and the rows the subtraction changed are scanned again for
// crossings it uncovered (another unit's spike overlapping this one).
// Phase B touches events, not samples: it is the rare part.

// maxNeighbours is the most channels in a neighbourhood (the channel
// itself included): the nearest within Config.Radius.
const maxNeighbours = 16

// eventMs is the window, either side of a crossing, within which a larger
// value on a neighbouring channel makes the crossing part of that
// channel's event.
const eventMs = 0.2

// Units that can have their largest trough on a channel of their
// footprint other than their main one: the trough there is at least
// candShare of the main trough, or less than candMargin noise σ smaller.
const (
	candShare  = 0.7
	candMargin = 4
)

// coreShare: a unit's core channels (its residual test) are those where
// its energy is at least coreShare of the main channel's (a trough about
// a fifth as deep).
const coreShare = 0.04

// geoLearnBytes bounds the learning snippets kept over all channels with
// geometry (each snippet spans a neighbourhood): the per-channel cap
// MaxSnippets is lowered to fit.
const geoLearnBytes = 512 << 20

// gunit is one unit's multi-channel template.
type gunit struct {
	id    int32
	sign  float32   // polarity of its extremum (-1 trough)
	chans []int32   // its channels: the main one first, then by energy
	w     []float32 // len(chans)·dfull, channel after channel, µV
	dw    []float32 // len(chans)·d: derivative over the matched window
	ec    []float32 // per channel: w·w over the matched window
	edc   []float32 // per channel: dw·dw
	ecc   []float32 // per channel: w·dw
	peak  []float32 // per channel: sign-corrected extremum near Pre, µV
	off   []int32   // per channel: the extremum's offset from Pre, samples
	core  int       // leading channels with coreShare of the main energy or more
	count int       // spikes matched or learned from
	// spikes matched since the last learning pass (clean ones)
	recent int
	last   uint64 // row of its last matched spike (burst context)
	seen   bool   // last is set
}

// newGunit returns a unit of waveforms w (dfull samples per channel of
// chans, main channel first), its other channels ordered by energy.
func (s *Sorter) newGunit(id int32, chans []int32, w []float32) *gunit {
	df, d := s.dfull, s.d
	n := len(chans)
	e := make([]float32, n)
	for j := range n {
		for _, v := range w[j*df : j*df+d] {
			e[j] += v * v
		}
	}
	order := make([]int, n)
	for j := range order {
		order[j] = j
	}
	slices.SortStableFunc(order[1:], func(a, b int) int { return cmp.Compare(e[b], e[a]) })
	u := &gunit{id: id, chans: make([]int32, n), w: make([]float32, n*df)}
	for k, j := range order {
		u.chans[k] = chans[j]
		copy(u.w[k*df:(k+1)*df], w[j*df:(j+1)*df])
	}
	u.sign = -1
	if u.w[s.pre] > 0 {
		u.sign = 1
	}
	u.energy(s)
	return u
}

// energy recomputes what matching needs from the waveforms.
func (u *gunit) energy(s *Sorter) {
	df, d, pre := s.dfull, s.d, s.pre
	n := len(u.chans)
	if len(u.ec) != n {
		u.dw = make([]float32, n*d)
		u.ec = make([]float32, n)
		u.edc = make([]float32, n)
		u.ecc = make([]float32, n)
		u.peak = make([]float32, n)
		u.off = make([]int32, n)
	}
	for j := range n {
		w := u.w[j*df : (j+1)*df]
		dw := u.dw[j*d : (j+1)*d]
		var e, ed, ec float32
		for i, v := range w[:d] {
			dv := deriv(w, i)
			dw[i] = dv
			e += v * v
			ed += dv * dv
			ec += v * dv
		}
		u.ec[j], u.edc[j], u.ecc[j] = e, ed, ec
		best, at := u.sign*w[pre], pre
		for i := max(0, pre-s.g.win); i <= min(d-1, pre+s.g.win); i++ {
			if v := u.sign * w[i]; v > best {
				best, at = v, i
			}
		}
		u.peak[j], u.off[j] = best, int32(at-pre)
	}
	u.core = 1
	for u.core < n && u.ec[u.core] >= coreShare*u.ec[0] {
		u.core++
	}
}

// wave returns u's waveform on channel ch (nil if ch is not one of its).
func (u *gunit) wave(ch int32, dfull int) []float32 {
	if j := slices.Index(u.chans, ch); j >= 0 {
		return u.w[j*dfull : (j+1)*dfull]
	}
	return nil
}

// gref is a unit that can have its largest trough on a channel: the
// channel's index k in its chans, and the offset of its extremum there.
type gref struct {
	u   *gunit
	k   int32
	off int32
}

// candidate is a threshold crossing phase A recorded: row t of channel
// ch, with the crossing's polarity.
type candidate struct {
	t    uint64
	ch   int32
	sign int8
}

func (a candidate) before(b candidate) bool {
	return a.t < b.t || a.t == b.t && a.ch < b.ch
}

func byRowChannel(a, b candidate) int {
	if a.t != b.t {
		return cmp.Compare(a.t, b.t)
	}
	return cmp.Compare(a.ch, b.ch)
}

// geometry is the Sorter's state for sorting with probe geometry.
type geometry struct {
	nb    [][]int32 // per channel: itself, then neighbours nearest first
	win   int       // eventMs in samples
	chSh  []*shard  // per channel: its shard
	chLoc []int32   // per channel: its index in its shard
	snips int       // learning snippets kept per main channel

	units    []*gunit
	cand     [][]gref  // per channel: units that can have their largest trough there
	candPeak []float32 // per channel: the smallest of those troughs there, µV (0: none)

	step   []candidate // this step's crossings, merged
	extra  []candidate // crossings uncovered by subtractions (a heap)
	x      []float32   // scratch: a unit's snippet (maxNeighbours·dfull)
	scanTo uint64      // the current step's scan end
}

// setupGeometry turns on geometry when the configuration has a probe in
// which some channels are neighbours; it runs before the ring sizes are
// set (it adds to the lag).
func (s *Sorter) setupGeometry() error {
	p := s.cfg.Probe
	if p == nil {
		return nil
	}
	if err := p.Check(s.channels); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	nb := p.Neighbours(s.cfg.Radius, maxNeighbours)
	if !slices.ContainsFunc(nb, func(l []int) bool { return len(l) > 1 }) {
		return nil // every channel alone: the per-channel sorter
	}
	g := &geometry{nb: make([][]int32, len(nb)), win: max(1, ms(eventMs, s.rate))}
	total := 0
	for c, l := range nb {
		g.nb[c] = make([]int32, len(l))
		for i, o := range l {
			g.nb[c][i] = int32(o)
		}
		total += len(l)
	}
	s.g = g
	return nil
}

// finishGeometry sets what needs the shards and the snippet lengths.
func (s *Sorter) finishGeometry() {
	g := s.g
	g.chSh = make([]*shard, s.channels)
	g.chLoc = make([]int32, s.channels)
	for _, sh := range s.shards {
		for c := range sh.n {
			g.chSh[sh.c0+c], g.chLoc[sh.c0+c] = sh, int32(c)
		}
	}
	total := 0
	for _, l := range g.nb {
		total += len(l)
	}
	per := float64(total) * float64(s.dfull) * 4 // bytes of one snippet on every channel
	g.snips = max(s.cfg.MinSpikes, min(s.cfg.MaxSnippets, int(geoLearnBytes/per)))
	g.cand = make([][]gref, s.channels)
	g.candPeak = make([]float32, s.channels)
	g.x = make([]float32, maxNeighbours*s.dfull)
	for _, sh := range s.shards {
		sh.inv2 = make([]float32, sh.n)
	}
}

// res returns a pointer to the residual of channel ch at row t.
func (g *geometry) res(ch int32, t uint64) *float32 {
	sh := g.chSh[ch]
	return &sh.ring[int(t&sh.mask)*sh.n+int(g.chLoc[ch])]
}

// buildCand lists, per channel, the units that can have their largest
// trough there, and the smallest such trough (for the channel's scan
// threshold).
func (s *Sorter) buildCand() {
	g := s.g
	for ch := range g.cand {
		g.cand[ch] = g.cand[ch][:0]
		g.candPeak[ch] = 0
	}
	for _, u := range g.units {
		main := u.peak[0]
		for j, ch := range u.chans {
			p := u.peak[j]
			if !(p > 0) {
				continue
			}
			sg := g.chSh[ch].sigmaNext[g.chLoc[ch]]
			if j == 0 || p >= candShare*main || main-p <= candMargin*sg {
				g.cand[ch] = append(g.cand[ch], gref{u, int32(j), u.off[j]})
				if g.candPeak[ch] == 0 || p < g.candPeak[ch] {
					g.candPeak[ch] = p
				}
			}
		}
	}
}

// record is phase A's handling of a crossing with geometry.
func (sh *shard) record(c int, t uint64, sign float32) {
	if t < sh.next[c] {
		return
	}
	sh.cands = append(sh.cands, candidate{t, int32(sh.c0 + c), int8(sign)})
}

// resolve is phase B: the step's crossings in time order across channels,
// with the crossings subtractions uncover as they come.
func (s *Sorter) resolve(scanTo uint64) {
	g := s.g
	g.scanTo = scanTo
	all := g.step[:0]
	for _, sh := range s.shards {
		all = append(all, sh.cands...)
		sh.cands = sh.cands[:0]
	}
	slices.SortFunc(all, byRowChannel)
	g.step = all
	i := 0
	for {
		var x candidate
		switch {
		case len(g.extra) > 0 && (i == len(all) || g.extra[0].before(all[i])):
			x = g.popExtra()
		case i < len(all):
			x = all[i]
			i++
		default:
			return
		}
		s.event(x.ch, x.t, float32(x.sign))
	}
}

// pushExtra and popExtra keep g.extra a min-heap by (row, channel).
func (g *geometry) pushExtra(x candidate) {
	h := append(g.extra, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	g.extra = h
}

func (g *geometry) popExtra() candidate {
	h := g.extra
	x := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h[l].before(h[m]) {
			m = l
		}
		if r < n && h[r].before(h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	g.extra = h
	return x
}

// event handles a crossing of channel ch at row t in phase B.
func (s *Sorter) event(ch int32, t uint64, sign float32) {
	g := s.g
	sh, c := g.chSh[ch], int(g.chLoc[ch])
	if t < sh.next[c] || !(sign*sh.at(c, t) > sh.thr[c]) {
		// In dead time, or an earlier event's template took it.
		return
	}
	tr, best, ok := sh.peak(c, t, sign)
	if !ok {
		return
	}
	// The event belongs to the channel with the largest value within
	// ±win of it (ties: the lower channel): if that is a neighbour, its
	// own crossing handles the event.
	w := uint64(g.win)
	for _, n := range g.nb[ch][1:] {
		nsh, nc := g.chSh[n], int(g.chLoc[n])
		thr := nsh.thr[nc]
		for k := tr - min(tr, w); k <= tr+w; k++ {
			if v := sign * nsh.at(nc, k); v > thr && (v > best || v == best && n < ch) {
				sh.next[c] = tr + 1
				return
			}
		}
	}
	weak := best < sh.full[c]
	refs := g.cand[ch]
	k := -1
	var a, delta float32
	if len(refs) > 0 {
		k, a, delta = s.match(ch, tr, refs, sign, weak)
	}
	gap, prev, ok := sh.advance(c, tr, best, weak, k >= 0)
	if !ok {
		return
	}
	if !weak && sh.collect && (s.relearnAll || len(refs) == 0) {
		set := &sh.sets[c]
		if len(set.tau) < g.snips {
			base := tr - uint64(s.pre)
			for _, n := range g.nb[ch] {
				nsh, nc := g.chSh[n], int(g.chLoc[n])
				for i := range s.dfull {
					set.w = append(set.w, nsh.at(nc, base+uint64(i)))
				}
			}
			set.tau = append(set.tau, tr)
			set.gap = append(set.gap, gap)
			set.prev = append(set.prev, prev)
		}
	}
	sp := Spike{Sample: tr, Channel: ch, Amplitude: sh.at(c, tr)}
	if k >= 0 {
		r := refs[k]
		u := r.u
		tu := tr - uint64(int64(r.off))
		u.count++
		if !weak {
			u.recent++
		}
		u.last, u.seen = tu, true
		sp.Sample, sp.Channel, sp.Unit = tu, u.chans[0], u.id
		sp.Amplitude = *g.res(u.chans[0], tu)
		sh.next[c] = tr + uint64(max(1, s.pre/2))
		s.subtract(u, tu, a, delta, tr, sign)
	} else {
		if len(refs) > 0 {
			sh.unmatched++
		}
		// Its later lobes, here and on the neighbours, are not spikes.
		until, level := tr+uint64(s.post+s.tail), lobeShare*best
		for _, n := range g.nb[ch] {
			nsh, nc := g.chSh[n], int(g.chLoc[n])
			if nsh.shadowUntil[nc] <= tr || nsh.shadowLevel[nc] < level {
				nsh.shadowUntil[nc], nsh.shadowLevel[nc] = until, level
			}
		}
	}
	if sp.Sample < s.segTau {
		sp.Sample = s.segTau
	}
	osh := g.chSh[sp.Channel]
	osh.out = append(osh.out, Spike{Sample: s.segFirst + (sp.Sample - s.segTau), Channel: sp.Channel, Unit: sp.Unit, Amplitude: sp.Amplitude})
	osh.outTau = append(osh.outTau, sp.Sample)
}

// match returns the unit among refs that best explains the event at row
// tr of channel ch (index into refs, or -1), its amplitude scale and
// sub-sample shift. It is the per-channel matcher (shard.match) over the
// unit's channels, each weighted by its noise (1/σ²): the amplitude
// prior, the discount for a sub-sample shift, the residual test (over the
// unit's core channels), the matched-filter floor, the weak-spike rule
// and the overlap fallback.
func (s *Sorter) match(ch int32, tr uint64, refs []gref, sign float32, weak bool) (int, float32, float32) {
	g := s.g
	d, df, pre := s.d, s.dfull, s.pre
	bk, ba := -1, float32(1)
	bscore := float32(math.Inf(1))
	var bdot, be float32
	for k, r := range refs {
		u := r.u
		if u.sign != sign {
			continue
		}
		base := tr - uint64(int64(r.off)) - uint64(pre)
		var dot, e, dotD, ed, ec float32
		for j, c := range u.chans {
			sh, lc := g.chSh[c], int(g.chLoc[c])
			inv := sh.inv2[lc]
			w := u.w[j*df : j*df+d]
			dw := u.dw[j*d : (j+1)*d]
			var pd, pdD float32
			for i := range d {
				x := sh.ring[int((base+uint64(i))&sh.mask)*sh.n+lc]
				pd += x * w[i]
				pdD += x * dw[i]
			}
			dot += inv * pd
			dotD += inv * pdD
			e += inv * u.ec[j]
			ed += inv * u.edc[j]
			ec += inv * u.ecc[j]
		}
		a, lambda := float32(1), float32(scaleLambda)
		if e > 0 {
			a = min(max((dot+lambda*e)/((1+lambda)*e), minScale), maxScale)
			if tu := base + uint64(pre); u.seen && tu > u.last && tu-u.last <= uint64(s.burst) && dot < e {
				// Within a burst of this unit: no prior holds its
				// amplitude up (spikes shrink within a burst).
				a, lambda = max(dot/e, minScale), 0
			}
		}
		score := -2*a*dot + a*a*e + lambda*(a-1)*(a-1)*e
		if ed > 0 {
			rr := dotD - a*ec
			score -= rr * rr / ed
		}
		if score < bscore {
			bk, ba, bscore, bdot, be = k, a, score, dot, e
		}
	}
	if bk < 0 {
		return -1, 0, 0
	}
	r := refs[bk]
	u := r.u
	tu := tr - uint64(int64(r.off))
	x := s.gather(u, tu)
	// Sub-sample shift over every channel, then the residual over the
	// core channels.
	var num, den float32
	for j, c := range u.chans {
		inv := g.chSh[c].inv2[g.chLoc[c]]
		w, dw, xs := u.w[j*df:j*df+d], u.dw[j*d:(j+1)*d], x[j*df:j*df+d]
		for i, v := range xs {
			num += inv * (v - ba*w[i]) * dw[i]
			den += inv * dw[i] * dw[i]
		}
	}
	var delta float32
	if den > 0 {
		delta = min(max(-num/(ba*den), -maxShift), maxShift)
	}
	var bd, eCore float32
	for j, c := range u.chans[:u.core] {
		inv := g.chSh[c].inv2[g.chLoc[c]]
		w, dw, xs := u.w[j*df:j*df+d], u.dw[j*d:(j+1)*d], x[j*df:j*df+d]
		var rr float32
		for i, v := range xs {
			q := v - ba*(w[i]-delta*dw[i])
			rr += q * q
		}
		bd += inv * rr
		eCore += inv * u.ec[j]
	}
	tol := float32(1 + s.cfg.MatchTolerance)
	dims := float32(d * u.core)
	if bd < tol*dims+jitterShare*ba*ba*eCore {
		if weak && bdot < weakScale*be {
			return -1, 0, 0
		}
		if bdot*bdot < minMatchedZ*minMatchedZ*be || bdot < 0 {
			return -1, 0, 0
		}
		if rate := float32(s.cfg.TrackRate); rate > 0 && !weak && bd < (1+0.5*float32(s.cfg.MatchTolerance))*dims+0.5*jitterShare*ba*ba*eCore {
			for i, v := range x[:len(u.w)] {
				u.w[i] += rate * (v/ba - u.w[i])
			}
			u.energy(s)
		}
		return bk, ba, delta
	}
	if weak {
		return -1, 0, 0
	}
	// Overlap: the core window (±Post/3 around the extremum) of the core
	// channels fits, and another crossing is left in the rest.
	half := max(2, s.post/3)
	lo, hi := max(0, pre-half), min(d, pre+half+1)
	bk, bscore = -1, float32(math.Inf(1))
	for k, r := range refs {
		u := r.u
		if u.sign != sign {
			continue
		}
		xs := s.gather(u, tr-uint64(int64(r.off)))
		var dot, e, xe float32
		for j, c := range u.chans[:u.core] {
			inv := g.chSh[c].inv2[g.chLoc[c]]
			w := u.w[j*df : j*df+d]
			var pd, pe, px float32
			for i := lo; i < hi; i++ {
				v := xs[j*df+i]
				pd += v * w[i]
				pe += w[i] * w[i]
				px += v * v
			}
			dot += inv * pd
			e += inv * pe
			xe += inv * px
		}
		a := float32(1)
		if e > 0 {
			a = min(max((dot+scaleLambda*e)/((1+scaleLambda)*e), minScale), maxScale)
		}
		if dist := xe - 2*a*dot + a*a*e + scaleLambda*(a-1)*(a-1)*e; dist < bscore {
			bk, ba, bscore = k, a, dist
		}
	}
	if bk < 0 {
		return -1, 0, 0
	}
	r = refs[bk]
	u = r.u
	var eCoreAll float32
	for j, c := range u.chans[:u.core] {
		eCoreAll += g.chSh[c].inv2[g.chLoc[c]] * u.ec[j]
	}
	if bscore >= tol*float32((hi-lo)*u.core)+jitterShare*ba*ba*eCoreAll*float32(hi-lo)/float32(d) {
		return -1, 0, 0
	}
	x = s.gather(u, tr-uint64(int64(r.off)))
	for j, c := range u.chans[:u.core] {
		sh, lc := g.chSh[c], int(g.chLoc[c])
		thr := sh.full[lc]
		w := u.w[j*df : j*df+d]
		for i := hi; i < d; i++ {
			if rr := x[j*df+i] - ba*w[i]; sign*rr > thr {
				return bk, ba, 0
			}
		}
	}
	return -1, 0, 0
}

// gather copies u's snippet at main-trough row tu (dfull samples on each
// of its channels) into the scratch buffer and returns it.
func (s *Sorter) gather(u *gunit, tu uint64) []float32 {
	g := s.g
	df := s.dfull
	base := tu - uint64(s.pre)
	x := g.x[:len(u.chans)*df]
	for j, c := range u.chans {
		sh, lc := g.chSh[c], int(g.chLoc[c])
		xs := x[j*df : (j+1)*df]
		for i := range xs {
			xs[i] = sh.ring[int((base+uint64(i))&sh.mask)*sh.n+lc]
		}
	}
	return x
}

// subtract explains a matched spike of u at main-trough row tu: its
// scaled, shifted template leaves every channel it spans. Rows of the
// current step from win before the event's row tr on, where the residual
// now crosses a threshold it did not cross before, are scanned again: a
// spike the subtracted one hid.
func (s *Sorter) subtract(u *gunit, tu uint64, a, delta float32, tr uint64, sign float32) {
	g := s.g
	df := s.dfull
	base := tu - uint64(s.pre)
	from := tr - min(tr, uint64(g.win))
	for j, c := range u.chans {
		sh, lc := g.chSh[c], int(g.chLoc[c])
		w := u.w[j*df : (j+1)*df]
		thr := sh.thr[lc]
		next := sh.next[lc]
		for i := range w {
			row := base + uint64(i)
			p := &sh.ring[int(row&sh.mask)*sh.n+lc]
			was := sign**p > thr
			*p -= a * (w[i] - delta*deriv(w, i))
			if !was && sign**p > thr && row >= from && row >= next && row < g.scanTo {
				g.pushExtra(candidate{row, c, int8(sign)})
			}
		}
	}
}

// seedGeometry installs seed templates with geometry.
func (s *Sorter) seedGeometry(ts []Template) error {
	df := s.dfull
	for i, t := range ts {
		chans := t.Channels
		foot := t.Footprint
		if len(chans) == 0 {
			chans, foot = []int32{t.Channel}, t.Waveform
		}
		wl := len(t.Waveform)
		if chans[0] != t.Channel || len(foot) != len(chans)*wl {
			return fmt.Errorf("%w: seed template %d (unit %d): %d channels (first %d, channel %d) and %d footprint samples for %d-sample waveforms",
				ErrConfig, i, t.Unit, len(chans), chans[0], t.Channel, len(foot), wl)
		}
		w := make([]float32, len(chans)*df)
		for j, c := range chans {
			if c < 0 || int(c) >= s.channels || slices.Index(chans[:j], c) >= 0 {
				return fmt.Errorf("%w: seed template %d (unit %d): channel %d (of %d, or twice)", ErrConfig, i, t.Unit, c, s.channels)
			}
			copy(w[j*df:(j+1)*df], foot[j*wl:(j+1)*wl])
		}
		u := s.newGunit(t.Unit, slices.Clone(chans), w)
		u.count = t.Count
		s.g.units = append(s.g.units, u)
	}
	s.buildCand()
	return nil
}

// geoTemplates returns copies of the templates with geometry, by main
// channel then unit.
func (s *Sorter) geoTemplates() []Template {
	us := slices.Clone(s.g.units)
	slices.SortFunc(us, func(a, b *gunit) int {
		if a.chans[0] != b.chans[0] {
			return cmp.Compare(a.chans[0], b.chans[0])
		}
		return cmp.Compare(a.id, b.id)
	})
	out := make([]Template, 0, len(us))
	for _, u := range us {
		out = append(out, Template{
			Unit:      u.id,
			Channel:   u.chans[0],
			Pre:       s.pre,
			Waveform:  slices.Clone(u.w[:s.dfull]),
			PeakUV:    u.w[s.pre],
			Count:     u.count,
			Channels:  slices.Clone(u.chans),
			Footprint: slices.Clone(u.w),
		})
	}
	return out
}
