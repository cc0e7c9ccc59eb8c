package sort

import "math"

// This file holds the common median reference's hot loops (Reference
// RefMedian): finding the middle order statistics of each row across all
// channels (referenceRows) and subtracting each channel's leave-one-out
// median (detect).
//
// The reference loop (rowMiddleScalar) gathers the row and selects its
// median by quickselect: about 10 ns per channel and row, seven times the
// rest of the sorter. The fast path (rowMedian.middle, with the AVX2
// kernels of refmedian_amd64.s) gives the same three values without
// sorting: the median of a row is close to the previous row's, so eight
// thresholds around that prediction are counted over the row in one
// vector pass (countBelow8); the interval between two thresholds that
// holds the wanted ranks then has a handful of values, which a second pass
// collects (collectRange) and an insertion sort orders. Exact: the counts
// say which ranks the collected values have, whatever the prediction; a
// poor prediction only costs a retry through the reference loop, and the
// thresholds' spacing follows the rows' spread and how far the median
// moves from row to row. Bit for bit the reference loop's values on any
// row without NaN (the fast path leaves rows whose middle values are zero
// to the reference loop: -0 and +0 tie).

// rowMedian is a shard's state for the fast path: the predicted median of
// the next row and the spacing of the thresholds around it.
type rowMedian struct {
	c, w  float32     // prediction and spacing (0: none yet)
	move  float32     // running mean of |median - prediction|
	thr   [64]float32 // the eight thresholds, each over eight lanes
	acc   [64]int32   // counts below each threshold, per lane
	cand  []float32   // the values between the two chosen thresholds
	rows  uint64      // rows done by the fast path (tests)
	slows uint64      // rows done by the reference loop (tests)
}

// medSteps are the thresholds around the prediction, in units of the
// spacing: fine near it, coarser further out, so that a median that moved
// far is still bracketed without a retry.
var medSteps = [8]float32{-7.5, -3.5, -1.5, -0.5, 0.5, 1.5, 3.5, 7.5}

// medianSmallest is the fewest channels the fast path runs on.
const medianSmallest = 16

// rowMiddle returns the middle order statistics of row t across all
// shards: with n values and k = n/2, the (k-1)-th, k-th and (for odd n)
// (k+1)-th smallest (0-based). all is scratch with room for n values.
func (sh *shard) rowMiddle(t uint64, all []float32) (lo, mid, hi float32) {
	s := sh.s
	segs := sh.segs[:0]
	for _, o := range s.shards {
		segs = append(segs, o.ring[int(t&o.mask)*o.n:][:o.n])
	}
	sh.segs = segs
	return sh.med.rowMiddle(segs, s.channels, all)
}

// rowMiddle returns the middle order statistics of the row made of segs
// (n values in all): by the fast path when it can, else by the reference
// loop, which restarts the prediction. all is scratch with room for n
// values.
func (rm *rowMedian) rowMiddle(segs [][]float32, n int, all []float32) (lo, mid, hi float32) {
	if useAVX2 && n >= medianSmallest && rm.w > 0 {
		if lo, mid, hi, ok := rm.middle(segs, n); ok {
			rm.rows++
			return lo, mid, hi
		}
	}
	rm.slows++
	all = all[:0]
	for _, seg := range segs {
		all = append(all, seg...)
	}
	lo, mid, hi = middleOf(all)
	// Start (or restart) the prediction from this row.
	w := hi - lo
	if n%2 == 0 {
		w = 2 * (mid - lo)
	}
	w *= 1.5
	if !(w > 0) || math.IsInf(float64(w), 0) {
		w = max(1e-3, 1e-3*float32(math.Abs(float64(mid))))
	}
	if math.IsNaN(float64(mid)) || math.IsInf(float64(mid), 0) {
		rm.w = 0 // not a row to predict from
		return lo, mid, hi
	}
	rm.c, rm.w = mid, max(w, rm.w)
	return lo, mid, hi
}

// rowMiddleScalar is the reference loop of rowMiddle: gather row t and
// quickselect.
func rowMiddleScalar(shards []*shard, t uint64, all []float32) (lo, mid, hi float32) {
	all = all[:0]
	for _, o := range shards {
		all = append(all, o.ring[int(t&o.mask)*o.n:][:o.n]...)
	}
	return middleOf(all)
}

// middleOf returns the middle order statistics of all (reordered): its
// median mid (the upper middle value of an even count), the largest value
// below it lo and the smallest above it hi (+Inf for one value).
func middleOf(all []float32) (lo, mid, hi float32) {
	n := len(all)
	k := n / 2
	mid = median(all) // all[:k] <= all[k] <= all[k+1:]
	lo = all[0]
	for _, v := range all[1:k] {
		lo = max(lo, v)
	}
	hi = float32(math.Inf(1))
	for _, v := range all[k+1:] {
		hi = min(hi, v)
	}
	return lo, mid, hi
}

