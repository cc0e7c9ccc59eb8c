package score

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/spikeline/spikeline/sort"
)

// Options are the comparison parameters. The zero value means
// SpikeInterface's defaults.
type Options struct {
	DeltaTime         float64 // match tolerance in ms (default 0.4)
	MatchScore        float64 // minimum agreement to pair units (default 0.5)
	ChanceScore       float64 // minimum agreement for a best match (default 0.1)
	WellDetectedScore float64 // agreement of a well-detected unit (default 0.8)
	RedundantScore    float64 // agreement above which an unpaired unit is redundant (default 0.2)
	OvermergedScore   float64 // agreement above which a unit may be overmerged (default 0.2)

	// Positions, when set, are the channel positions in µm (index =
	// channel; probe.Probe.Positions) and two spikes match only when
	// their channels are at most RadiusUM apart (default 50 µm): a
	// detection on any channel near the true main channel counts, one
	// across the probe does not. Every spike's channel must then be one
	// of Positions. Without Positions, spikes match by time alone.
	Positions [][2]float64
	RadiusUM  float64
}

// withDefaults fills zero fields with SpikeInterface's defaults.
func (o Options) withDefaults() Options {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.DeltaTime, 0.4)
	def(&o.MatchScore, 0.5)
	def(&o.ChanceScore, 0.1)
	def(&o.WellDetectedScore, 0.8)
	def(&o.RedundantScore, 0.2)
	def(&o.OvermergedScore, 0.2)
	if o.Positions != nil {
		def(&o.RadiusUM, 50)
	}
	return o
}

// UnitResult is the score of one ground-truth unit.
type UnitResult struct {
	GT      int32 // ground-truth unit id
	Channel int32 // the channel most of its spikes are on (-1 if unknown)
	NumGT   int   // ground-truth spikes

	Paired        bool    // a sorted unit was paired with it
	Sorted        int32   // the paired sorted unit (0 when not Paired)
	SortedChannel int32   // the paired unit's main channel (-1 if unknown)
	NumSorted     int     // spikes of the paired sorted unit
	Agreement     float64 // agreement score of the pair

	TP, FN, FP int // true positives, false negatives, false positives

	// The false negatives broken down by what the sorting has at their
	// time (within the match tolerance): a spike of another sorted unit
	// (Misclassified, SpikeInterface's "CL"), an unsorted spike (unit 0,
	// Unsorted), or nothing (Missed: not detected).
	Misclassified, Unsorted, Missed int

	Accuracy       float64 // tp / (tp + fn + fp)
	Recall         float64 // tp / (tp + fn)
	Precision      float64 // tp / (tp + fp)
	FalseDiscovery float64 // fp / (tp + fp)
	MissRate       float64 // fn / n_gt

	// Lag is the mean of (sorted - ground truth) sample index over the
	// matched spikes of the pair: a sorter's systematic alignment offset.
	Lag float64

	WellDetected bool // Paired with Agreement >= WellDetectedScore
}

// Comparison is the result of Compare.
type Comparison struct {
	Options     Options // the options used, defaults filled in
	Rate        float64 // sample rate, Hz
	DeltaFrames int     // match tolerance in samples

	GTUnits     []int32 // ground-truth unit ids, ascending
	SortedUnits []int32 // sorted unit ids, ascending

	// Units holds one result per ground-truth unit, in GTUnits order.
	Units []UnitResult

	// Sorted-unit categories (ids ascending), as in SpikeInterface.
	WellDetected  []int32 // paired with agreement >= WellDetectedScore
	Redundant     []int32 // unpaired, but matching a GT unit that prefers another unit
	Overmerged    []int32 // agreement > OvermergedScore with two or more GT units
	FalsePositive []int32 // unpaired and not redundant
	Bad           []int32 // unpaired (redundant + false positive)

	gtIndex, sortedIndex map[int32]int
	gtCount, sortedCount []int
	sortedChannel        []int32
	pairs                map[pairKey]pairCount
}

type pairKey struct{ gt, sorted int32 } // indices into GTUnits, SortedUnits

type pairCount struct {
	matches int
	lagSum  int64
}

