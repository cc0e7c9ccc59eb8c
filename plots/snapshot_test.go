package plots

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/snapshot"
)

// TestSnapshotFigures draws a snapshot that has data for some figures
// only (moved with the figures from TestSnapshotCollector).
func TestSnapshotFigures(t *testing.T) {
	c := snapshot.NewCollector(snapshot.Options{Rig: "hand", URL: "nats://x", Duration: time.Second, Window: 10 * time.Second, Truth: rig.BehaviourModel})
	h := c.Handler()
	const rate = 1000.0
	noise := []float32{7, 7, 0.2, 40, 7, 7}
	h.Status("hand", &schema.Status{Header: schema.Header{Sample: 1000, Rate: rate}, Uptime: time.Second,
		NoiseUV: noise, RateHz: []float32{10, 0, 0, 5, 0, 2}})
	h.Status("hand", &schema.Status{Header: schema.Header{Sample: 2000, Rate: rate}, Uptime: 2 * time.Second,
		Link: schema.LinkStats{CRCErrors: 3}, NoiseUV: noise, RateHz: []float32{20, 0, 0, 5, 0, 4}})
	h.Spikes("hand", &schema.SpikeBatch{Header: schema.Header{Sample: 0, Rate: rate}, End: 100,
		Spikes: []sort.Spike{{Sample: 10, Channel: 0, Unit: 1}, {Sample: 20, Channel: 5, Unit: 0}}})
	h.Spikes("hand", &schema.SpikeBatch{Header: schema.Header{Sample: 150, Rate: rate}, End: 200}) // 50 samples missed
	h.Templates("hand", &schema.TemplateBatch{Header: schema.Header{Flags: schema.FlagFullSnapshot, Rate: rate},
		Templates: []sort.Template{{Unit: 1, Channel: 0, Pre: 1, Waveform: []float32{0, -35, 10}, PeakUV: -35}}})
	// Behaviour every 20 samples: vx = sample/1000; the decoder's 10-sample
	// bins report the value at their centre (R² 1), or at their end (not).
	for s := uint64(0); s <= 2000; s += 20 {
		h.Estimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: s, Rate: rate}, Model: rig.BehaviourModel,
			Names: []string{"vx"}, Values: []float64{float64(s) / 1000}})
	}
	for e := uint64(10); e <= 1990; e += 10 {
		h.Estimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "good",
			Names: []string{"vx"}, Values: []float64{(float64(e) - 5) / 1000}})
		h.Estimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "noisy",
			Names: []string{"vx"}, Values: []float64{math.Sin(float64(e))}})
		h.Estimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "stuck",
			Names: []string{"vx"}, Values: []float64{1}})
	}
	s, err := c.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The figures draw without data for some of them.
	dir := t.TempDir()
	files, err := Snapshot(s, SnapshotOptions{Dir: dir, Width: 600, Height: 400, DPI: 60, MaxPanels: 4})
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprint(files)
	if !strings.Contains(out, "1 quiet, 1 noisy, 2 silent") {
		t.Errorf("files %s", out)
	}
}

// TestSnapshotOnlyEstimates: a publisher of decoder output alone, with
// --channels naming channels nobody reported; nothing to draw but the
// decoder, and every file is still written.
func TestSnapshotOnlyEstimates(t *testing.T) {
	o := snapshot.Options{Rig: "est", URL: "nats://x", Duration: time.Second, Window: time.Second,
		Truth: rig.BehaviourModel, Channels: []int{3, 4}}
	c := snapshot.NewCollector(o)
	h := c.Handler()
	for e := uint64(600); e <= 60000; e += 600 {
		h.Estimate("est", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: 30000}, Model: "kalman",
			Names: []string{"x"}, Values: []float64{float64(e)}})
	}
	s, err := c.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := Snapshot(s, SnapshotOptions{Dir: dir, Width: 400, Height: 300, DPI: 50, MaxPanels: 4})
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprint(files)
	for _, f := range []string{"probe.png", "templates.png", "raster.png", "decoder.png", "health.png", "snapshot.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(out, "no channels") || !strings.Contains(out, "no status") {
		t.Errorf("files %s", out)
	}
}

// BenchmarkSnapshotWrite measures drawing the five figures and the JSON
// of a 256-channel rig: 512 units, 40,000 spikes in the raster, 10 s of
// decoder output and behaviour, at the default 1400×900.
//
//	go test ./plots -run '^$' -bench SnapshotWrite -benchtime 5x
func BenchmarkSnapshotWrite(b *testing.B) {
	const rate, nch = 30000.0, 256
	o := snapshot.Options{Rig: "bench", URL: "nats://x", Duration: 10 * time.Second, Window: 10 * time.Second, Truth: rig.BehaviourModel}
	c := snapshot.NewCollector(o)
	h := c.Handler()
	noise := make([]float32, nch)
	rates := make([]float32, nch)
	var templates []sort.Template
	for ch := range nch {
		noise[ch], rates[ch] = 7, 15
		for k := range 2 {
			w := make([]float32, 48)
			for i := range w {
				w[i] = float32(-60 * float64(1+k) * math.Exp(-float64((i-12)*(i-12))/8))
			}
			templates = append(templates, sort.Template{Unit: int32(2*ch + k + 1), Channel: int32(ch), Pre: 12, Waveform: w, PeakUV: w[12]})
		}
	}
	h.Templates("bench", &schema.TemplateBatch{Header: schema.Header{Flags: schema.FlagFullSnapshot, Rate: rate}, Templates: templates})
	for i := range 10 {
		h.Status("bench", &schema.Status{Header: schema.Header{Sample: uint64(i+1) * 30000, Rate: rate}, Uptime: time.Duration(i+1) * time.Second,
			SampleRate: rate, LatencyP50: time.Millisecond, LatencyP99: 3 * time.Millisecond, NoiseUV: noise, RateHz: rates})
	}
	for blk := range 10000 { // 1 ms blocks, 4 spikes each
		first := uint64(blk) * 30
		var sp []sort.Spike
		for k := range 4 {
			ch := (blk*4 + k) * 37 % nch
			sp = append(sp, sort.Spike{Sample: first + uint64(k), Channel: int32(ch), Unit: int32(2*ch + k%2 + 1)})
		}
		h.Spikes("bench", &schema.SpikeBatch{Header: schema.Header{Sample: first, Rate: rate}, End: first + 30, Spikes: sp})
	}
	for e := uint64(600); e <= 300000; e += 600 {
		v := math.Sin(float64(e) / 30000)
		h.Estimate("bench", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: rig.BehaviourModel, Names: []string{"vx", "vy"}, Values: []float64{v, -v}})
		h.Estimate("bench", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "wiener", Names: []string{"vx", "vy"}, Values: []float64{0.8 * v, -0.7 * v}})
	}
	dir := b.TempDir()
	b.ResetTimer()
	for range b.N {
		s, err := c.Snapshot(nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Snapshot(s, SnapshotOptions{Dir: dir, Width: 1400, Height: 900, DPI: 100, MaxPanels: 16}); err != nil {
			b.Fatal(err)
		}
	}
}
