package score_test

import (
	"fmt"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/score"
)

func ExampleCompare() {
	// Ground truth: unit 1 fires every 100 ms for 1 s at 30 kHz.
	var gt, sorted []sort.Spike
	for i := range 10 {
		t := uint64(3000 * (i + 1))
		gt = append(gt, sort.Spike{Sample: t, Channel: 0, Unit: 1})
		// The sorter finds 8 of the 10 spikes, 2 samples late, as unit 7,
		// and adds one false spike.
		if i < 8 {
			sorted = append(sorted, sort.Spike{Sample: t + 2, Channel: 0, Unit: 7})
		}
	}
	sorted = append(sorted, sort.Spike{Sample: 31000, Channel: 0, Unit: 7})

	c, err := score.Compare(gt, sorted, 30000, score.Options{})
	if err != nil {
		panic(err)
	}
	u, _ := c.Unit(1)
	fmt.Printf("GT unit %d ↔ sorted unit %d: tp=%d fn=%d fp=%d\n", u.GT, u.Sorted, u.TP, u.FN, u.FP)
	fmt.Printf("accuracy %.3f recall %.2f precision %.3f lag %.0f samples\n", u.Accuracy, u.Recall, u.Precision, u.Lag)
	s := c.Summary(map[int32]float64{1: 9.5})
	fmt.Printf("SNR>=5: mean accuracy %.3f, well detected %d/%d\n", s.MeanAccuracy, s.WellDetected, s.Units)
	// Output:
	// GT unit 1 ↔ sorted unit 7: tp=8 fn=2 fp=1
	// accuracy 0.727 recall 0.80 precision 0.889 lag 2 samples
	// SNR>=5: mean accuracy 0.727, well detected 0/1
}

func ExampleAssign() {
	// Rows are ground-truth units, columns sorted units, entries minus the
	// agreement: the best total pairs row 0 with column 1 although its own
	// best is column 0.
	cost := [][]float64{
		{-0.9, -0.8},
		{-0.7, 0},
	}
	fmt.Println(score.Assign(cost))
	// Output:
	// [1 0]
}