// Matches returns the number of matched spikes between a ground-truth unit
// and a sorted unit (0 for unknown units).
func (c *Comparison) Matches(gt, sorted int32) int {
	a, ok1 := c.gtIndex[gt]
	b, ok2 := c.sortedIndex[sorted]
	if !ok1 || !ok2 {
		return 0
	}
	return c.pairs[pairKey{int32(a), int32(b)}].matches
}

// Agreement returns the agreement score between a ground-truth unit and a
// sorted unit: matches / (n_gt + n_sorted - matches).
func (c *Comparison) Agreement(gt, sorted int32) float64 {
	a, ok1 := c.gtIndex[gt]
	b, ok2 := c.sortedIndex[sorted]
	if !ok1 || !ok2 {
		return 0
	}
	return agreement(c.pairs[pairKey{int32(a), int32(b)}].matches, c.gtCount[a], c.sortedCount[b])
}

func agreement(m, n1, n2 int) float64 {
	d := n1 + n2 - m
	if d <= 0 {
		return 0
	}
	return float64(m) / float64(d)
}

// Unit returns the result of a ground-truth unit.
func (c *Comparison) Unit(gt int32) (UnitResult, bool) {
	i, ok := c.gtIndex[gt]
	if !ok {
		return UnitResult{}, false
	}
	return c.Units[i], true
}

// event is a spike reduced to what the sweep needs.
type event struct {
	sample uint64
	unit   int32 // index into the unit list
	ch     int32
}

// units lists the distinct non-zero unit ids of spikes, ascending, with
// spike counts and main channels, and returns the spikes as events sorted
// by sample index.
func units(spikes []sort.Spike) (ids []int32, index map[int32]int, count []int, channel []int32, ev []event) {
	index = map[int32]int{}
	for _, s := range spikes {
		if s.Unit == 0 {
			continue
		}
		if _, ok := index[s.Unit]; !ok {
			index[s.Unit] = 0
			ids = append(ids, s.Unit)
		}
	}
	slices.Sort(ids)
	for i, id := range ids {
		index[id] = i
	}
	count = make([]int, len(ids))
	chCount := make([]map[int32]int, len(ids))
	ev = make([]event, 0, len(spikes))
	lastUnit, i := int32(0), 0
	for _, s := range spikes {
		if s.Unit == 0 {
			continue
		}
		if s.Unit != lastUnit {
			lastUnit, i = s.Unit, index[s.Unit]
		}
		count[i]++
		if s.Channel >= 0 {
			if chCount[i] == nil {
				chCount[i] = map[int32]int{}
			}
			chCount[i][s.Channel]++
		}
		ev = append(ev, event{s.Sample, int32(i), s.Channel})
	}
	channel = make([]int32, len(ids))
	for i, m := range chCount {
		channel[i] = -1
		best := 0
		for ch, n := range m {
			if n > best || (n == best && ch < channel[i]) {
				best, channel[i] = n, ch
			}
		}
	}
	bySample := func(a, b event) int { return cmp.Compare(a.sample, b.sample) }
	if !slices.IsSortedFunc(ev, bySample) { // sorters and simulators emit in time order
		slices.SortFunc(ev, bySample)
	}
	return ids, index, count, channel, ev
}

// Compare scores a sorting against ground truth. rate is the sample rate
// in Hz, used to turn Options.DeltaTime into samples. Neither slice needs
// to be in time order and neither is modified. Spikes of unit 0 are
// ignored. Compare returns an error only for an impossible rate.
func Compare(gt, sorted []sort.Spike, rate float64, opts Options) (*Comparison, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("score: sample rate %g Hz, want > 0", rate)
	}
	opts = opts.withDefaults()
	if opts.Positions != nil {
		if !(opts.RadiusUM > 0) || math.IsInf(opts.RadiusUM, 0) {
			return nil, fmt.Errorf("score: radius %g µm, want > 0", opts.RadiusUM)
		}
		for _, set := range []struct {
			name   string
			spikes []sort.Spike
		}{{"ground-truth", gt}, {"sorted", sorted}} {
			for _, s := range set.spikes {
				if s.Channel < 0 || int(s.Channel) >= len(opts.Positions) {
					return nil, fmt.Errorf("score: %s spike at sample %d on channel %d, the probe has %d channels", set.name, s.Sample, s.Channel, len(opts.Positions))
				}
			}
		}
	}
	c := &Comparison{Options: opts, Rate: rate}
	c.DeltaFrames = int(opts.DeltaTime / 1000 * rate)
	var gtChannel []int32
	var gtEv, soEv []event
	c.GTUnits, c.gtIndex, c.gtCount, gtChannel, gtEv = units(gt)
	c.SortedUnits, c.sortedIndex, c.sortedCount, c.sortedChannel, soEv = units(sorted)
	near := nearFunc(opts)
	c.pairs = matchCounts(gtEv, soEv, len(c.GTUnits), len(c.SortedUnits), uint64(c.DeltaFrames), near)
	c.pair(gtChannel)
	c.classifyMisses(gtEv, soEv, unsorted(sorted), uint64(c.DeltaFrames), near)
	return c, nil
}

