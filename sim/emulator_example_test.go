package sim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// An emulator writes a capture of a test pattern with a fifth of its
// frames lost; a Decoder reading it reports each gap exactly.
func ExampleEmulator_WriteStream() {
	pat := &sim.TestPattern{Channels: 2, Rate: 1000, Samples: 1000}
	em := sim.NewEmulator(pat, sim.EmulatorConfig{
		FrameSamples: 100, Unpaced: true, Seed: 1,
		Faults: sim.Faults{DropRate: 0.2},
	})
	var capture bytes.Buffer
	if err := em.WriteStream(context.Background(), &capture, 0); err != nil {
		fmt.Println(err)
		return
	}
	dec := device.NewDecoder(&capture)
	for {
		f, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		for _, e := range dec.TakeEvents(nil) {
			fmt.Println(" ", e.Kind, e.Count, "samples before", e.Sample)
		}
		fmt.Println("frame at", f.Counter)
	}
	st := em.Stats()
	fmt.Println(st.FramesSent, "frames sent,", st.FramesDropped, "dropped")
	// Output:
	// frame at 100
	//   gap 100 samples before 300
	// frame at 300
	// frame at 400
	// frame at 500
	// frame at 600
	// frame at 700
	// frame at 800
	// frame at 900
	// 8 frames sent, 2 dropped
}
