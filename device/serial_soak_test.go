//go:build linux

package device_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// TestSerialPTYSoak streams a 32-channel test pattern at real time over a
// pseudo-terminal for a minute (SPIKELINE_SOAK sets another duration) with
// byte corruption, dropped frames and an unplug every 10 s, and checks
// that every sample delivered is right and every sample not delivered is
// in a reported gap. Run with SPIKELINE_LONG=1.
func TestSerialPTYSoak(t *testing.T) {
	if os.Getenv("SPIKELINE_LONG") == "" {
		t.Skip("set SPIKELINE_LONG=1 for the soak test")
	}
	dur := time.Minute
	if s := os.Getenv("SPIKELINE_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SPIKELINE_SOAK=%q: %v", s, err)
		}
		dur = d
	}
	pat := &sim.TestPattern{Channels: 32, Rate: 30000}
	em, link := ptyHeadstage(t, pat, sim.EmulatorConfig{FrameSamples: 30, Seed: 5,
		Faults: sim.Faults{CorruptRate: 1e-5, DropRate: 1e-3, UnplugAt: 5 * time.Second,
			UnplugEvery: 10 * time.Second, UnplugFor: 500 * time.Millisecond}})
	src, err := device.OpenSerial(context.Background(), device.SerialConfig{
		Path: link, Reconnect: true, Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	var first, end, delivered, lost uint64
	var started bool
	var disc, reconn, crc int
	var latency time.Duration
	var blocks int
	for stop := time.Now().Add(dur); time.Now().Before(stop); {
		b, err := nextBlock(t, src, 10*time.Second)
		if err != nil {
			t.Fatalf("Next: %v (status %+v)", err, src.Status())
		}
		for _, e := range b.Events {
			switch e.Kind {
			case device.EventGap:
				lost += e.Count
			case device.EventDisconnect:
				disc++
			case device.EventReconnect:
				reconn++
			case device.EventCRC:
				crc++
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
			first, end, started = b.First, b.First, true
		}
		if b.First < end {
			t.Fatalf("block at %d overlaps the previous, which ended at %d", b.First, end)
		}
		delivered += uint64(b.Len())
		end = b.End()
		latency += time.Since(b.Received)
		blocks++
	}
	if delivered+lost != end-first {
		t.Errorf("%d samples delivered + %d in gaps != %d spanned", delivered, lost, end-first)
	}
	st := em.Stats()
	if uint64(disc) != st.Unplugs && uint64(disc) != st.Unplugs-1 || reconn != disc && reconn != disc-1 {
		t.Errorf("%d disconnects, %d reconnects for %d unplugs", disc, reconn, st.Unplugs)
	}
	t.Logf("%v: %d blocks, %d samples, %d lost in gaps, %d CRC failures, %d/%d disconnects/reconnects, %d unplugs; emulator: %d corrupted, %d dropped frames; mean queue wait %v",
		dur, blocks, delivered, lost, crc, disc, reconn, st.Unplugs, st.FramesCorrupted, st.FramesDropped, latency/time.Duration(max(blocks, 1)))
}
