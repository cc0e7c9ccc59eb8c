//go:build linux

package device_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// Open a headstage on a serial port — here the emulator on a
// pseudo-terminal — read a Block and send it a command.
func ExampleOpenSerial() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	link := filepath.Join(dir, "headstage")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	em := sim.NewEmulator(&sim.TestPattern{Channels: 4, Rate: 30000}, sim.EmulatorConfig{FrameSamples: 30})
	ready := make(chan string, 1)
	go em.ServePTY(ctx, link, func(tty string) {
		select {
		case ready <- tty: // the link now points to a pseudo-terminal
		default:
		}
	})
	<-ready

	src, err := device.OpenSerial(ctx, device.SerialConfig{Path: link, Reconnect: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	b, err := src.Next(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d channels at %g Hz, %d samples from sample %d\n", b.Channels, b.Rate, b.Len(), b.First)
	r, err := src.Command(ctx, device.Command{Op: device.OpSetChannels, Channels: []uint16{0, 2}})
	fmt.Println(r.Status, r.Channels, "channels enabled", err)
	// Output:
	// 4 channels at 30000 Hz, 30 samples from sample 0
	// ok 2 channels enabled <nil>
}
