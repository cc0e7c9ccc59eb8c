package sort_test

import (
	"fmt"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

// The default band-pass: three biquads, as scipy.signal.butter(3,
// [300, 6000], btype="band", output="sos", fs=30000) gives them.
func ExampleButterworth() {
	secs, err := sort.Butterworth(3, 300, 6000, 30000)
	if err != nil {
		panic(err)
	}
	for _, s := range secs {
		fmt.Printf("[%.6f %.6f %.6f 1 %.6f %.6f]\n", s.B0, s.B1, s.B2, s.A1, s.A2)
	}
	// Output:
	// [0.087266 0.174532 0.087266 1 -0.452860 0.387788]
	// [1.000000 0.000000 -1.000000 1 -1.137598 0.190760]
	// [1.000000 -2.000000 1.000000 1 -1.938007 0.941989]
}

// Sorting a stream: one Process call per block, Flush at the end.
func ExampleSorter() {
	const channels, rate = 4, 30000.0
	s, err := sort.New(sort.Config{}, channels, rate, 0.195)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	var spikes []sort.Spike
	samples := make([]int16, 30*channels) // 1 ms blocks of silence
	for i := range 100 {
		b := device.Block{First: uint64(30 * i), Rate: rate, Channels: channels, Gain: 0.195, Samples: samples}
		if spikes, err = s.Process(b, spikes[:0]); err != nil {
			panic(err)
		}
	}
	spikes = s.Flush(spikes)
	fmt.Println(len(spikes), "spikes; lag", s.Lag(), "samples")
	// Output: 0 spikes; lag 87 samples
}