// Referencer subtracts a common reference from rows of band-passed
// samples (a value per channel, every channel the sorter sees) exactly as
// the sorter does: the row's mean from every value (RefAverage), or from
// each value the median of the other channels (RefMedian, by the same
// fast path); RefNone leaves the rows. For readers of a recording that
// want the signal the detector saw (offline.Summary). The median's fast
// path predicts each row's median from the previous one, so it is
// quickest on consecutive rows. One Referencer per goroutine.
type Referencer struct {
	ref  Reference
	med  rowMedian
	all  []float32
	segs [1][]float32
}

// NewReferencer returns a Referencer for ref.
func NewReferencer(ref Reference) *Referencer { return &Referencer{ref: ref} }

// Row subtracts the reference from row, in place.
func (r *Referencer) Row(row []float32) {
	n := len(row)
	switch {
	case r.ref == RefAverage && n > 0:
		var sum float32
		for _, v := range row {
			sum += v
		}
		m := sum / float32(n)
		for c := range row {
			row[c] -= m
		}
	case r.ref == RefMedian && n > 1:
		if cap(r.all) < n {
			r.all = make([]float32, n)
		}
		r.segs[0] = row
		lo, mid, hi := r.med.rowMiddle(r.segs[:], n, r.all)
		odd := n%2 == 1
		if !odd {
			hi = mid // the middle pair (lo, mid), as referenceRows
		}
		m := [3]float32{lo, mid, hi}
		subtractMedian(row, m[:], odd)
	}
}

// middle is the fast path of rowMiddle; ok is false when the wanted ranks
// were not between two of the thresholds (the caller then runs the
// reference loop).
func (rm *rowMedian) middle(segs [][]float32, n int) (lo, mid, hi float32, ok bool) {
	k := n / 2
	need0, need1 := k-1, k // ranks wanted
	if n%2 == 1 {
		need1 = k + 1
	}
	var T [8]float32
	var cnt [8]int // values below T[j]
	a, b, inner := -1, -1, 0
	for try := 0; ; try++ {
		T, cnt, inner = rm.count(segs, n)
		// The ranks lie in [T[a], T[b]): the fewest values below T[a] and
		// the most below T[b].
		a, b = -1, -1
		for j := 7; j >= 0; j-- {
			if cnt[j] <= need0 {
				a = j
				break
			}
		}
		for j := range cnt {
			if cnt[j] > need1 {
				b = j
				break
			}
		}
		if a >= 0 && b >= 0 {
			break
		}
		// The median moved further than the outer thresholds: spread
		// them and count again (a pass costs a fraction of the
		// reference loop).
		rm.w *= 4
		if try == 2 {
			return 0, 0, 0, false
		}
	}
	if a >= 2 && b <= 5 {
		// Between the inner thresholds: count collected them.
		a, b = 2, 5
	}
	m := cnt[b] - cnt[a]
	cand := rm.cand[:n+8]
	got := inner
	if a != 2 || b != 5 {
		got = 0
		for _, row := range segs {
			n8 := len(row) &^ 7
			if n8 > 0 {
				got += collectRange(&row[0], n8, T[a], T[b], &cand[got])
			}
			for _, v := range row[n8:] {
				if v >= T[a] && v < T[b] {
					cand[got] = v
					got++
				}
			}
		}
	}
	if got != m {
		// Only NaNs could do this; the reference loop decides.
		return 0, 0, 0, false
	}
	cand = cand[:m]
	r := need0 - cnt[a]
	if m <= 32 {
		insertionSort(cand)
		lo, mid = cand[r], cand[r+1]
		if n%2 == 1 {
			hi = cand[r+2]
		} else {
			hi = mid
		}
	} else {
		lo = selectK(cand, r) // cand[:r] <= cand[r] <= cand[r+1:]
		rest := cand[r+1:]
		mid = rest[0]
		for _, v := range rest[1:] {
			mid = min(mid, v)
		}
		hi = mid
		if n%2 == 1 {
			// The second smallest of rest.
			first := false
			hi = float32(math.Inf(1))
			for _, v := range rest {
				if v == mid && !first {
					first = true
					continue
				}
				hi = min(hi, v)
			}
		}
	}
	if lo == 0 || mid == 0 || hi == 0 {
		// +0 and -0 are equal but not the same bits: which one the
		// reference loop returns depends on its quickselect's order, so
		// it decides (rows of exact zeros are padding, not signal).
		return 0, 0, 0, false
	}
	// Next row: predict this median (the best simple predictor measured
	// on simulated rows: its error is mostly the median's own sampling
	// noise); space the thresholds so the inner intervals hold about two
	// values and the inner three (T[2]..T[5], collected while counting)
	// reach past how far the median typically moves: on the benchmark's
	// rows about 60 % of rows need no second pass and under 0.1 % a
	// second count.
	rm.move += 0.125 * (float32(math.Abs(float64(mid-rm.c))) - rm.move)
	w := rm.w
	if span := cnt[7] - cnt[0]; span > 0 {
		w = 2 * 15 * rm.w / float32(span) // two values per inner interval
	}
	w = max(w, 0.8*rm.move)
	rm.w = min(max(w, 0.25*rm.w), 4*rm.w)
	rm.c = mid
	return lo, mid, hi, true
}

