package sort_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/score"
)

// TestSimAccuracy scores the sorter on the simulator with SpikeInterface's
// comparison. It is for tuning and runs only with SPIKELINE_SIMEVAL=1
// (the project's gated accuracy test lives with the scorer):
//
//	SPIKELINE_SIMEVAL=1 go test ./sort -run SimAccuracy -v
//
// SPIKELINE_SIMEVAL_SECONDS, _CHANNELS and _SEED change the recording.
func TestSimAccuracy(t *testing.T) {
	if os.Getenv("SPIKELINE_SIMEVAL") == "" {
		t.Skip("set SPIKELINE_SIMEVAL=1")
	}
	env := func(k string, d int) int {
		if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
			return v
		}
		return d
	}
	seconds := env("SPIKELINE_SIMEVAL_SECONDS", 60)
	channels := env("SPIKELINE_SIMEVAL_CHANNELS", 32)
	seed := env("SPIKELINE_SIMEVAL_SEED", 1)
	mk := func() *sim.Sim {
		s, err := sim.New(sim.Config{Channels: channels, Seed: int64(seed), MinUnits: 1, MaxUnits: 3,
			Duration: uint64(seconds) * 30000, BlockSamples: 300})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pass1 := uint64(env("SPIKELINE_SIMEVAL_PASS1", 0)) * 30000 // samples; 0 = whole recording
	minSpikes := env("SPIKELINE_SIMEVAL_MINSPIKES", 0)
	run := func(cfg sort.Config, limit uint64) ([]sort.Spike, []sort.Spike, *sort.Sorter, *sim.Sim) {
		cfg.MinSpikes = minSpikes
		if v, err := strconv.ParseFloat(os.Getenv("SPIKELINE_SIMEVAL_TOL"), 64); err == nil {
			cfg.MatchTolerance = v
		}
		if v, err := strconv.ParseFloat(os.Getenv("SPIKELINE_SIMEVAL_THRESHOLD"), 64); err == nil {
			cfg.Threshold = v
		}
		s := mk()
		so, err := sort.New(cfg, channels, s.Rate(), s.Config().Gain)
		if err != nil {
			t.Fatal(err)
		}
		var out, gt []sort.Spike
		for {
			b, err := s.Next(context.Background())
			if errors.Is(err, io.EOF) || limit > 0 && b.First >= limit {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if out, err = so.Process(b, out); err != nil {
				t.Fatal(err)
			}
			gt = s.TakeSpikes(gt)
		}
		out = so.Flush(out)
		gt = s.TakeSpikes(gt)
		return out, gt, so, s
	}
	report := func(name string, out, gt []sort.Spike, s *sim.Sim, from uint64) {
		var o, g []sort.Spike
		for _, sp := range out {
			if sp.Sample >= from && sp.Unit != 0 {
				o = append(o, sp)
			}
		}
		for _, sp := range gt {
			if sp.Sample >= from {
				g = append(g, sp)
			}
		}
		c, err := score.Compare(g, o, s.Rate(), score.Options{})
		if err != nil {
			t.Fatal(err)
		}
		snr := map[int32]float64{}
		kind := map[int32]string{}
		width := map[int32]float64{}
		for _, u := range s.Units() {
			snr[u.ID] = u.SNR
			kind[u.ID] = u.Kind
			width[u.ID] = u.WidthMs
		}
		var sum float64
		var n, good int
		for _, u := range c.Units {
			if snr[u.GT] < 5 {
				continue
			}
			n++
			sum += u.Accuracy
			if u.Accuracy >= 0.8 {
				good++
			}
			if (u.Accuracy < 0.8 || os.Getenv("SPIKELINE_SIMEVAL_ALL") != "") && testing.Verbose() {
				t.Logf("  %s: unit %d ch %d snr %.1f acc %.2f recall %.2f precision %.2f lag %.1f kind %s width %.2f", name, u.GT, u.Channel, snr[u.GT], u.Accuracy, u.Recall, u.Precision, u.Lag, kind[u.GT], width[u.GT])
			}
		}
		t.Logf("%s: %d GT units with SNR >= 5: mean accuracy %.3f, %d well detected (%.0f%%); sorted units %d (false positive %d, redundant %d, overmerged %d)",
			name, n, sum/float64(max(n, 1)), good, 100*float64(good)/float64(max(n, 1)),
			len(c.SortedUnits), len(c.FalsePositive), len(c.Redundant), len(c.Overmerged))
	}
	cfg := sort.Config{Deterministic: true}
	out, gt, so, s := run(cfg, 0)
	learn := uint64((sort.Default().LearnSeconds + 1) * s.Rate())
	report("online (after learning)", out, gt, s, learn)
	cfg.Templates = so.Templates()
	if pass1 > 0 {
		_, _, so1, _ := run(cfg, pass1)
		cfg.Templates = so1.Templates()
	}
	out2, gt2, so2, s2 := run(cfg, 0)
	if w := env("SPIKELINE_SIMEVAL_WATCH", -1); w >= 0 {
		ids := map[int32]int{}
		for _, g := range gt2 {
			if g.Unit != int32(w) {
				continue
			}
			for _, o := range out2 {
				if o.Channel == g.Channel && o.Sample+12 >= g.Sample && o.Sample <= g.Sample+12 {
					ids[o.Unit]++
					break
				}
			}
		}
		t.Logf("GT unit %d: sorted ids %v; stats %+v", w, ids, so2.Stats())
		for _, tp := range so2.Templates() {
			for _, g := range gt2 {
				if g.Unit == int32(w) && g.Channel == tp.Channel {
					t.Logf("template unit %d peak %.1f count %d", tp.Unit, tp.PeakUV, tp.Count)
					break
				}
			}
		}
	}
	report("two-pass (seeded)", out2, gt2, s2, 0)
	_ = device.Block{}
}
