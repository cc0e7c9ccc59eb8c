package sim_test

import (
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// TestEmulatorModes drives an emulated headstage over a pipe with the
// commands of protocol version 2 and checks, for each mode, that the
// frames it sends are what the Go reference encoders make of the same
// samples (the emulator runs device.Detector and device.Compressor, the
// C reference's algorithm), with a settings frame first.
func TestEmulatorModes(t *testing.T) {
	cfg := sim.Config{Channels: 8, Seed: 4, Duration: 4 * 30000}
	for _, tc := range []struct {
		name string
		mode device.Mode
	}{{"lossless", device.ModeCompressed}, {"spikes", device.ModeSpikes}, {"features", device.ModeFeatures}} {
		t.Run(tc.name, func(t *testing.T) {
			sm, err := sim.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The same recording, for the reference.
			ref, err := sim.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var all []int16
			for {
				b, err := ref.Next(context.Background())
				if err != nil {
					break
				}
				all = append(all, b.Samples...)
			}
			thr := device.Thresholds(all[:8*30000], 8, 30000, -4.5)
			em := sim.NewEmulator(sm, sim.EmulatorConfig{Speed: 20, WaitForStart: true, FrameSamples: 30})
			host, dev := net.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); em.Serve(ctx, dev) }()
			go func() {
				// The stream ends with the recording: then close.
				<-em.Ended()
				time.Sleep(100 * time.Millisecond)
				host.Close()
			}()
			src := device.NewWireSource(host)
			cmds := []device.Command{
				{Seq: 1, Op: device.OpSetThresholds, Thresholds: thr},
				{Seq: 2, Op: device.OpSetMode, Mode: tc.mode},
				{Seq: 3, Op: device.OpStart},
			}
			var replies []device.Reply
			src.OnReply = func(r device.Reply) { replies = append(replies, r) }
			go func() {
				// From its own goroutine: the device's replies wait
				// for the host to read them.
				for _, c := range cmds {
					if _, err := host.Write(device.AppendCommand(nil, c)); err != nil {
						return
					}
				}
			}()
			want := device.DefaultSettings(30000, 8)
			for _, c := range cmds[:2] {
				if err := want.Apply(c, 8); err != nil {
					t.Fatal(err)
				}
			}
			det, _ := device.NewDetector(want, 8)
			var got []byte
			var next uint64
			for {
				b, err := src.Next(ctx)
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
						t.Fatal(err)
					}
					t.Logf("end: %v", err)
					break
				}
				if b.Settings != nil {
					want.From = b.Settings.From
					if !reflect.DeepEqual(b.Settings, want) {
						t.Fatalf("settings %+v, want %+v", b.Settings, want)
					}
					if next == 0 {
						next = b.Settings.From // the device streams from here
					}
				}
				if next == 0 {
					t.Fatal("no settings frame before the first frame")
				}
				switch tc.mode {
				case device.ModeCompressed:
					if len(b.Samples) == 0 {
						t.Fatalf("compressed mode gave a block without samples: %+v", b)
					}
					x := all[b.First*8 : b.End()*8]
					if !slicesEqual(b.Samples, x) {
						t.Fatalf("block at %d: samples differ from the recording", b.First)
					}
					got = append(got, 1)
				case device.ModeSpikes:
					if b.Spikes == nil || b.First != next {
						t.Fatalf("block at %d (want %d): %+v", b.First, next, b)
					}
					det.Push(b.First, all[b.First*8:b.End()*8])
					ev := det.TakeEvents(nil)
					if !reflect.DeepEqual(b.Spikes.Events, ev) && !(len(ev) == 0 && len(b.Spikes.Events) == 0) {
						t.Fatalf("block at %d: %d events, want %d", b.First, len(b.Spikes.Events), len(ev))
					}
					got = append(got, byte(len(ev)))
				case device.ModeFeatures:
					if b.Features == nil {
						t.Fatalf("block at %d without features", b.First)
					}
					for det.Bins() == 0 && next*8 < uint64(len(all)) {
						end := min(next+30, uint64(len(all)/8))
						det.Push(next, all[next*8:end*8])
						next = end
					}
					start, f := det.TakeBins(1)
					if start != b.First || !reflect.DeepEqual(&f, b.Features) {
						t.Fatalf("bin at %d: features differ from the reference's (bin at %d)", b.First, start)
					}
					got = append(got, 1)
					continue
				}
				next = b.End()
			}
			if len(got) == 0 {
				t.Fatal("nothing received")
			}
			if len(replies) != 3 || replies[0].Status != device.StatusOK || replies[1].Status != device.StatusOK {
				t.Fatalf("replies %+v", replies)
			}
			if st := src.Stats(); st.BadFrames+st.CRCErrors+st.Gaps != 0 {
				t.Fatalf("stats %+v", st)
			}
			t.Logf("%s: %d frames, %d bytes", tc.name, src.Stats().Frames, src.Stats().Bytes)
			cancel()
			host.Close()
			wg.Wait()
		})
	}
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
