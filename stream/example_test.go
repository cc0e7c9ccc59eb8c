package stream_test

import (
	"context"
	"fmt"
	"time"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// A pipeline publishes one block's spikes; a display on the same NATS
// receives them decoded.
func Example() {
	ctx := context.Background()
	// No URL: an embedded nats-server on loopback (Port -1: any free port).
	pub, err := stream.NewPublisher(ctx, stream.Config{Rig: "rig7", Port: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)

	display, err := stream.Dial(ctx, stream.Config{URLs: []string{pub.ServerURL()}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer display.Close()
	got := make(chan *schema.SpikeBatch, 1)
	sub, err := display.Subscribe("rig7", stream.Handler{
		Spikes: func(rig string, b *schema.SpikeBatch) { got <- b },
	}, stream.SubscribeOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Stop()

	pub.PublishSpikes(30000, 30600, 30000, []sort.Spike{{Sample: 30012, Channel: 3, Unit: 7, Amplitude: -84.5}})

	select {
	case b := <-got:
		fmt.Printf("%s: [%d, %d) at %g Hz\n", pub.Subjects().Spikes(), b.First(), b.End, b.Rate)
		for _, s := range b.Spikes {
			fmt.Printf("t=%.4fs ch%d unit %d %.1f µV\n", float64(s.Sample)/b.Rate, s.Channel, s.Unit, s.Amplitude)
		}
	case <-time.After(5 * time.Second):
		fmt.Println("timeout")
	}
	// Output:
	// spikeline.rig7.spikes: [30000, 30600) at 30000 Hz
	// t=1.0004s ch3 unit 7 -84.5 µV
}
