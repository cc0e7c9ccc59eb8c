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

// TestWireSourceTCPEmulator reads a sim.Emulator over a real TCP socket
// with a WireSource, with link damage and dropped frames: the start
// command is answered, every sample delivered is the one the device sent
// for that position, and delivered plus reported-lost samples cover the
// stream exactly.
func TestWireSourceTCPEmulator(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := &sim.TestPattern{Channels: 16, Rate: 30000, BlockSamples: 300}
	em := sim.NewEmulator(src, sim.EmulatorConfig{
		FrameSamples: 30, Unpaced: true, WaitForStart: true, Seed: 3,
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

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() { <-ctx.Done(); conn.Close() }()
	ws := device.NewWireSource(conn)
	var replies []device.Reply
	ws.OnReply = func(r device.Reply) { replies = append(replies, r) }
	if err := device.NewEncoder(conn).WriteCommand(device.Command{Seq: 42, Op: device.OpStart}); err != nil {
		t.Fatal(err)
	}

	var first, end, delivered, lost, crc uint64
	for n := 0; n < 2000; n++ {
		b, err := ws.Next(ctx)
		if err != nil {
			t.Fatalf("after %d blocks: %v\nhost %+v\nemulator %+v", n, err, ws.Stats(), em.Stats())
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
	if len(replies) == 0 || replies[0].Seq != 42 || replies[0].Op != device.OpStart || replies[0].Status != device.StatusOK {
		t.Fatalf("replies %+v, want the start command's", replies)
	}
	t.Logf("%d samples delivered, %d lost, %d CRC failures; stats %+v", delivered, lost, crc, ws.Stats())
}
