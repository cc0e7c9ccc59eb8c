package sim_test

import (
	"context"
	"fmt"

	"github.com/spikeline/spikeline/sim"
)

// A simulated 4-channel headstage: read 100 ms, then collect the ground
// truth of what was delivered.
func ExampleNew() {
	s, err := sim.New(sim.Config{Channels: 4, Seed: 1, MinUnits: 1, MaxUnits: 1})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for s.Emitted() < 3000 {
		b, err := s.Next(ctx)
		if err != nil {
			panic(err)
		}
		_ = b.Samples // time-major int16 counts of b.Gain µV
	}
	spikes := s.TakeSpikes(nil)
	units := s.Units()
	fmt.Println(len(units), "units on", len(s.NoiseUV()), "channels")
	fmt.Println(len(spikes) > 0, spikes[0].Sample < 3000)
	// Output:
	// 4 units on 4 channels
	// true true
}