// count counts the values of the row (segs, n values) below each of the
// eight thresholds around the prediction, and copies those between the
// third and the sixth (T[2] <= v < T[5]) to rm.cand, returning how many.
func (rm *rowMedian) count(segs [][]float32, n int) (T [8]float32, cnt [8]int, inner int) {
	for j, st := range medSteps {
		T[j] = rm.c + st*rm.w
		for l := range 8 {
			rm.thr[8*j+l] = T[j]
		}
	}
	if cap(rm.cand) < n+8 {
		rm.cand = make([]float32, n+8)
	}
	cand := rm.cand[:n+8]
	clear(rm.acc[:])
	for _, row := range segs {
		n8 := len(row) &^ 7
		if n8 > 0 {
			inner += countBelow8(&row[0], n8, &rm.thr[0], &rm.acc[0], &cand[inner])
		}
		for _, v := range row[n8:] {
			for j, tj := range T {
				if v < tj {
					cnt[j]++
				}
			}
			if v >= T[2] && v < T[5] {
				cand[inner] = v
				inner++
			}
		}
	}
	for j := range cnt {
		for _, c := range rm.acc[8*j : 8*j+8] {
			cnt[j] += int(c)
		}
	}
	return T, cnt, inner
}

// insertionSort sorts a few values.
func insertionSort(x []float32) {
	for i := 1; i < len(x); i++ {
		v := x[i]
		j := i
		for ; j > 0 && x[j-1] > v; j-- {
			x[j] = x[j-1]
		}
		x[j] = v
	}
}

// median returns the median of x (x[len(x)/2] once sorted), reordering
// x as selectK does; 0 for no values.
func median(x []float32) float32 {
	if len(x) == 0 {
		return 0
	}
	return selectK(x, len(x)/2)
}

// selectK returns the k-th smallest of x (0-based), reordering x so that
// x[:k] <= x[k] <= x[k+1:].
func selectK(x []float32, k int) float32 {
	lo, hi := 0, len(x)-1
	for lo < hi {
		p := x[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for x[i] < p {
				i++
			}
			for x[j] > p {
				j--
			}
			if i <= j {
				x[i], x[j] = x[j], x[i]
				i++
				j--
			}
		}
		if k <= j {
			hi = j
		} else if k >= i {
			lo = i
		} else {
			break
		}
	}
	return x[k]
}

// subtractMedian references one row of a shard: each value less the
// median of the other channels (refMedian), given the row's middle order
// statistics r. The AVX2 kernels take the multiples of eight channels;
// the loops after them are branch-free (which value is subtracted is
// picked by the comparisons' outcomes, random from channel to channel).
func subtractMedian(row []float32, r []float32, odd bool) {
	lo, mid, hi := r[0], r[1], r[2]
	c := 0
	if useAVX2 {
		if n8 := len(row) &^ 7; n8 > 0 {
			if odd {
				subMedianOdd(&row[0], n8, mid, 0.5*(mid+hi), 0.5*(lo+mid), 0.5*(lo+hi))
			} else {
				subMedianEven(&row[0], n8, lo, mid)
			}
			c = n8
		}
	}
	if odd {
		// Index lt + 2·gt: 0 at the middle, 1 below it, 2 above.
		tab := [4]float32{0.5 * (lo + hi), 0.5 * (mid + hi), 0.5 * (lo + mid), 0}
		for i, v := range row[c:] {
			row[c+i] = v - tab[(b2i(v < mid)+2*b2i(v > mid))&3]
		}
		return
	}
	// Even: the upper middle for values at or below the lower one.
	tab := [2]float32{lo, mid}
	for i, v := range row[c:] {
		row[c+i] = v - tab[b2i(v <= lo)&1]
	}
}

// b2i is 1 for true and 0 for false (compiled to a flag set, no branch).
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
