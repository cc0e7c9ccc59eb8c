package sort_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
)

// TestLearnDiag prints, for chosen channels of a full-size simulated
// recording, what each learning pass of an offline pass 1 made of the
// ground truth: which true units the snippets of each k-means cluster and
// each merged cluster came from. A tool for working on learning; it runs
// only with SPIKELINE_LEARNDIAG=1:
//
//	SPIKELINE_LEARNDIAG=1 SPIKELINE_LEARNDIAG_SEED=11 SPIKELINE_LEARNDIAG_CH=16,19 \
//	    go test ./sort -run LearnDiag -v
func TestLearnDiag(t *testing.T) {
	if os.Getenv("SPIKELINE_LEARNDIAG") == "" {
		t.Skip("set SPIKELINE_LEARNDIAG=1")
	}
	seed, _ := strconv.Atoi(os.Getenv("SPIKELINE_LEARNDIAG_SEED"))
	if seed == 0 {
		seed = 11
	}
	chans := map[int]bool{}
	for _, f := range strings.Split(os.Getenv("SPIKELINE_LEARNDIAG_CH"), ",") {
		if c, err := strconv.Atoi(f); err == nil {
			chans[c] = true
		}
	}
	s, err := sim.New(sim.Config{Channels: 32, Seed: int64(seed), Duration: 300 * 30000, MinUnits: 1, MaxUnits: 3})
	if err != nil {
		t.Fatal(err)
	}
	snr := map[int32]float64{}
	for _, u := range s.Units() {
		snr[u.ID] = u.SNR
		if chans[int(u.Channel)] {
			t.Logf("gt unit %d ch %d snr %.1f kind %s width %.2f burst %.2f rate %.1f", u.ID, u.Channel, u.SNR, u.Kind, u.WidthMs, u.BurstProb, u.BaselineHz)
		}
	}
	cfg := sort.Config{Deterministic: true, MaxSnippets: 3000, RelearnEvery: 40}
	if v, err := strconv.ParseFloat(os.Getenv("SPIKELINE_LEARNDIAG_TT"), 64); err == nil {
		cfg.TemplateThreshold = v
	}
	so, err := sort.New(cfg, 32, s.Rate(), s.Config().Gain)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	var gt []sort.Spike
	// gtUnit returns the ground-truth unit of channel ch nearest to tau.
	var offset uint64 // device index of stream row 0
	gtUnit := func(ch int, tau uint64) int32 {
		x := tau + offset
		i, _ := slices.BinarySearchFunc(gt, x, func(a sort.Spike, x uint64) int {
			switch {
			case a.Sample+20 < x:
				return -1
			case a.Sample > x+20:
				return 1
			}
			return 0
		})
		best, bd := int32(0), uint64(13)
		for j := max(0, i-8); j < min(len(gt), i+8); j++ {
			if int(gt[j].Channel) != ch {
				continue
			}
			d := max(gt[j].Sample, x) - min(gt[j].Sample, x)
			if d < bd {
				best, bd = gt[j].Unit, d
			}
		}
		return best
	}
	pass := map[int]int{}
	table := func(ch int, tau []uint64, label []int) string {
		type key struct {
			l int
			u int32
		}
		n := map[key]int{}
		k := 0
		for i, l := range label {
			n[key{l, gtUnit(ch, tau[i])}]++
			k = max(k, l+1)
		}
		var b strings.Builder
		for l := -1; l < k; l++ {
			var parts []string
			for kk, v := range n {
				if kk.l == l {
					parts = append(parts, fmt.Sprintf("u%d(%.1f):%d", kk.u, snr[kk.u], v))
				}
			}
			slices.Sort(parts)
			if len(parts) > 0 {
				fmt.Fprintf(&b, "\n      cluster %d: %s", l, strings.Join(parts, " "))
			}
		}
		return b.String()
	}
	var pending []func()
	sort.SetLearnHooks(func(ch int, tau []uint64, label []int) {
		if !chans[ch] {
			return
		}
		tau, label = slices.Clone(tau), slices.Clone(label)
		pending = append(pending, func() {
			pass[ch]++
			t.Logf("ch %d learning call %d: %d snippets from %.1f s to %.1f s%s", ch, pass[ch], len(tau),
				float64(tau[0])/30000, float64(tau[len(tau)-1])/30000, table(ch, tau, label))
		})
	}, func(ch int, format string, a ...any) {
		if chans[ch] {
			msg := fmt.Sprintf("ch %d: "+format, append([]any{ch}, a...)...)
			pending = append(pending, func() { t.Log(msg) })
		}
	})
	defer sort.SetLearnHooks(nil, nil)
	ctx := context.Background()
	first := true
	for {
		b, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first {
			offset, first = b.First, false
		}
		gt = s.TakeSpikes(gt)
		if _, err := so.Process(b, nil); err != nil {
			t.Fatal(err)
		}
		// Ground truth arrives with the block; labels refer to earlier rows.
		for _, f := range pending {
			f()
		}
		pending = pending[:0]
	}
	so.Flush(nil)
	for _, f := range pending {
		f()
	}
	for _, tp := range so.Templates() {
		if chans[int(tp.Channel)] {
			t.Logf("final template unit %d ch %d peak %.1f count %d", tp.Unit, tp.Channel, tp.PeakUV, tp.Count)
		}
	}
}
