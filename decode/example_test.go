package decode_test

import (
	"fmt"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/sort"
)

// A hand-written model: vx = 2·z(unit 7) - 1·z(unit 9), where z is the
// count per 20 ms bin minus 1, decoded online from spikes as they arrive.
func ExampleOnline() {
	m := &decode.Model{
		Format: decode.Format, Version: decode.Version,
		Kind: decode.Wiener, Grouping: decode.ByUnit,
		Keys: []int32{7, 9}, Rate: 30000, BinSamples: 600, Lags: 1,
		Outputs: []string{"vx"},
		Mean:    []float64{1, 1}, Std: []float64{1, 1},
		Wiener: &decode.WienerParams{
			Weights:   [][][]float64{{{2}, {-1}}},
			Intercept: []float64{0},
		},
	}
	o, err := decode.NewOnline(m, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	o.Add([]sort.Spike{{Sample: 10, Unit: 7}, {Sample: 20, Unit: 7}, {Sample: 700, Unit: 9}, {Sample: 800, Unit: 9}, {Sample: 900, Unit: 9}})
	o.MarkGap(decode.Gap{Start: 1300, End: 1400}) // samples lost in the third bin
	for _, e := range o.Advance(1800, nil) {
		fmt.Printf("bin ending at %d: %s=%.0f degraded=%v\n", e.End, e.Names[0], e.Values[0], e.Degraded)
	}
	// Output:
	// bin ending at 600: vx=3 degraded=false
	// bin ending at 1200: vx=-4 degraded=false
	// bin ending at 1800: vx=0 degraded=true
}
