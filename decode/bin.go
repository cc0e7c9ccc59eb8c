package decode

import (
	"fmt"
	"slices"

	"github.com/spikeline/spikeline/sort"
)

// DefaultBinSeconds is the default bin width (20 ms).
const DefaultBinSeconds = 0.020

// DefaultRate is the sample rate assumed when none is given (30 kHz).
const DefaultRate = 30000.0

// Grouping says what one column of binned counts stands for.
type Grouping string

const (
	// ByUnit counts each sorted unit separately; unsorted spikes (Unit 0)
	// are left out.
	ByUnit Grouping = "unit"
	// ByChannel counts every detection on a channel as one unit: the
	// threshold-crossing decoder used as a baseline for sorted decoding.
	ByChannel Grouping = "channel"
	// ByUnitAndUnsorted counts each sorted unit, plus the unsorted spikes
	// (Unit 0) of each channel as one more column (the "hash" unit of BCI
	// practice), with key -(channel+1). It keeps the information of units
	// the sorter detects but has not (yet) assigned.
	ByUnitAndUnsorted Grouping = "unit+unsorted"

	// The groupings of a headstage's features (features.go): every
	// feature (crossings at each level and power), crossings only,
	// power only, or sorted units and every feature.
	ByFeatures        Grouping = "features"
	ByCrossings       Grouping = "crossings"
	ByPower           Grouping = "power"
	ByUnitAndFeatures Grouping = "unit+features"
)

// Key returns the column key of s under g and whether s counts at all.
func (g Grouping) Key(s sort.Spike) (int32, bool) {
	if k, ok, handled := g.featureKey(s); handled {
		return k, ok
	}
	switch g {
	case ByChannel:
		return s.Channel, s.Channel >= 0
	case ByUnitAndUnsorted:
		if s.Unit == 0 {
			return -(s.Channel + 1), s.Channel >= 0
		}
	}
	return s.Unit, s.Unit > 0
}

// Columns names what the columns of g are, in the plural ("units").
func (g Grouping) Columns() string {
	switch g {
	case ByChannel:
		return "channels"
	case ByUnitAndUnsorted:
		return "units and unsorted channels"
	case ByFeatures, ByCrossings, ByPower:
		return string(g) + " features"
	case ByUnitAndFeatures:
		return "units and features"
	}
	return "units"
}

func (g Grouping) valid() error {
	switch g {
	case ByUnit, ByChannel, ByUnitAndUnsorted, ByFeatures, ByCrossings, ByPower, ByUnitAndFeatures:
	default:
		return fmt.Errorf("decode: grouping %q, want %q, %q, %q, %q, %q, %q or %q", string(g),
			ByUnit, ByChannel, ByUnitAndUnsorted, ByFeatures, ByCrossings, ByPower, ByUnitAndFeatures)
	}
	return nil
}

// BinSamples returns the bin width in samples for a width in seconds at
// rate (rounded, at least 1).
func BinSamples(seconds, rate float64) uint64 {
	n := uint64(seconds*rate + 0.5)
	if n < 1 {
		n = 1
	}
	return n
}

// Gap is a run of samples [Start, End) (device sample indices) for which
// the data were lost. Any bin overlapping a Gap is not observed.
type Gap struct {
	Start, End uint64
}

// Binned holds spike counts in bins aligned to the device sample clock: bin
// k covers samples [k*Width, (k+1)*Width). Counts are time-major: the
// count of column j in the i-th bin (bin index First+i) is
// Counts[i*len(Keys)+j].
type Binned struct {
	Rate     float64  // device sample rate, Hz
	Width    uint64   // bin width in samples
	First    uint64   // bin index of the first row (row i is bin First+i)
	Grouping Grouping // what a column is
	Keys     []int32  // unit ids (or channels) of the columns, ascending
	Counts   []float64
	// Observed[i] is false when row i overlaps a gap in the data or lies
	// outside the recording; such bins are excluded from fitting and
	// scoring.
	Observed []bool
}

// Len returns the number of bins.
func (b *Binned) Len() int { return len(b.Observed) }

// Row returns the counts of the i-th bin.
func (b *Binned) Row(i int) []float64 {
	n := len(b.Keys)
	return b.Counts[i*n : (i+1)*n : (i+1)*n]
}

// Start returns the device sample index where row i begins.
func (b *Binned) Start(i int) uint64 { return (b.First + uint64(i)) * b.Width }

// End returns the device sample index one past row i.
func (b *Binned) End(i int) uint64 { return (b.First + uint64(i) + 1) * b.Width }

// Limits on binned data held in memory (2 GiB of counts).
const (
	maxBins   = 1 << 28
	maxCounts = 1 << 28
)

// SpikeKeys returns the sorted distinct column keys of spikes under g.
func SpikeKeys(spikes []sort.Spike, g Grouping) []int32 {
	seen := map[int32]struct{}{}
	for _, s := range spikes {
		if k, ok := g.Key(s); ok {
			seen[k] = struct{}{}
		}
	}
	keys := make([]int32, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// BinSpikes counts spikes into bins of width samples covering samples
// [start, end): the rows are bins start/width through (end-1)/width. Only
// the columns in keys are counted (others ignored); keys nil means every
// key present in spikes. Bins overlapping a gap, or not wholly inside
// [start, end), are marked not observed.
func BinSpikes(spikes []sort.Spike, g Grouping, keys []int32, rate float64, width, start, end uint64, gaps []Gap) (*Binned, error) {
	if err := g.valid(); err != nil {
		return nil, err
	}
	if width == 0 {
		return nil, fmt.Errorf("decode: bin width 0 samples")
	}
	if end <= start {
		return nil, fmt.Errorf("decode: empty sample range [%d, %d)", start, end)
	}
	if keys == nil {
		keys = SpikeKeys(spikes, g)
	}
	col := make(map[int32]int, len(keys))
	for j, k := range keys {
		if _, dup := col[k]; dup {
			return nil, fmt.Errorf("decode: key %d listed twice", k)
		}
		col[k] = j
	}
	first := start / width
	last := (end - 1) / width
	if n := last - first + 1; n > maxBins || n*uint64(max(len(keys), 1)) > maxCounts {
		return nil, fmt.Errorf("decode: samples %d–%d make %d bins of %d columns: too large (a corrupt sample index?)", start, end, n, len(keys))
	}
	nb := int(last - first + 1)
	b := &Binned{
		Rate:     rate,
		Width:    width,
		First:    first,
		Grouping: g,
		Keys:     slices.Clone(keys),
		Counts:   make([]float64, nb*len(keys)),
		Observed: make([]bool, nb),
	}
	for i := range b.Observed {
		b.Observed[i] = b.Start(i) >= start && b.End(i) <= end
	}
	for _, gp := range gaps {
		markGap(b.Observed, first, width, gp)
	}
	n := len(keys)
	for _, s := range spikes {
		if s.Sample < start || s.Sample >= end {
			continue
		}
		k, ok := g.Key(s)
		if !ok {
			continue
		}
		j, ok := col[k]
		if !ok {
			continue
		}
		i := int(s.Sample/width - first)
		b.Counts[i*n+j] += g.weight(s)
	}
	return b, nil
}

// markGap clears observed for every bin overlapping gp.
func markGap(observed []bool, first, width uint64, gp Gap) {
	if gp.End <= gp.Start {
		return
	}
	lo := gp.Start / width
	hi := (gp.End - 1) / width
	for k := max(lo, first); k <= hi && k-first < uint64(len(observed)); k++ {
		observed[k-first] = false
	}
}
