package sim

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

// collect runs s to its Duration and returns all samples (time-major),
// ground-truth spikes and behaviour.
func collect(t testing.TB, s *Sim) ([]int16, []sort.Spike, []BehaviourSample) {
	t.Helper()
	ctx := context.Background()
	var data []int16
	var spikes []sort.Spike
	var beh []BehaviourSample
	next := uint64(0)
	for {
		b, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.First != next {
			t.Fatalf("block First = %d, want %d", b.First, next)
		}
		next = b.End()
		data = append(data, b.Samples...)
		spikes = s.TakeSpikes(spikes)
		beh = s.TakeBehaviour(beh)
	}
	return data, spikes, beh
}

func TestReproducible(t *testing.T) {
	cfg := Config{Channels: 8, Seed: 42, Duration: 30000, MinUnits: 1, MaxUnits: 3}
	s1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d1, sp1, b1 := collect(t, s1)
	for _, bs := range []int{1, 7, 30, 1000, 4096} {
		c := cfg
		c.BlockSamples = bs
		s2, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		d2, sp2, b2 := collect(t, s2)
		if !slices.Equal(d1, d2) {
			t.Errorf("BlockSamples %d: samples differ", bs)
		}
		if !slices.Equal(sp1, sp2) {
			t.Errorf("BlockSamples %d: spikes differ (%d vs %d)", bs, len(sp1), len(sp2))
		}
		if !slices.Equal(b1, b2) {
			t.Errorf("BlockSamples %d: behaviour differs", bs)
		}
	}
	if len(d1) != 8*30000 {
		t.Errorf("got %d samples, want %d", len(d1), 8*30000)
	}
	if len(sp1) == 0 {
		t.Error("no ground-truth spikes")
	}
	if len(b1) != 1000 {
		t.Errorf("got %d behaviour samples in 1 s, want 1000", len(b1))
	}
	c := cfg
	c.Seed = 43
	s3, _ := New(c)
	d3, _, _ := collect(t, s3)
	if slices.Equal(d1, d3) {
		t.Error("seeds 42 and 43 gave identical data")
	}
}
