package device_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spikeline/spikeline/device"
)

// A device writes data frames; the host decodes them and notices the
// frame that went missing in between.
func ExampleDecoder() {
	var link bytes.Buffer
	enc := device.NewEncoder(&link)
	samples := []int16{10, -10, 20, -20, 30, -30} // 2 channels x 3 samples, time-major
	enc.WriteData(0, 30000, 0.195, 2, samples, 0)
	enc.WriteData(6, 30000, 0.195, 2, samples, 0) // samples 3..5 were never sent

	dec := device.NewDecoder(&link)
	for {
		f, err := dec.Next()
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Printf("frame at sample %d: %d channels x %d samples at %d Hz\n", f.Counter, f.Channels, f.Len(), f.Rate)
		for _, e := range dec.TakeEvents(nil) {
			fmt.Println(" ", e)
		}
	}
	fmt.Printf("lost %d samples\n", dec.Stats().LostSamples)
	// Output:
	// frame at sample 0: 2 channels x 3 samples at 30000 Hz
	// frame at sample 6: 2 channels x 3 samples at 30000 Hz
	//   gap at sample 6 (count 3, byte 52)
	// EOF
	// lost 3 samples
}

// Commands and replies travel in the same framing as the data.
func ExampleEncoder_WriteCommand() {
	var link bytes.Buffer
	enc := device.NewEncoder(&link)
	enc.WriteCommand(device.Command{Seq: 1, Op: device.OpSetChannels, Channels: []uint16{0, 1, 2, 3}})
	enc.WriteReply(device.Reply{Seq: 1, Op: device.OpSetChannels, Status: device.StatusOK, Channels: 4})

	dec := device.NewDecoder(&link)
	c, _ := dec.Next()
	r, _ := dec.Next()
	fmt.Println(c.Type, c.Command.Op, c.Command.Channels)
	fmt.Println(r.Type, r.Reply.Op, r.Reply.Status, r.Reply.Channels)
	// Output:
	// command set_channels [0 1 2 3]
	// reply set_channels ok 4
}

// A WireSource turns a wire-protocol stream into Blocks.
func ExampleWireSource() {
	var link bytes.Buffer
	enc := device.NewEncoder(&link)
	enc.WriteData(100, 20000, 0.195, 4, make([]int16, 4*20), 0)
	src := device.NewWireSource(&link)
	b, err := src.Next(context.Background())
	fmt.Println(b.First, b.End(), b.Channels, b.Rate, err)
	// Output:
	// 100 120 4 20000 <nil>
}

// A raw recording with its recording.json sidecar, read back in Blocks.
func ExampleOpenRecording() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	// 2 channels x 5 samples, time-major int16 little-endian.
	raw := []byte{1, 0, 255, 255, 2, 0, 254, 255, 3, 0, 253, 255, 4, 0, 252, 255, 5, 0, 251, 255}
	os.WriteFile(filepath.Join(dir, "recording.dat"), raw, 0o644)
	device.WriteMeta(filepath.Join(dir, "recording.json"), device.Meta{Channels: 2, Rate: 30000, Gain: 0.195, Samples: 5})

	src, meta, err := device.OpenRecording(dir, device.RawConfig{BlockSamples: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	fmt.Println(meta.Channels, "channels at", meta.Rate, "Hz")
	for {
		b, err := src.Next(context.Background())
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(b.First, b.Samples)
	}
	// Output:
	// 2 channels at 30000 Hz
	// 0 [1 -1 2 -2]
	// 2 [3 -3 4 -4]
	// 4 [5 -5]
	// EOF
}
