package sort_test

import (
	"fmt"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

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