// nearFunc returns whether two channels are close enough for their
// spikes to match (always, without Positions).
func nearFunc(o Options) func(a, b int32) bool {
	if o.Positions == nil {
		return nil
	}
	pos, r2 := o.Positions, o.RadiusUM*o.RadiusUM
	return func(a, b int32) bool {
		dx, dy := pos[a][0]-pos[b][0], pos[a][1]-pos[b][1]
		return dx*dx+dy*dy <= r2
	}
}

// unsorted returns the unit-0 spikes as events, sorted by sample.
func unsorted(spikes []sort.Spike) []event {
	var out []event
	for _, s := range spikes {
		if s.Unit == 0 {
			out = append(out, event{s.Sample, -1, s.Channel})
		}
	}
	bySample := func(a, b event) int { return cmp.Compare(a.sample, b.sample) }
	if !slices.IsSortedFunc(out, bySample) {
		slices.SortFunc(out, bySample)
	}
	return out
}

// classifyMisses splits each ground-truth unit's false negatives into
// Misclassified, Unsorted and Missed. It redoes, per paired unit, the
// greedy matching of matchCounts to know which spikes matched.
func (c *Comparison) classifyMisses(gt, so []event, unsorted []event, delta uint64, nearCh func(a, b int32) bool) {
	trains := func(ev []event, n int) [][]event {
		out := make([][]event, n)
		for _, e := range ev {
			out[e.unit] = append(out[e.unit], e)
		}
		return out
	}
	gtTrains := trains(gt, len(c.GTUnits))
	soTrains := trains(so, len(c.SortedUnits))
	bySample := func(e event, x uint64) int { return cmp.Compare(e.sample, x) }
	nearBy := func(a, b int32) bool { return nearCh == nil || nearCh(a, b) }
	for a := range c.Units {
		u := &c.Units[a]
		g := gtTrains[a]
		matched := make([]bool, len(g))
		own := int32(-1)
		if u.Paired {
			own = int32(c.sortedIndex[u.Sorted])
			s := soTrains[own]
			j := 0
			for i, t := range g {
				for j < len(s) && s[j].sample+delta < t.sample {
					j++
				}
				for k := j; k < len(s) && s[k].sample <= t.sample+delta; k++ {
					if nearBy(t.ch, s[k].ch) {
						matched[i] = true
						j = k + 1
						break
					}
				}
			}
		}
		for i, t := range g {
			if matched[i] {
				continue
			}
			// Another sorted unit's spike within the tolerance (and near)?
			other, uns := false, false
			k, _ := slices.BinarySearchFunc(so, t.sample-min(t.sample, delta), bySample)
			for ; k < len(so) && so[k].sample <= t.sample+delta; k++ {
				if so[k].unit != own && nearBy(t.ch, so[k].ch) {
					other = true
					break
				}
			}
			k, _ = slices.BinarySearchFunc(unsorted, t.sample-min(t.sample, delta), bySample)
			for ; k < len(unsorted) && unsorted[k].sample <= t.sample+delta; k++ {
				if nearBy(t.ch, unsorted[k].ch) {
					uns = true
					break
				}
			}
			switch {
			case other:
				u.Misclassified++
			case uns:
				u.Unsorted++
			default:
				u.Missed++
			}
		}
	}
}

