package decode

import (
	"fmt"

	"github.com/spikeline/spikeline/sort"
)

// Online decodes spikes as they arrive and emits one Estimate per closed
// bin. Bins are aligned to the device sample clock (bin k covers samples
// [k·BinSamples, (k+1)·BinSamples)); host time plays no part.
//
// Feed it with Add (spikes in any order within the open bins), MarkGap
// (samples lost by the device link) and Advance (all spikes before upTo
// have been delivered). An Online is not safe for concurrent use.
//
// Work is done as spikes arrive: a spike adds its unit's row of the
// decoder's projection to its bin's accumulator, so closing a bin costs
// O(lags·outputs) for a Wiener filter and O(state²) for a Kalman filter,
// independent of the number of units. Nothing is allocated per bin in
// steady state.
type Online struct {
	m     *Model
	e     *engine
	width uint64

	lookup []int32         // key -> column+1 for small non-negative keys
	col    map[int32]int32 // the same for other keys

	next uint64    // bin index of the next bin to close
	done uint64    // highest upTo passed to Advance: spikes before it are late
	ring []float64 // len(ring)/p accumulators, bin k in slot k mod slots
	p    int
	gaps []Gap

	stats OnlineStats
	fed   uint64 // Calibrator: sequence number of the next stored spike to feed
}

// OnlineStats counts spikes an Online could not use.
type OnlineStats struct {
	Bins    uint64 // bins closed
	Late    uint64 // spikes before an earlier Advance's upTo (dropped)
	Unknown uint64 // spikes of units (or channels) not in the model (ignored)
	Gaps    uint64 // bins closed without full data
	Future  uint64 // spikes more than MaxAhead bins ahead of the next bin (dropped: a corrupt sample index)
}

// MaxAhead is how many bins ahead of the next bin to close Online accepts
// spikes for (about 22 minutes at 20 ms bins); spikes further ahead can
// only come from a corrupt sample index and are dropped.
const MaxAhead = 1 << 16

// NewOnline returns an Online for m whose first bin is the one holding
// sample start. If start is not a bin boundary, the part of that bin
// before start counts as a gap.
func NewOnline(m *Model, start uint64) (*Online, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	o := &Online{m: m, e: newEngine(m), width: m.BinSamples, col: map[int32]int32{}}
	o.p = o.e.p
	maxKey := int32(-1)
	for _, k := range m.Keys {
		maxKey = max(maxKey, k)
	}
	if maxKey < 1<<20 {
		o.lookup = make([]int32, maxKey+1)
	}
	for j, k := range m.Keys {
		if k >= 0 && int(k) < len(o.lookup) {
			o.lookup[k] = int32(j) + 1
		} else {
			o.col[k] = int32(j) + 1
		}
	}
	o.ring = make([]float64, 16*o.p)
	o.next = start / o.width
	o.done = start
	if b := o.next * o.width; b < start {
		o.gaps = append(o.gaps, Gap{b, start})
	}
	o.gaps = append(make([]Gap, 0, 8), o.gaps...)
	return o, nil
}

// Model returns the model o decodes with.
func (o *Online) Model() *Model { return o.m }

// Stats returns counts of bins and of spikes that could not be used.
func (o *Online) Stats() OnlineStats { return o.stats }

// Next returns the device sample index where the next bin to close begins.
func (o *Online) Next() uint64 { return o.next * o.width }

func (o *Online) slots() uint64 { return uint64(len(o.ring) / o.p) }

// grow makes room for bins up to k.
func (o *Online) grow(k uint64) {
	old := o.slots()
	n := old
	for k-o.next >= n {
		n *= 2
	}
	ring := make([]float64, int(n)*o.p)
	for b := o.next; b < o.next+old; b++ {
		copy(ring[int(b%n)*o.p:], o.ring[int(b%old)*o.p:int(b%old+1)*o.p])
	}
	o.ring = ring
}

// Add counts spikes into their bins. Spikes before the upTo of an
// earlier Advance are late by that call's contract: they are dropped and
// counted (this also makes adding the same spikes twice across
// Calibrator.CatchUp harmless). Spikes of units not in the model are
// ignored and counted.
func (o *Online) Add(spikes []sort.Spike) {
	g := o.m.Grouping
	for i := range spikes {
		s := &spikes[i]
		key, ok := g.Key(*s)
		if !ok {
			continue
		}
		var j int32
		if key >= 0 && int(key) < len(o.lookup) {
			j = o.lookup[key]
		} else {
			j = o.col[key]
		}
		if j == 0 {
			o.stats.Unknown++
			continue
		}
		k := s.Sample / o.width
		if s.Sample < o.done || k < o.next {
			o.stats.Late++
			continue
		}
		if k-o.next >= o.slots() {
			if k-o.next >= MaxAhead {
				o.stats.Future++
				continue
			}
			o.grow(k)
		}
		slot := int(k % o.slots())
		o.e.addCount(o.ring[slot*o.p:(slot+1)*o.p], int(j-1), g.weight(*s))
	}
}

// MarkGap records that samples [g.Start, g.End) were lost: every bin
// overlapping them is decoded as unobserved (see Estimate.Degraded).
// Call it before Advance passes the gap.
func (o *Online) MarkGap(g Gap) {
	if g.End > g.Start && g.End > o.next*o.width {
		o.gaps = append(o.gaps, g)
	}
}

// observed reports whether bin k overlaps no gap, dropping gaps that end
// before bin k.
func (o *Online) observed(k uint64) bool {
	lo, hi := k*o.width, (k+1)*o.width
	ok := true
	n := 0
	for _, g := range o.gaps {
		if g.End <= lo {
			continue
		}
		o.gaps[n] = g
		n++
		if g.Start < hi {
			ok = false
		}
	}
	o.gaps = o.gaps[:n]
	return ok
}

// Advance closes every bin that ends at or before upTo (all spikes before
// upTo must have been added) and appends one Estimate per closed bin to
// dst, which it returns. The appended Estimates reuse the Values storage
// of dst's spare capacity: pass dst[:0] of the previous call to decode
// without allocating, and copy Estimates you keep beyond the next call.
func (o *Online) Advance(upTo uint64, dst []Estimate) []Estimate {
	no := len(o.m.Outputs)
	o.done = max(o.done, upTo)
	for (o.next+1)*o.width <= upTo {
		k := o.next
		slot := int(k % o.slots())
		acc := o.ring[slot*o.p : (slot+1)*o.p]
		obs := o.observed(k)
		if len(dst) < cap(dst) {
			dst = dst[:len(dst)+1]
		} else {
			dst = append(dst, Estimate{})
		}
		est := &dst[len(dst)-1]
		if cap(est.Values) < no {
			est.Values = make([]float64, no)
		}
		est.Values = est.Values[:no]
		est.Degraded = o.e.step(acc, obs, est.Values)
		est.End = (k + 1) * o.width
		est.Rate = o.m.Rate
		est.Names = o.m.Outputs
		clear(acc)
		o.next++
		o.stats.Bins++
		if est.Degraded {
			o.stats.Gaps++
		}
	}
	return dst
}
