package dsp_test

import (
	"fmt"

	"github.com/spikeline/spikeline/dsp"
)

// The default band-pass: three biquads, as scipy.signal.butter(3,
// [300, 6000], btype="band", output="sos", fs=30000) gives them.
func ExampleButterworth() {
	secs, err := dsp.Butterworth(3, 300, 6000, 30000)
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
