package device_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// TestWireConnEmulator reads a sim.Emulator over a real TCP socket with
// link damage and dropped frames: every sample delivered must be the one
// the device sent for that position, and delivered plus reported-lost
// samples must cover the stream exactly.
func TestWireConnEmulator(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := &sim.TestPattern{Channels: 16, Rate: 30000, BlockSamples: 300}
	em := sim.NewEmulator(src, sim.EmulatorConfig{
		FrameSamples: 30, Speed: 10, WaitForStart: true, Seed: 3,
		Faults: sim.Faults{CorruptRate: 2e-5, DropRate: 0.01},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- em.ServeTCP(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ServeTCP: %v", err)
		}
	}()

	c, err := device.DialTCP(ctx, ln.Addr().String(), device.ConnConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if _, err := c.Command(ctx, device.Command{Op: device.OpStart}); err != nil {
		t.Fatalf("start: %v", err)
	}
	var first, end, delivered, lost uint64
	var crc uint64
	for n := 0; n < 2000; n++ {
		b, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("after %d blocks: %v", n, err)
		}
		for _, e := range b.Events {
			switch e.Kind {
			case device.EventGap:
				lost += e.Count
			case device.EventCRC:
				crc += e.Count
			case device.EventReset, device.EventFormat, device.EventBadFrame:
				t.Fatalf("unexpected event %v", e)
			}
		}
		if n == 0 {
			first = b.First
		}
		for i := range b.Len() {
			for ch := range b.Channels {
				if got, want := b.At(i, ch), sim.PatternValue(b.First+uint64(i), ch); got != want {
					t.Fatalf("sample %d channel %d = %d, want %d", b.First+uint64(i), ch, got, want)
				}
			}
		}
		delivered += uint64(b.Len())
		end = b.End()
	}
	if delivered+lost != end-first {
		t.Fatalf("delivered %d + lost %d samples != span %d", delivered, lost, end-first)
	}
	if lost == 0 {
		t.Fatal("no frames were lost: the faults did not happen")
	}
	st := c.Stats()
	t.Logf("%d samples delivered, %d lost, %d CRC failures; stats %+v", delivered, lost, crc, st)
}
