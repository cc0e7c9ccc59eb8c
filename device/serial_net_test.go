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

// TestSerialTCP reads a network headstage (the emulator over TCP) with a
// SerialSource at "tcp://host:port": data, a ping, and an unplug during
// which the device refuses connections, reported as one disconnection,
// one reconnection and one exact gap.
func TestSerialTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pat := &sim.TestPattern{Channels: 3, Rate: 10000}
	em := sim.NewEmulator(pat, sim.EmulatorConfig{FrameSamples: 10, MaxLag: time.Minute,
		Faults: sim.Faults{UnplugAt: 150 * time.Millisecond, UnplugFor: 200 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- em.ServeTCP(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("ServeTCP: %v", err)
		}
	}()

	src, err := device.OpenSerial(context.Background(), device.SerialConfig{
		Path: "tcp://" + ln.Addr().String(), Reconnect: true, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if rtt, err := src.Ping(context.Background()); err != nil || rtt <= 0 {
		t.Fatalf("ping: %v, %v", rtt, err)
	}
	var (
		end, delivered, first uint64
		started               bool
		disc, reconn          int
		gaps                  []device.Event
		after                 int
	)
	for after < 50 {
		b, err := nextBlock(t, src, 10*time.Second)
		if err != nil {
			t.Fatalf("Next: %v (status %+v)", err, src.Status())
		}
		for _, e := range b.Events {
			switch e.Kind {
			case device.EventDisconnect:
				disc++
			case device.EventReconnect:
				reconn++
			case device.EventGap:
				if e.Count != b.First-end || e.Sample != b.First {
					t.Errorf("gap %v: blocks jump from %d to %d", e, end, b.First)
				}
				gaps = append(gaps, e)
			case device.EventResync:
			default:
				t.Errorf("unexpected %v", e)
			}
		}
		if b.Len() == 0 {
			continue
		}
		checkPattern(t, b, nil)
		if !started {
			first, started = b.First, true
		} else if b.First != end && len(gaps) == 0 {
			t.Fatalf("block at %d after %d without a gap", b.First, end)
		}
		delivered += uint64(b.Len())
		end = b.End()
		if reconn > 0 {
			after++
		}
	}
	if disc != 1 || reconn != 1 || len(gaps) != 1 {
		t.Fatalf("%d disconnects, %d reconnects, %d gaps; want 1 each", disc, reconn, len(gaps))
	}
	if delivered+gaps[0].Count != end-first {
		t.Errorf("%d delivered + %d lost != %d spanned", delivered, gaps[0].Count, end-first)
	}
	if min := uint64(0.15 * 10000); gaps[0].Count < min {
		t.Errorf("gap of %d samples for a 200 ms unplug at 10 kHz", gaps[0].Count)
	}
	if st := src.Status(); st.Disconnects != 1 || st.Reconnects != 1 || st.ModemErrors != 0 {
		t.Errorf("status %+v", st)
	}
}
