package score

import (
	"bytes"
	"cmp"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

const rate = 30000 // delta 0.4 ms = 12 samples

// train returns spikes of unit u on channel ch at the given samples.
func train(u, ch int32, samples ...uint64) []sort.Spike {
	out := make([]sort.Spike, len(samples))
	for i, s := range samples {
		out[i] = sort.Spike{Sample: s, Channel: ch, Unit: u, Amplitude: -100}
	}
	return out
}

// regular returns n samples spaced by step starting at first.
func regular(first, step uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)*step
	}
	return out
}

func shift(s []uint64, d int64) []uint64 {
	out := make([]uint64, len(s))
	for i, v := range s {
		out[i] = uint64(int64(v) + d)
	}
	return out
}

func mustCompare(t *testing.T, gt, sorted []sort.Spike) *Comparison {
	t.Helper()
	c, err := Compare(gt, sorted, rate, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestComparePerfect(t *testing.T) {
	times := regular(1000, 3000, 100)
	gt := train(1, 0, times...)
	sorted := train(42, 0, shift(times, 5)...)
	c := mustCompare(t, gt, sorted)
	if c.DeltaFrames != 12 {
		t.Fatalf("DeltaFrames = %d, want 12", c.DeltaFrames)
	}
	u, _ := c.Unit(1)
	if !u.Paired || u.Sorted != 42 || u.TP != 100 || u.FN != 0 || u.FP != 0 || !near(u.Accuracy, 1) || !u.WellDetected {
		t.Fatalf("unit = %+v", u)
	}
	if !near(u.Lag, 5) {
		t.Errorf("Lag = %g, want 5", u.Lag)
	}
	if !slices.Equal(c.WellDetected, []int32{42}) || len(c.Bad) != 0 {
		t.Errorf("categories: well %v bad %v", c.WellDetected, c.Bad)
	}
}

func TestCompareTolerance(t *testing.T) {
	// Offsets of exactly ±12 samples match, ±13 do not.
	gt := train(1, 0, 10000, 20000, 30000, 40000)
	sorted := train(2, 0, 10012, 19988, 30013, 39987)
	c := mustCompare(t, gt, sorted)
	if m := c.Matches(1, 2); m != 2 {
		t.Fatalf("Matches = %d, want 2", m)
	}
	if a := c.Agreement(1, 2); !near(a, 2.0/6) {
		t.Fatalf("Agreement = %g, want 1/3", a)
	}
	// Agreement 1/3 < MatchScore: not paired, and the sorted unit is a
	// redundant-or-false-positive unit: its best GT match prefers it, so
	// neither; it is bad.
	u, _ := c.Unit(1)
	if u.Paired || u.FN != 4 || u.Accuracy != 0 || u.MissRate != 1 {
		t.Fatalf("unit = %+v", u)
	}
	if !slices.Equal(c.Bad, []int32{2}) {
		t.Errorf("Bad = %v", c.Bad)
	}
}

func TestCompareOneToOne(t *testing.T) {
	// A burst of two GT spikes 5 samples apart and one sorted spike
	// between them: one match, not two. Two sorted spikes near one GT
	// spike: one match.
	gt := train(1, 0, 1000, 1005, 5000)
	sorted := train(2, 0, 1003, 4998, 5002)
	c := mustCompare(t, gt, sorted)
	u, _ := c.Unit(1)
	if c.Matches(1, 2) != 2 || u.TP != 2 || u.FN != 1 || u.FP != 1 {
		t.Fatalf("matches %d, unit %+v", c.Matches(1, 2), u)
	}
	if !near(u.Accuracy, 0.5) || !near(u.Precision, 2.0/3) || !near(u.Recall, 2.0/3) || !near(u.FalseDiscovery, 1.0/3) {
		t.Errorf("rates = %+v", u)
	}
}

func TestCompareGreedyIsMaximum(t *testing.T) {
	// GT at 100 and 112; sorted at 90 and 101. Matching 100↔101 first
	// (closest) would leave 112 and 90 unmatched; the maximum is 2
	// (100↔90, 112↔101).
	gt := train(1, 0, 100, 112)
	sorted := train(2, 0, 90, 101)
	c := mustCompare(t, gt, sorted)
	if m := c.Matches(1, 2); m != 2 {
		t.Fatalf("Matches = %d, want 2", m)
	}
}

func TestCompareRecallPrecision(t *testing.T) {
	times := regular(1000, 3000, 100)
	gt := train(1, 3, times...)
	// Sorter finds 80 of 100 spikes and adds 10 false ones.
	found := append(slices.Clone(times[:80]), regular(500, 29000, 10)...)
	sorted := train(9, 3, found...)
	c := mustCompare(t, gt, sorted)
	u, _ := c.Unit(1)
	if u.TP != 80 || u.FN != 20 || u.FP != 10 {
		t.Fatalf("unit = %+v", u)
	}
	if !near(u.Accuracy, 80.0/110) || !near(u.Recall, 0.8) || !near(u.Precision, 80.0/90) || u.WellDetected {
		t.Fatalf("rates = %+v", u)
	}
	if u.Channel != 3 || u.SortedChannel != 3 {
		t.Errorf("channels %d %d, want 3 3", u.Channel, u.SortedChannel)
	}
}

func TestCompareCategories(t *testing.T) {
	a := regular(1000, 3000, 100)  // GT unit 1
	b := regular(2000, 3000, 100)  // GT unit 2
	c3 := regular(1500, 3000, 100) // GT unit 3, oversplit 70/30
	d := regular(2500, 3000, 100)  // GT unit 4, missed entirely
	var gt []sort.Spike
	gt = append(gt, train(1, 0, a...)...)
	gt = append(gt, train(2, 1, b...)...)
	gt = append(gt, train(3, 2, c3...)...)
	gt = append(gt, train(4, 3, d...)...)
	// Unsorted spikes (unit 0) on both sides are ignored.
	gt = append(gt, train(0, 0, 7, 8, 9)...)

	var sorted []sort.Spike
	sorted = append(sorted, train(10, 0, append(slices.Clone(a), b...)...)...) // merges 1 and 2
	sorted = append(sorted, train(11, 0, a...)...)                             // exactly 1
	sorted = append(sorted, train(12, 2, c3[:70]...)...)                       // 70% of 3
	sorted = append(sorted, train(13, 2, c3[70:]...)...)                       // 30% of 3
	sorted = append(sorted, train(14, 5, regular(1250, 3000, 50)...)...)       // noise unit
	sorted = append(sorted, train(0, 0, a...)...)
	// Shuffle: Compare must not need time order.
	r := rand.New(rand.NewPCG(5, 6))
	r.Shuffle(len(sorted), func(i, j int) { sorted[i], sorted[j] = sorted[j], sorted[i] })

	cmp := mustCompare(t, gt, sorted)
	if !slices.Equal(cmp.GTUnits, []int32{1, 2, 3, 4}) || !slices.Equal(cmp.SortedUnits, []int32{10, 11, 12, 13, 14}) {
		t.Fatalf("units %v %v", cmp.GTUnits, cmp.SortedUnits)
	}
	want := map[int32]struct {
		sorted int32
		acc    float64
	}{
		1: {11, 1},   // the exact copy wins over the merge (Hungarian)
		2: {10, 0.5}, // the merge is all that is left for 2
		3: {12, 0.7},
		4: {0, 0},
	}
	for _, u := range cmp.Units {
		w := want[u.GT]
		if u.Sorted != w.sorted || !near(u.Accuracy, w.acc) {
			t.Errorf("GT %d: paired %v with %d accuracy %g, want %d %g", u.GT, u.Paired, u.Sorted, u.Accuracy, w.sorted, w.acc)
		}
	}
	check := func(name string, got, want []int32) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, u := range cmp.Units {
		if u.Misclassified+u.Unsorted+u.Missed != u.FN {
			t.Errorf("GT %d: misclassified %d + unsorted %d + missed %d != fn %d", u.GT, u.Misclassified, u.Unsorted, u.Missed, u.FN)
		}
	}
	if u, _ := cmp.Unit(3); u.Misclassified != 30 || u.Missed != 0 {
		t.Errorf("GT 3 (30%% in unit 13): %+v", u)
	}
	if u, _ := cmp.Unit(4); u.Missed != 100 {
		t.Errorf("GT 4 (missed): %+v", u)
	}
	check("WellDetected", cmp.WellDetected, []int32{11})
	check("Overmerged", cmp.Overmerged, []int32{10})
	check("Redundant", cmp.Redundant, []int32{13})
	check("FalsePositive", cmp.FalsePositive, []int32{14})
	check("Bad", cmp.Bad, []int32{13, 14})

	snr := map[int32]float64{1: 12, 2: 6, 3: 4, 4: 2.5}
	s := cmp.Summary(snr)
	if s.Units != 2 || s.WellDetected != 1 || !near(s.MeanAccuracy, 0.75) {
		t.Errorf("SNR>=5 summary = %+v", s)
	}
	if s.AllUnits != 4 || !near(s.AllMeanAccuracy, (1+0.5+0.7)/4) {
		t.Errorf("all summary = %+v", s)
	}
	wantBands := []int{1, 1, 1, 0, 1} // <3, 3-5, 5-8, 8-12, >=12
	for i, b := range s.Bands {
		if b.Units != wantBands[i] {
			t.Errorf("band %s has %d units, want %d", bandName(b), b.Units, wantBands[i])
		}
	}

	var buf bytes.Buffer
	if err := cmp.WriteReport(&buf, snr); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, line := range []string{"mean_accuracy_snr5=0.750\n", "well_detected_snr5=1/2\n", "well_detected_all=1/4\n",
		"num_gt=4 num_sorted=5 num_well_detected=1 num_redundant=1 num_overmerged=1 num_false_positive=1 num_bad=2\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("report lacks %q:\n%s", line, out)
		}
	}
}

func TestCompareEmptyAndErrors(t *testing.T) {
	if _, err := Compare(nil, nil, 0, Options{}); err == nil {
		t.Error("rate 0 accepted")
	}
	if _, err := Compare(nil, nil, math.NaN(), Options{}); err == nil {
		t.Error("rate NaN accepted")
	}
	c := mustCompare(t, nil, nil)
	if len(c.Units) != 0 {
		t.Fatal("units from nothing")
	}
	c = mustCompare(t, train(1, 0, 5, 6), nil)
	if u := c.Units[0]; u.Paired || u.FN != 2 {
		t.Fatalf("unit = %+v", u)
	}
	var buf bytes.Buffer
	if err := c.WriteReport(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "well_detected_snr5=0/0") {
		t.Errorf("report:\n%s", buf.String())
	}
}

// bruteMatches is the maximum one-to-one matching of two trains within
// ±delta by exhaustive augmenting paths (Kuhn's algorithm).
func bruteMatches(a, b []uint64, delta uint64) int {
	matchB := make([]int, len(b))
	for i := range matchB {
		matchB[i] = -1
	}
	var try func(i int, seen []bool) bool
	try = func(i int, seen []bool) bool {
		for j := range b {
			d := a[i] - b[j]
			if b[j] > a[i] {
				d = b[j] - a[i]
			}
			if d > delta || seen[j] {
				continue
			}
			seen[j] = true
			if matchB[j] < 0 || try(matchB[j], seen) {
				matchB[j] = i
				return true
			}
		}
		return false
	}
	n := 0
	for i := range a {
		if try(i, make([]bool, len(b))) {
			n++
		}
	}
	return n
}

func TestCompareMatchesAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := range 200 {
		var gt, sorted []sort.Spike
		trains := map[int32][]uint64{}
		for range 20 + r.IntN(40) {
			u := int32(1 + r.IntN(3))
			s := uint64(r.IntN(400))
			gt = append(gt, sort.Spike{Sample: s, Unit: u})
			trains[u] = append(trains[u], s)
		}
		strains := map[int32][]uint64{}
		for range 20 + r.IntN(40) {
			u := int32(10 + r.IntN(3))
			s := uint64(r.IntN(400))
			sorted = append(sorted, sort.Spike{Sample: s, Unit: u})
			strains[u] = append(strains[u], s)
		}
		c := mustCompare(t, gt, sorted)
		for u1, a := range trains {
			for u2, b := range strains {
				if got, want := c.Matches(u1, u2), bruteMatches(a, b, 12); got != want {
					t.Fatalf("trial %d pair (%d,%d): Matches %d, brute force %d", trial, u1, u2, got, want)
				}
			}
		}
	}
}

