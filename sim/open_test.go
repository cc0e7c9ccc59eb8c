package sim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// TestOpenRegistry: the simulator is the sim kind of the device registry,
// in process (with its behaviour) and behind a loopback TCP headstage
// (with commands and link statistics).
func TestOpenRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := sim.Config{Channels: 4, Seed: 3}
	if _, err := device.Open(ctx, "sim:usb", device.Options{Config: cfg}); !errors.Is(err, device.ErrSpec) {
		t.Errorf("sim:usb: %v, want ErrSpec", err)
	}
	if _, err := device.Open(ctx, "sim", device.Options{Config: 3}); !errors.Is(err, device.ErrSpec) {
		t.Errorf("sim with a bad Config: %v, want ErrSpec", err)
	}

	src, err := device.Open(ctx, "sim", device.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for range 200 {
		b, err := src.Next(ctx)
		if err != nil || b.Channels != 4 {
			t.Fatalf("block %+v, %v", b, err)
		}
		src.(interface {
			TakeBehaviour(func(uint64, []float64))
		}).TakeBehaviour(func(_ uint64, v []float64) {
			if len(v) != 2 {
				t.Fatalf("behaviour of %d values", len(v))
			}
			n++
		})
	}
	if n == 0 {
		t.Error("no behaviour from the simulator")
	}
	if name := device.Name(src, "sim"); name != "sim(seed 3)" {
		t.Errorf("name %q", name)
	}
	if _, ok := src.(device.Commander); ok {
		t.Error("the in-process simulator takes commands")
	}

	hs, err := device.Open(ctx, "sim:tcp", device.Options{Config: cfg, Pace: 0})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hs.Next(ctx); err != nil || b.Channels != 4 {
		t.Fatalf("sim:tcp block %+v, %v", b, err)
	}
	if _, ok := hs.(device.Commander); !ok {
		t.Error("sim:tcp takes no commands")
	}
	if st := hs.(device.StatsReporter).Stats(); st.Frames == 0 {
		t.Errorf("sim:tcp link stats %+v", st)
	}
	if err := device.Close(hs); err != nil {
		t.Errorf("closing sim:tcp: %v", err)
	}
}