// denseLimit is the most unit pairs matchCounts keeps in a dense table
// (16 bytes each); beyond it a map holds the pairs that coincide.
const denseLimit = 1 << 21

// matchCounts returns, per unit pair that has any match, the size of the
// maximum one-to-one matching of their trains within ±delta samples and
// the summed lag. gt and so are sorted by sample; nGT and nSorted are the
// unit counts.
//
// One sweep visits the ground-truth spikes in time order with a sliding
// window over the sorted spikes. Each ground-truth spike is matched, for
// every sorted unit, to the earliest sorted spike of that unit within its
// window that no earlier spike of the same ground-truth unit took. With
// windows of equal width this greedy matching is maximum.
//
// With near (Options.Positions), a pair of spikes matches only when near
// says their channels are close.
func matchCounts(gt, so []event, nGT, nSorted int, delta uint64, near func(a, b int32) bool) map[pairKey]pairCount {
	type state struct {
		matches int32
		lastGT  int32 // index in gt of the last ground-truth spike matched, -1: none
		lastSo  int32 // index in so of the last sorted spike matched, -1: none
		lagSum  int32 // |lag| <= delta, so this holds 2^31/delta matches
	}
	fresh := state{lastGT: -1, lastSo: -1}
	var dense []state
	var sparse map[pairKey]*state
	if nGT*nSorted <= denseLimit {
		dense = make([]state, nGT*nSorted)
		for i := range dense {
			dense[i] = fresh
		}
	} else {
		sparse = map[pairKey]*state{}
	}
	lo := 0
	for i, g := range gt {
		for lo < len(so) && so[lo].sample+delta < g.sample {
			lo++
		}
		for j := lo; j < len(so) && so[j].sample <= g.sample+delta; j++ {
			if near != nil && !near(g.ch, so[j].ch) {
				continue
			}
			var s *state
			if dense != nil {
				s = &dense[int(g.unit)*nSorted+int(so[j].unit)]
			} else {
				k := pairKey{g.unit, so[j].unit}
				if s = sparse[k]; s == nil {
					s = new(state)
					*s = fresh
					sparse[k] = s
				}
			}
			if s.lastGT == int32(i) || int32(j) <= s.lastSo {
				continue
			}
			s.matches++
			s.lagSum += int32(int64(so[j].sample) - int64(g.sample))
			s.lastSo, s.lastGT = int32(j), int32(i)
		}
	}
	out := map[pairKey]pairCount{}
	for k, s := range dense {
		if s.matches > 0 {
			out[pairKey{int32(k / nSorted), int32(k % nSorted)}] = pairCount{int(s.matches), int64(s.lagSum)}
		}
	}
	for k, s := range sparse {
		if s.matches > 0 {
			out[k] = pairCount{int(s.matches), int64(s.lagSum)}
		}
	}
	return out
}

