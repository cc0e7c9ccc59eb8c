package sort_test

import (
	"context"
	"errors"
	"testing"

	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
)

// TestSetThreshold: raising the threshold mid-stream takes effect at once
// (fewer detections than an identical sorter left alone), and impossible
// values are refused.
func TestSetThreshold(t *testing.T) {
	count := func(raiseAt uint64) (after int) {
		sm, err := sim.New(sim.Config{Channels: 4, Seed: 5, MinUnits: 2, MaxUnits: 3, BlockSamples: 300})
		if err != nil {
			t.Fatal(err)
		}
		s, err := sort.New(sort.Config{Deterministic: true}, 4, 30000, 0.195)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var spikes []sort.Spike
		for {
			b, err := sm.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if b.First == raiseAt {
				if err := s.SetThreshold(9); err != nil {
					t.Fatal(err)
				}
			}
			spikes, err = s.Process(b, spikes[:0])
			if err != nil {
				t.Fatal(err)
			}
			for _, sp := range spikes {
				if sp.Sample >= 4*30000 {
					after++
				}
			}
			if b.End() >= 8*30000 {
				return after
			}
		}
	}
	base, raised := count(1<<62), count(3*30000)
	t.Logf("spikes after 4 s: %d at the default threshold, %d after raising to 9 σ", base, raised)
	if base < 50 || raised >= base*3/4 {
		t.Errorf("raising the threshold left %d of %d spikes", raised, base)
	}

	s, err := sort.New(sort.Config{}, 2, 30000, 0.195)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float64{0, -1} {
		if err := s.SetThreshold(bad); !errors.Is(err, sort.ErrConfig) {
			t.Errorf("SetThreshold(%v) = %v, want ErrConfig", bad, err)
		}
	}
	if got := s.Config().Threshold; got != 4 {
		t.Errorf("threshold %v after refused changes, want 4 (the default)", got)
	}
	s.Close()
	if err := s.SetThreshold(5); !errors.Is(err, sort.ErrClosed) {
		t.Errorf("SetThreshold on a closed sorter = %v, want ErrClosed", err)
	}
}
