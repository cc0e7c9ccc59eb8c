package sort_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
	"github.com/spikeline/spikeline/probe"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/score"
)

// TestKitDiag sorts chosen channels of a recording on disk with ground
// truth (spikeline sim's layout, or the external kit's: scripts/gtkit) the
// way `spikeline sort` does (two deterministic passes, pass 1 with the
// offline learning settings) and prints, per ground-truth unit, its score,
// and with SPIKELINE_KITDIAG_LEARN=1 what every learning pass made of the
// ground truth (which true units each cluster's snippets came from). A
// tool for working on the sorter; it runs only when SPIKELINE_KITDIAG
// names a recording directory:
//
//	SPIKELINE_KITDIAG=/tmp/spikeline-gtkit/kit/white-s1 SPIKELINE_KITDIAG_CH=7,10 \
//	    SPIKELINE_KITDIAG_LEARN=1 go test ./sort -run KitDiag -v
//
// SPIKELINE_KITDIAG_PASSES=1 sorts in one causal pass (live settings).
// SPIKELINE_KITDIAG_GEO=1 sorts with the recording's probe.json (the
// chosen channels' positions; SPIKELINE_KITDIAG_RADIUS µm) and scores a
// detection within 50 µm of the true main channel.
func TestKitDiag(t *testing.T) {
	dir := os.Getenv("SPIKELINE_KITDIAG")
	if dir == "" {
		t.Skip("set SPIKELINE_KITDIAG=recording-dir")
	}
	src, meta, err := device.OpenRecording(dir, device.RawConfig{})
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	var chans []int
	for f := range strings.SplitSeq(os.Getenv("SPIKELINE_KITDIAG_CH"), ",") {
		if c, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			chans = append(chans, c)
		}
	}
	if len(chans) == 0 {
		for c := range meta.Channels {
			chans = append(chans, c)
		}
	}
	sub := map[int]int{} // recording channel -> sub-block channel
	for i, c := range chans {
		sub[c] = i
	}
	snr, unitCh := readKitUnits(t, filepath.Join(dir, "units.csv"))
	f, err := os.Open(filepath.Join(dir, "gt_spikes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	gtAll, err := sort.ReadSpikesCSV(f, "gt_spikes.csv")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var gt []sort.Spike
	for _, s := range gtAll {
		if _, ok := sub[int(unitCh[s.Unit])]; ok {
			s.Channel = unitCh[s.Unit]
			gt = append(gt, s)
		}
	}
	learnHooks := os.Getenv("SPIKELINE_KITDIAG_LEARN") != ""
	gtUnit := func(ch int, tau uint64) int32 {
		i, _ := slices.BinarySearchFunc(gt, tau, func(a sort.Spike, x uint64) int {
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
			d := max(gt[j].Sample, tau) - min(gt[j].Sample, tau)
			if d < bd {
				best, bd = gt[j].Unit, d
			}
		}
		return best
	}
	if learnHooks {
		call := map[int]int{}
		sort.SetLearnHooks(func(c int, tau []uint64, label []int) {
			ch := chans[c]
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
			call[ch]++
			t.Logf("ch %d labels %d: %d snippets %.1f–%.1f s%s", ch, call[ch], len(tau), float64(tau[0])/meta.Rate, float64(tau[len(tau)-1])/meta.Rate, b.String())
		}, func(c int, format string, a ...any) {
			t.Logf("ch %d: "+format, append([]any{chans[c]}, a...)...)
		})
		defer sort.SetLearnHooks(nil, nil)
	}
	passes := 2
	if os.Getenv("SPIKELINE_KITDIAG_PASSES") == "1" {
		passes = 1
	}
	var pairs []sort.NeighbourPair
	run := func(cfg sort.Config) ([]sort.Spike, []sort.Template) {
		src, _, err := device.OpenRecording(dir, device.RawConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		s, err := sort.New(cfg, len(chans), meta.Rate, meta.Gain)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out []sort.Spike
		var buf []int16
		for {
			b, err := src.Next(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			rows := b.Len()
			buf = slices.Grow(buf[:0], rows*len(chans))[:rows*len(chans)]
			for r := range rows {
				for i, c := range chans {
					buf[r*len(chans)+i] = b.Samples[r*b.Channels+c]
				}
			}
			b.Samples, b.Channels = buf, len(chans)
			if out, err = s.Process(b, out); err != nil {
				t.Fatal(err)
			}
			if !cfg.Deterministic {
				// Online: learning runs beside the stream, fed at 20x real time.
				time.Sleep(time.Duration(float64(b.Len()) / meta.Rate / 20 * 1e9))
			}
		}
		out = s.Flush(out)
		pairs = sort.NeighbourPairs(s)
		for i := range out {
			out[i].Channel = int32(chans[out[i].Channel])
		}
		tm := s.Templates()
		for i := range tm {
			tm[i].Channel = int32(chans[tm[i].Channel])
		}
		return out, tm
	}
	cfg := sort.Config{Deterministic: os.Getenv("SPIKELINE_KITDIAG_ONLINE") == ""}
	var scoreOpts score.Options
	if os.Getenv("SPIKELINE_KITDIAG_GEO") != "" {
		p, err := probe.Open(filepath.Join(dir, "probe.json"), meta.Channels)
		if err != nil {
			t.Fatal(err)
		}
		pos := make([][2]float64, len(chans))
		for i, c := range chans {
			pos[i] = p.Positions[c]
		}
		if cfg.Probe, err = probe.New("probe.json", pos); err != nil {
			t.Fatal(err)
		}
		scoreOpts.Positions = p.Positions
	}
	envf := func(name string, v *float64) {
		if x, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
			*v = x
		}
	}
	envf("SPIKELINE_KITDIAG_PRE", &cfg.Pre)
	envf("SPIKELINE_KITDIAG_POST", &cfg.Post)
	envf("SPIKELINE_KITDIAG_TAIL", &cfg.Tail)
	envf("SPIKELINE_KITDIAG_TT", &cfg.TemplateThreshold)
	envf("SPIKELINE_KITDIAG_TH", &cfg.Threshold)
	envf("SPIKELINE_KITDIAG_RADIUS", &cfg.Radius)
	if v := os.Getenv("SPIKELINE_KITDIAG_SIGN"); v != "" {
		sg, err := sort.ParseSign(v)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Sign = sg
	}
	if os.Getenv("SPIKELINE_KITDIAG_ORACLE") != "" {
		// The matcher's ceiling: seed the ground truth's own mean
		// waveforms (on the band-passed signal) and never learn.
		cfg.Templates, cfg.RelearnEvery = oracleTemplates(t, dir, meta, chans, gt, cfg), -1
		cfg.LearnSeconds = 1e9
		if v, err := strconv.ParseFloat(os.Getenv("SPIKELINE_KITDIAG_TRACK"), 64); err == nil {
			cfg.TrackRate = v
		}
		passes = 0
	}
	if passes == 2 {
		c1 := cfg
		c1.MaxSnippets, c1.RelearnEvery = 3000, 40
		if v, err := strconv.ParseFloat(os.Getenv("SPIKELINE_KITDIAG_ONCE"), 64); err == nil {
			// One learning pass over the first v seconds.
			c1.LearnSeconds, c1.RelearnEvery, c1.MaxSnippets = v, -1, 20000
		}
		_, tm := run(c1)
		for i := range tm {
			tm[i].Channel = int32(sub[int(tm[i].Channel)])
		}
		cfg.Templates, cfg.RelearnEvery = tm, -1
		sort.SetLearnHooks(nil, nil)
	}
	spikes, tm := run(cfg)
	for _, x := range tm {
		t.Logf("template unit %d ch %d peak %.1f µV count %d", x.Unit, x.Channel, x.PeakUV, x.Count)
	}
	if from, err := strconv.ParseFloat(os.Getenv("SPIKELINE_KITDIAG_FROM"), 64); err == nil {
		// Score from this second on (a single pass sorts nothing before
		// its first learning pass).
		cut := uint64(from * meta.Rate)
		keep := func(in []sort.Spike) []sort.Spike {
			var out []sort.Spike
			for _, s := range in {
				if s.Sample >= cut {
					out = append(out, s)
				}
			}
			return out
		}
		gt, spikes = keep(gt), keep(spikes)
	}
	cmp, err := score.Compare(gt, spikes, meta.Rate, scoreOpts)
	if err != nil {
		t.Fatal(err)
	}
	var acc float64
	var n, well, sorted int
	unitMain, unitN := map[int32]int32{}, map[int32]int{}
	for _, s := range spikes {
		if s.Unit != 0 {
			sorted++
			unitMain[s.Unit] = s.Channel
			unitN[s.Unit]++
		}
	}
	for _, u := range cmp.Units {
		t.Logf("gt %3d ch %2d snr %5.1f n %5d -> sorted %4d acc %.3f rec %.3f prec %.3f fp %4d fn_cl %4d fn_uns %4d fn_mis %4d",
			u.GT, u.Channel, snr[u.GT], u.NumGT, u.Sorted, u.Accuracy, u.Recall, u.Precision, u.FP, u.Misclassified, u.Unsorted, u.Missed)
		if u.Accuracy < 0.8 && os.Getenv("SPIKELINE_KITDIAG_WHO") != "" {
			// Which sorted units took its spikes.
			type took struct {
				id int32
				m  int
			}
			var ts []took
			for _, so := range cmp.SortedUnits {
				if m := cmp.Matches(u.GT, so); m > 0 {
					ts = append(ts, took{so, m})
				}
			}
			slices.SortFunc(ts, func(a, b took) int { return b.m - a.m })
			var parts []string
			for _, x := range ts[:min(4, len(ts))] {
				parts = append(parts, fmt.Sprintf("%d:%d(ch %d, n %d)", x.id, x.m, unitMain[x.id], unitN[x.id]))
			}
			t.Logf("      took by %s", strings.Join(parts, " "))
		}
		if snr[u.GT] >= 5 {
			n++
			acc += u.Accuracy
			if u.Accuracy >= 0.8 {
				well++
			}
		}
	}
	if os.Getenv("SPIKELINE_KITDIAG_PAIRS") != "" {
		// Which ground-truth unit each sorted unit mostly holds.
		major := map[int32]int32{}
		best := map[int32]int{}
		for _, u := range cmp.Units {
			for _, so := range cmp.SortedUnits {
				if m := cmp.Matches(u.GT, so); m > best[so] {
					best[so], major[so] = m, u.GT
				}
			}
		}
		for _, p := range pairs {
			same := "different"
			if major[p.A] == major[p.B] && major[p.A] != 0 {
				same = "SAME"
			}
			t.Logf("pair %d (gt %d) %d (gt %d): residual %.1f energy %.1f %s", p.A, major[p.A], p.B, major[p.B], p.Residual, p.Energy, same)
		}
	}
	t.Logf("SNR>=5: mean accuracy %.3f, well detected %d of %d; sorted units %d, redundant %v, overmerged %v, false positive %v; spikes %d (%d sorted) for %d true",
		acc/float64(max(n, 1)), well, n, len(cmp.SortedUnits), cmp.Redundant, cmp.Overmerged, cmp.FalsePositive, len(spikes), sorted, len(gt))
}

// readKitUnits reads unit_id, channel and snr from a units.csv.
func readKitUnits(t *testing.T, path string) (map[int32]float64, map[int32]int32) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	snr, ch := map[int32]float64{}, map[int32]int32{}
	for _, r := range rows[1:] {
		id, _ := strconv.Atoi(r[col["unit_id"]])
		c, _ := strconv.Atoi(r[col["channel"]])
		v, _ := strconv.ParseFloat(r[col["snr"]], 64)
		snr[int32(id)], ch[int32(id)] = v, int32(c)
	}
	return snr, ch
}

// oracleTemplates returns, per ground-truth unit of chans, its mean
// band-passed waveform around its spikes, aligned on the mean's extremum,
// as a seed Template (channel numbered in the sub-block).
func oracleTemplates(t *testing.T, dir string, meta device.Meta, chans []int, gt []sort.Spike, cfg sort.Config) []sort.Template {
	def := cfg
	d0 := sort.Default()
	for _, p := range []struct {
		v *float64
		d float64
	}{{&def.Pre, d0.Pre}, {&def.Post, d0.Post}, {&def.Tail, d0.Tail}, {&def.Low, d0.Low}, {&def.High, d0.High}} {
		if *p.v == 0 {
			*p.v = p.d
		}
	}
	def.Order = d0.Order
	ms := func(v float64) int { return int(v*meta.Rate/1000 + 0.5) }
	pre, d := ms(def.Pre), ms(def.Pre)+1+ms(def.Post)
	dfull := d + ms(def.Tail)
	secs, err := dsp.Butterworth(def.Order, def.Low, min(def.High, 0.45*meta.Rate), meta.Rate)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "recording.dat"))
	if err != nil {
		t.Fatal(err)
	}
	n := len(raw) / 2 / meta.Channels
	var out []sort.Template
	for i, c := range chans {
		f := sort.NewFilter(secs, 1)
		x := make([]float32, n)
		for r := range n {
			v := int16(uint16(raw[2*(r*meta.Channels+c)]) | uint16(raw[2*(r*meta.Channels+c)+1])<<8)
			x[r] = float32(v) * float32(meta.Gain)
		}
		f.Settle(0, x[0])
		f.Process(x)
		const w = 20 // search window each side of the ground-truth time
		sum := map[int32][]float64{}
		cnt := map[int32]int{}
		for _, s := range gt {
			if int(s.Channel) != c || int(s.Sample) < pre+w || int(s.Sample)+dfull+w >= n {
				continue
			}
			a := sum[s.Unit]
			if a == nil {
				a = make([]float64, dfull+2*w)
				sum[s.Unit] = a
			}
			for k := range a {
				a[k] += float64(x[int(s.Sample)-pre-w+k])
			}
			cnt[s.Unit]++
		}
		for u, a := range sum {
			// Extremum of the mean near the middle.
			best := w + pre
			for k := pre; k < pre+2*w; k++ {
				if a[k] < a[best] {
					best = k
				}
			}
			wf := make([]float32, dfull)
			for k := range wf {
				wf[k] = float32(a[best-pre+k] / float64(cnt[u]))
			}
			out = append(out, sort.Template{Unit: u, Channel: int32(i), Pre: pre, Waveform: wf, PeakUV: wf[pre], Count: cnt[u]})
		}
	}
	return out
}
