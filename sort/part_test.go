package sort_test

import (
	"cmp"
	"context"
	"io"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
)

// TestPartsSortLikeWhole: a stream sorted in channel groups, each with
// its own sorter told where its channels are (Config.Part), gives one
// sorter's spikes exactly, through noise re-estimates and two learning
// passes; units map one to one. This is what remote sorting (package
// shard) relies on.
func TestPartsSortLikeWhole(t *testing.T) {
	const channels, size = 48, 16
	sm, err := sim.New(sim.Config{Channels: channels, Seed: 3, Duration: 7 * 30000, BlockSamples: 300})
	if err != nil {
		t.Fatal(err)
	}
	var blocks []device.Block
	for {
		b, err := sm.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Samples = slices.Clone(b.Samples)
		blocks = append(blocks, b)
	}
	cfg := sort.Config{Deterministic: true, LearnSeconds: 2}
	run := func(cfg sort.Config, first, n int) ([]sort.Spike, sort.Stats) {
		s, err := sort.New(cfg, n, blocks[0].Rate, blocks[0].Gain)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out []sort.Spike
		for _, b := range blocks {
			part := b
			part.Channels, part.Samples = n, make([]int16, 0, n*b.Len())
			for i := range b.Len() {
				part.Samples = append(part.Samples, b.Samples[i*b.Channels+first:][:n]...)
			}
			if out, err = s.Process(part, out); err != nil {
				t.Fatal(err)
			}
		}
		out = s.Flush(out)
		for i := range out {
			out[i].Channel += int32(first)
		}
		return out, s.Stats()
	}
	whole, st := run(cfg, 0, channels)
	if st.Learned < 2 || st.Units == 0 {
		t.Fatalf("the whole stream learned %d times, %d units: the test needs two passes", st.Learned, st.Units)
	}
	var parts []sort.Spike
	units := map[[2]int32]int32{} // (part, its unit) -> the whole sorter's unit
	for first := 0; first < channels; first += size {
		c := cfg
		c.Part = sort.Part{First: first, Total: channels}
		out, _ := run(c, first, size)
		for _, s := range out {
			if s.Unit > 0 {
				s.Unit = -(int32(first)<<16 | s.Unit) // mapped below
			}
			parts = append(parts, s)
		}
	}
	slices.SortStableFunc(parts, func(a, b sort.Spike) int {
		return cmp.Or(cmp.Compare(a.Sample, b.Sample), cmp.Compare(a.Channel, b.Channel))
	})
	if len(parts) != len(whole) {
		t.Fatalf("%d spikes in parts, %d whole", len(parts), len(whole))
	}
	back := map[int32][2]int32{}
	for i, w := range whole {
		p := parts[i]
		if p.Sample != w.Sample || p.Channel != w.Channel || p.Amplitude != w.Amplitude || (p.Unit == 0) != (w.Unit == 0) {
			t.Fatalf("spike %d: %+v in parts, %+v whole", i, p, w)
		}
		if w.Unit == 0 {
			continue
		}
		key := [2]int32{-p.Unit >> 16, -p.Unit & 0xffff}
		if u, ok := units[key]; ok && u != w.Unit {
			t.Fatalf("spike %d: part unit %v is whole units %d and %d", i, key, u, w.Unit)
		}
		if k, ok := back[w.Unit]; ok && k != key {
			t.Fatalf("spike %d: whole unit %d is part units %v and %v", i, w.Unit, k, key)
		}
		units[key], back[w.Unit] = w.Unit, key
	}
	t.Logf("%d spikes, %d units, %d learning passes: the same in parts", len(whole), len(units), st.Learned)

	// A part that does not fit is refused.
	c := cfg
	c.Part = sort.Part{First: 40, Total: channels}
	if _, err := sort.New(c, size, 30000, 0.195); err == nil {
		t.Error("16 channels from 40 of 48: no error")
	}
}