func BenchmarkCompare1M(b *testing.B) {
	// 300 GT units over 100 channels at ~10 Hz for ~333 s (1M spikes);
	// the sorting finds 90% of each with 2-sample jitter and 5% extra.
	r := rand.New(rand.NewPCG(9, 10))
	var gt, sorted []sort.Spike
	const n = 1_000_000
	for range n {
		u := int32(1 + r.IntN(300))
		s := uint64(r.Int64N(int64(333 * rate)))
		sp := sort.Spike{Sample: s, Unit: u, Channel: u % 100}
		gt = append(gt, sp)
		if r.Float64() < 0.9 {
			sp.Sample += uint64(r.IntN(3))
			sp.Unit += 1000
			sorted = append(sorted, sp)
		}
		if r.Float64() < 0.05 {
			sorted = append(sorted, sort.Spike{Sample: uint64(r.Int64N(int64(333 * rate))), Unit: u + 1000})
		}
	}
	run := func(b *testing.B) {
		for b.Loop() {
			if _, err := Compare(gt, sorted, rate, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("shuffled", run)
	bySample := func(a, b sort.Spike) int { return cmp.Compare(a.Sample, b.Sample) }
	slices.SortFunc(gt, bySample)
	slices.SortFunc(sorted, bySample)
	b.Run("time-ordered", run) // as sorters and the simulator emit them
}

func TestWriteJSON(t *testing.T) {
	times := regular(1000, 3000, 10)
	c := mustCompare(t, append(train(1, 0, times...), train(2, 1, 5)...), train(7, 0, times...))
	var buf bytes.Buffer
	if err := c.WriteJSON(&buf, map[int32]float64{1: 6, 2: math.Inf(1)}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Units []struct {
			GT     int32    `json:"gt_unit"`
			Sorted *int32   `json:"sorted_unit"`
			SNR    *float64 `json:"snr"`
			Acc    float64  `json:"accuracy"`
		} `json:"units"`
		Summary struct {
			Units, WellDetected int
		} `json:"summary"`
		Bands []struct {
			Lo *float64 `json:"snr_from"`
		} `json:"bands"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if len(got.Units) != 2 || *got.Units[0].Sorted != 7 || got.Units[0].Acc != 1 || got.Units[1].Sorted != nil || got.Units[1].SNR != nil {
		t.Errorf("units: %s", buf.String())
	}
	if len(got.Bands) != 5 || got.Bands[0].Lo != nil || *got.Bands[1].Lo != 3 {
		t.Errorf("bands: %s", buf.String())
	}
}

func TestCompareMissBreakdown(t *testing.T) {
	times := regular(1000, 3000, 100)
	gt := train(1, 0, times...)
	sorted := train(5, 0, shift(times[:60], 3)...)                      // 60 found
	sorted = append(sorted, train(0, 0, shift(times[60:80], -4)...)...) // 20 detected, unsorted
	sorted = append(sorted, train(6, 0, shift(times[80:90], 12)...)...) // 10 in another unit
	sorted = append(sorted, train(6, 0, shift(times[90:], 13)...)...)   // 10 just outside the tolerance
	c := mustCompare(t, gt, sorted)
	u, _ := c.Unit(1)
	if u.TP != 60 || u.FN != 40 || u.Unsorted != 20 || u.Misclassified != 10 || u.Missed != 10 {
		t.Fatalf("unit = %+v", u)
	}
}

// TestCompareRadius: with channel positions, a detection counts on any
// channel within the radius of the true main channel and not across the
// probe; the misses' breakdown follows the same rule.
func TestCompareRadius(t *testing.T) {
	pos := [][2]float64{{0, 0}, {0, 25}, {0, 400}}
	times := regular(1000, 3000, 100)
	gt := train(1, 0, times...)
	// Unit 7 on the neighbour finds every spike; unit 9, 400 µm away,
	// fires at the same times (another neuron in step by chance).
	sorted := slices.Concat(train(7, 1, shift(times[:80], 3)...), train(9, 2, shift(times, 2)...), train(0, 2, times[80:90]...))
	slices.SortFunc(sorted, func(a, b sort.Spike) int { return cmp.Compare(a.Sample, b.Sample) })
	c, err := Compare(gt, sorted, rate, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if u := c.Units[0]; u.Sorted != 9 {
		t.Fatalf("time alone: paired with %d, want the far unit 9 (it matches all 100)", u.Sorted)
	}
	c, err = Compare(gt, sorted, rate, Options{Positions: pos})
	if err != nil {
		t.Fatal(err)
	}
	u := c.Units[0]
	if c.Options.RadiusUM != 50 || u.Sorted != 7 || u.TP != 80 || u.FN != 20 || u.Misclassified != 0 || u.Unsorted != 0 || u.Missed != 20 {
		t.Fatalf("radius %g: paired with %d, tp %d fn %d (cl %d uns %d mis %d); want unit 7, 80 tp, 20 missed (the far unit and the far unsorted spikes are not near)",
			c.Options.RadiusUM, u.Sorted, u.TP, u.FN, u.Misclassified, u.Unsorted, u.Missed)
	}
	if !slices.Equal(c.FalsePositive, []int32{9}) {
		t.Fatalf("false positive units %v, want [9]", c.FalsePositive)
	}
	c, err = Compare(gt, sorted, rate, Options{Positions: pos, RadiusUM: 500})
	if err != nil || c.Units[0].Sorted != 9 {
		t.Fatalf("radius 500: %v %v", c.Units[0].Sorted, err)
	}
	if _, err := Compare(gt, train(3, 5, 10), rate, Options{Positions: pos}); err == nil || !strings.Contains(err.Error(), "channel 5, the probe has 3") {
		t.Fatalf("channel outside the probe: %v", err)
	}
}
