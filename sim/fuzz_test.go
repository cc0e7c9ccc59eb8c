package sim

import (
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"
)

// New refuses bad configurations with an error, never a panic, and a
// configuration it accepts generates data.
func FuzzNew(f *testing.F) {
	f.Add(4, 30000.0, 0.195, 0, 4, 7.0, 0.3, 60.0, 0.05, 0.1, 30, "ou", 10.0, int64(0))
	f.Add(1, 1000.0, 1.0, 2, 2, 0.0, 0.0, 50.0, 0.0, 0.0, 1, "reach", 1.0, int64(time.Second))
	f.Add(3, 44100.0, 0.01, 0, 16, 500.0, 0.99, 20000.0, 100.0, 0.99, 7, "x", -1.0, int64(-5))
	f.Fuzz(func(t *testing.T, ch int, rate, gain float64, minU, maxU int, noise, hum, mains, art, drift float64, block int, model string, speed float64, lead int64) {
		if ch > 8 || rate > 60000 || block > 1000 {
			t.Skip() // keep each case small; the limits are tested elsewhere
		}
		cfg := Config{Channels: ch, Rate: rate, Gain: gain, MinUnits: minU, MaxUnits: maxU, NoiseUV: noise,
			HumFraction: hum, MainsHz: mains, ArtifactRate: art, Drift: drift, BlockSamples: block, Duration: 2000}
		cfg.Behaviour = BehaviourConfig{Model: model, Speed: speed, Lead: time.Duration(lead)}
		s, err := New(cfg)
		if err != nil {
			if cfg.Validate() == nil {
				t.Fatalf("New failed but Validate passed: %v", err)
			}
			return
		}
		for {
			b, err := s.Next(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Channels != ch || len(b.Samples) != ch*b.Len() || math.IsNaN(b.Rate) {
				t.Fatalf("bad block %+v", b)
			}
		}
		if s.Emitted() != 2000 {
			t.Fatalf("emitted %d, want 2000", s.Emitted())
		}
	})
}
