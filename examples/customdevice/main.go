// Command customdevice embeds the spikeline pipeline in a Go program with
// a device of its own: a generator of noise and spikes on 16 channels
// written as a device.Source, sorted, decoded and published on an
// embedded NATS server for a few seconds.
//
//	go run ./examples/customdevice
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/stream"
)

// noisyProbe is the user's device: Gaussian noise on every channel and,
// now and then, a spike 60 µV deep on one channel, at 30 kHz in 1 ms
// blocks, as fast as the pipeline takes them.
type noisyProbe struct {
	channels int
	next     uint64
	rng      *rand.Rand
	buf      []int16
}

func (p *noisyProbe) String() string { return "noisy probe" }

func (p *noisyProbe) Next(ctx context.Context) (device.Block, error) {
	if err := ctx.Err(); err != nil {
		return device.Block{}, err
	}
	const n, gain = 30, 0.195 // samples per block, µV per count
	p.buf = p.buf[:0]
	for range n * p.channels {
		p.buf = append(p.buf, int16(p.rng.NormFloat64()*10/gain))
	}
	if p.rng.IntN(20) == 0 { // a spike in one block of 20: ~50 Hz in all
		c := p.rng.IntN(p.channels)
		for i, v := range []float64{-20, -60, -35, 10, 15, 5} {
			p.buf[(10+i)*p.channels+c] += int16(v / gain)
		}
	}
	b := device.Block{First: p.next, Rate: 30000, Channels: p.channels, Gain: gain, Samples: p.buf, Received: time.Now()}
	p.next += n
	return b, nil
}

// run runs the pipeline on the probe for d of device time.
func run(ctx context.Context, d time.Duration) error {
	var second uint64
	r, err := rig.New(rig.Config{
		Source:   &noisyProbe{channels: 16, rng: rand.New(rand.NewPCG(1, 2))},
		NATS:     stream.Config{Rig: "custom", Port: -1}, // embedded server, any free port
		Duration: d,
		Stdout:   os.Stdout,
		OnBatch: func(end uint64, received time.Time) {
			if end/30000 != second { // once a second of device time
				second = end / 30000
				fmt.Printf("customdevice: spikes up to sample %d handed to NATS %v after their block\n", end, time.Since(received))
			}
		},
	})
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

func main() {
	if err := run(context.Background(), 5*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "customdevice:", err)
		os.Exit(1)
	}
}