// pair runs the Hungarian pairing and fills the per-unit results and the
// unit categories.
func (c *Comparison) pair(gtChannel []int32) {
	o := c.Options
	n1, n2 := len(c.GTUnits), len(c.SortedUnits)
	score := func(k pairKey) float64 {
		return agreement(c.pairs[k].matches, c.gtCount[k.gt], c.sortedCount[k.sorted])
	}

	// Best matches (chance score) both ways, and overmerge counts.
	best12 := make([]int32, n1)
	best21 := make([]int32, n2)
	bestS12 := make([]float64, n1)
	bestS21 := make([]float64, n2)
	for i := range best12 {
		best12[i] = -1
	}
	for i := range best21 {
		best21[i] = -1
	}
	over := make([]int, n2)
	// Edges of the thresholded agreement graph, for the Hungarian step.
	adj1 := make([][]int32, n1)
	keys := make([]pairKey, 0, len(c.pairs))
	for k := range c.pairs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b pairKey) int {
		if c := cmp.Compare(a.gt, b.gt); c != 0 {
			return c
		}
		return cmp.Compare(a.sorted, b.sorted)
	})
	for _, k := range keys {
		s := score(k)
		if s >= o.ChanceScore && s > bestS12[k.gt] {
			bestS12[k.gt], best12[k.gt] = s, k.sorted
		}
		if s >= o.ChanceScore && s > bestS21[k.sorted] {
			bestS21[k.sorted], best21[k.sorted] = s, k.gt
		}
		if s > o.OvermergedScore {
			over[k.sorted]++
		}
		if s >= o.MatchScore {
			adj1[k.gt] = append(adj1[k.gt], k.sorted)
		}
	}

	// Hungarian pairing per connected component of the graph of pairs
	// with agreement >= MatchScore: the optimum of the thresholded matrix
	// decomposes over its components.
	match12 := make([]int32, n1)
	match21 := make([]int32, n2)
	for i := range match12 {
		match12[i] = -1
	}
	for i := range match21 {
		match21[i] = -1
	}
	adj2 := make([][]int32, n2)
	for a, bs := range adj1 {
		for _, b := range bs {
			adj2[b] = append(adj2[b], int32(a))
		}
	}
	seen1 := make([]bool, n1)
	seen2 := make([]bool, n2)
	for start := range n1 {
		if seen1[start] || len(adj1[start]) == 0 {
			continue
		}
		var rows, cols []int32
		queue := []int32{int32(start)}
		seen1[start] = true
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			rows = append(rows, a)
			for _, b := range adj1[a] {
				if seen2[b] {
					continue
				}
				seen2[b] = true
				cols = append(cols, b)
				for _, a2 := range adj2[b] {
					if !seen1[a2] {
						seen1[a2] = true
						queue = append(queue, a2)
					}
				}
			}
		}
		if len(rows) == 1 && len(cols) == 1 {
			match12[rows[0]], match21[cols[0]] = cols[0], rows[0]
			continue
		}
		cost := make([][]float64, len(rows))
		for r, a := range rows {
			cost[r] = make([]float64, len(cols))
			for q, b := range cols {
				if s := score(pairKey{a, b}); s >= o.MatchScore {
					cost[r][q] = -s
				}
			}
		}
		for r, q := range Assign(cost) {
			if q < 0 || cost[r][q] == 0 {
				continue
			}
			match12[rows[r]], match21[cols[q]] = cols[q], rows[r]
		}
	}

	c.Units = make([]UnitResult, n1)
	for a := range n1 {
		u := UnitResult{GT: c.GTUnits[a], Channel: gtChannel[a], NumGT: c.gtCount[a], SortedChannel: -1}
		b := match12[a]
		if b < 0 {
			u.FN = u.NumGT
			u.MissRate = 1
		} else {
			k := pairKey{int32(a), b}
			pc := c.pairs[k]
			u.Paired = true
			u.Sorted = c.SortedUnits[b]
			u.SortedChannel = c.sortedChannel[b]
			u.NumSorted = c.sortedCount[b]
			u.Agreement = score(k)
			u.TP = pc.matches
			u.FN = u.NumGT - u.TP
			u.FP = u.NumSorted - u.TP
			if u.TP > 0 {
				u.Lag = float64(pc.lagSum) / float64(u.TP)
				u.Accuracy = float64(u.TP) / float64(u.TP+u.FN+u.FP)
				u.Recall = float64(u.TP) / float64(u.TP+u.FN)
				u.Precision = float64(u.TP) / float64(u.TP+u.FP)
				u.FalseDiscovery = float64(u.FP) / float64(u.TP+u.FP)
			}
			if u.NumGT > 0 {
				u.MissRate = float64(u.FN) / float64(u.NumGT)
			}
			u.WellDetected = u.Agreement >= o.WellDetectedScore
		}
		c.Units[a] = u
	}

	for b := range n2 {
		id := c.SortedUnits[b]
		if over[b] > 1 {
			c.Overmerged = append(c.Overmerged, id)
		}
		if a := match21[b]; a >= 0 {
			if score(pairKey{a, int32(b)}) >= o.WellDetectedScore {
				c.WellDetected = append(c.WellDetected, id)
			}
			continue
		}
		c.Bad = append(c.Bad, id)
		a := best21[b]
		if a >= 0 && best12[a] != int32(b) && bestS21[b] >= o.RedundantScore {
			c.Redundant = append(c.Redundant, id)
		} else if a < 0 || bestS21[b] < o.RedundantScore {
			c.FalsePositive = append(c.FalsePositive, id)
		}
	}
}
