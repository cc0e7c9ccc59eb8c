package main

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
)

// TestSnapshot runs 'spikeline run' on the simulator (3× real time) and
// 'spikeline snapshot' against it, then checks every file written.
func TestSnapshot(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runOut, runErr syncBuffer
	ran := make(chan error, 1)
	go func() {
		ran <- runPipeline(ctx, []string{"--channels", "16", "--nats-port", "-1", "--http", "off", "--rig", "snaptest",
			"--seed", "5", "--pace", "3", "--learn", "3", "--calibrate", "5", "--status-every", "500ms"}, &runOut, &runErr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ran:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v\nstderr: %s", err, runErr.String())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("run did not stop within 20 s of cancellation")
		}
	})
	// Start once the live decoder runs (3 s of learning and 5 s of
	// calibration, at 3× real time unless the machine is slower).
	re := regexp.MustCompile(`NATS (nats://127\.0\.0\.1:\d+)`)
	var url string
	for deadline := time.Now().Add(60 * time.Second); ; {
		if m := re.FindStringSubmatch(runOut.String()); m != nil && strings.Contains(runErr.String(), "decoder fitted") {
			url = m[1]
			break
		}
		select {
		case err := <-ran:
			t.Fatalf("run ended: %v\nstdout %s\nstderr %s", err, runOut.String(), runErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no NATS URL or no decoder within 60 s: stdout %q stderr %q", runOut.String(), runErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	dir := filepath.Join(t.TempDir(), "snap")
	const W, H = 900, 600
	var out, errb syncBuffer
	err := runSnapshot(context.Background(), []string{"--nats", url, "--rig", "snaptest", "--duration", "8s",
		"--out", dir, "--width", "900", "--height", "600", "--dpi", "80"}, &out, &errb)
	if err != nil {
		t.Fatalf("snapshot: %v\nstderr: %s", err, errb.String())
	}
	t.Log(out.String())

	for _, name := range []string{"probe.png", "templates.png", "raster.png", "decoder.png", "health.png"} {
		path := filepath.Join(dir, name)
		if !strings.Contains(out.String(), path) {
			t.Errorf("stdout does not name %s", path)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != W || b.Dy() != H {
			t.Errorf("%s is %dx%d, want %dx%d", name, b.Dx(), b.Dy(), W, H)
		}
		colours, inked := pixelVariety(img)
		t.Logf("%s: %d colours, %.1f%% not white", name, colours, 100*inked)
		if colours < 20 || inked < 0.02 {
			t.Errorf("%s looks blank: %d colours, %.2f%% of the pixels not white", name, colours, 100*inked)
		}
	}

	b, err := os.ReadFile(filepath.Join(dir, "snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Rig          string
		Channels     int
		SampleRate   float64 `json:"sample_rate"`
		From         float64 `json:"from_s"`
		To           float64 `json:"to_s"`
		Messages     map[string]int
		ChannelStats []struct {
			Channel int
			RateHz  float64 `json:"rate_hz"`
			NoiseUV float64 `json:"noise_uv"`
			Spikes  int
			Marker  string
		} `json:"channel_stats"`
		Units    []struct{ Unit, Channel int32 }
		Decoders []struct {
			Model   string
			Outputs []struct {
				Name string
				R2   *float64
				R    *float64
				Bins int
			}
		}
		Health *struct {
			SamplesPerS float64 `json:"samples_per_s"`
			LatencyP99  float64 `json:"latency_p99_ms"`
			Missed      int     `json:"missed_batches"`
		}
		Files []string
	}
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatalf("snapshot.json: %v", err)
	}
	if js.Rig != "snaptest" || js.Channels != 16 || len(js.ChannelStats) != 16 || js.SampleRate != 30000 {
		t.Errorf("snapshot.json: rig %q, %d channels (%d listed) at %g Hz; want snaptest, 16 at 30000",
			js.Rig, js.Channels, len(js.ChannelStats), js.SampleRate)
	}
	// 8 s of wall time at 3× real time (less if the machine cannot keep up).
	if d := js.To - js.From; d < 4 || d > 30 {
		t.Errorf("snapshot covers %.1f s of device time, want ≈ 24", d)
	}
	active := 0
	for _, c := range js.ChannelStats {
		if c.RateHz > 0 {
			active++
		}
		if c.NoiseUV < 2 || c.NoiseUV > 30 {
			t.Errorf("channel %d noise %.1f µV, want ≈ 7 (the simulator's)", c.Channel, c.NoiseUV)
		}
		if c.RateHz < 0 || c.RateHz > 500 {
			t.Errorf("channel %d rate %.1f Hz", c.Channel, c.RateHz)
		}
	}
	if active < 8 {
		t.Errorf("%d channels with a rate > 0, want most of 16", active)
	}
	if len(js.Units) == 0 || js.Messages["spikes"] == 0 || js.Messages["status"] < 5 || js.Messages["templates"] == 0 {
		t.Errorf("%d units, messages %v: want units, spikes, status and templates", len(js.Units), js.Messages)
	}
	if js.Health == nil || js.Health.SamplesPerS < 15000 || js.Health.SamplesPerS > 110000 || js.Health.LatencyP99 <= 0 || js.Health.Missed != 0 {
		t.Errorf("health %+v: want ≈ 90000 samples/s (3× real time), a latency, no missed batches", js.Health)
	}
	// The live decoder (calibrated on 5 s) follows the behaviour.
	if len(js.Decoders) != 1 || js.Decoders[0].Model != "wiener" || len(js.Decoders[0].Outputs) != 2 {
		t.Fatalf("decoders %+v: want wiener with vx, vy", js.Decoders)
	}
	for _, o := range js.Decoders[0].Outputs {
		if o.R2 == nil || o.R == nil || o.Bins < 50 || *o.R2 > 1 || *o.R < 0.2 {
			r2, r := math.NaN(), math.NaN()
			if o.R2 != nil && o.R != nil {
				r2, r = *o.R2, *o.R
			}
			t.Errorf("decoder %s: R² %.3f, r %.3f over %d bins; want scored bins, r ≥ 0.2", o.Name, r2, r, o.Bins)
		}
	}
	if !slices.Contains(js.Files, "snapshot.json") || len(js.Files) != 6 {
		t.Errorf("files %v", js.Files)
	}
}

// pixelVariety returns the number of distinct colours of img (up to 1000)
// and the fraction of its pixels that are not white.
func pixelVariety(img image.Image) (int, float64) {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	inked := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				inked++
			}
			if len(seen) < 1000 {
				seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			}
		}
	}
	return len(seen), float64(inked) / float64(b.Dx()*b.Dy())
}

// TestSnapshotNothingArrives: a NATS server without the rig.
func TestSnapshotNothingArrives(t *testing.T) {
	srv := streamtest.RunServer(t, nil)
	url := streamtest.URL(srv)
	dir := filepath.Join(t.TempDir(), "snap")
	var out, errb syncBuffer
	err := runSnapshot(context.Background(), []string{"--nats", url, "--rig", "ghost", "--duration", "1s", "--out", dir}, &out, &errb)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), `rig "ghost"`) || !strings.Contains(err.Error(), url) {
		t.Fatalf("error %v: want one naming the rig and %s", err, url)
	}
	if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
		t.Errorf("%s written without data (%v)", dir, serr)
	}
}

func TestSnapshotBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--duration", "0s"},
		{"--duration", "-1s"},
		{"--window", "1ms"},
		{"--width", "10"},
		{"--height", "100000"},
		{"--dpi", "0"},
		{"--max-panels", "0"},
		{"--channels", "3-1"},
		{"--channels", "x"},
		{"--channels", "-2"},
		{"--truth", "a.b"},
		{"--rig", "a b"},
		{"--out", ""},
		{"--jetstream"},
		{"--nats-port", "4333"},
		{"extra"},
	} {
		// A cancelled context: were the flags accepted, the snapshot
		// would end at once without data (an error, not a usage error).
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errb strings.Builder
		err := runSnapshot(ctx, append([]string{"--nats", "nats://127.0.0.1:1"}, args...), &out, &errb)
		if !errors.Is(err, errUsage) {
			t.Errorf("snapshot %v: error %v, want a usage error (exit 2)", args, err)
		}
		if out.Len() != 0 {
			t.Errorf("snapshot %v started: %q", args, out.String())
		}
	}
	// --out naming a file.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	var out, errb strings.Builder
	if err := runSnapshot(context.Background(), []string{"--out", f}, &out, &errb); !errors.Is(err, errUsage) {
		t.Errorf("--out a file: %v, want a usage error", err)
	}
}

func TestParseChannelList(t *testing.T) {
	got, err := parseChannelList(" 4-6, 1,5 ,10-10")
	if err != nil || !slices.Equal(got, []int{1, 4, 5, 6, 10}) {
		t.Errorf("parse: %v, %v", got, err)
	}
	if got, err := parseChannelList(""); got != nil || err != nil {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"a", "1,,2", "5-2", "-1", "1-", "99999999"} {
		if _, err := parseChannelList(bad); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

// TestSnapshotCollector feeds the collector by hand: channel markers,
// rates, missed batches, and the decoder scored against the behaviour
// interpolated at its bin centres.
func TestSnapshotCollector(t *testing.T) {
	o := snapOptions{nats: stream.Config{Rig: "hand"}, url: "nats://x", duration: time.Second, window: 10 * time.Second, truth: rig.BehaviourModel}
	c := newSnapCollector(o)
	const rate = 1000.0
	noise := []float32{7, 7, 0.2, 40, 7, 7}
	c.onStatus("hand", &schema.Status{Header: schema.Header{Sample: 1000, Rate: rate}, Uptime: time.Second,
		NoiseUV: noise, RateHz: []float32{10, 0, 0, 5, 0, 2}})
	c.onStatus("hand", &schema.Status{Header: schema.Header{Sample: 2000, Rate: rate}, Uptime: 2 * time.Second,
		Link: schema.LinkStats{CRCErrors: 3}, NoiseUV: noise, RateHz: []float32{20, 0, 0, 5, 0, 4}})
	c.onSpikes("hand", &schema.SpikeBatch{Header: schema.Header{Sample: 0, Rate: rate}, End: 100,
		Spikes: []sort.Spike{{Sample: 10, Channel: 0, Unit: 1}, {Sample: 20, Channel: 5, Unit: 0}}})
	c.onSpikes("hand", &schema.SpikeBatch{Header: schema.Header{Sample: 150, Rate: rate}, End: 200}) // 50 samples missed
	c.onTemplates("hand", &schema.TemplateBatch{Header: schema.Header{Flags: schema.FlagFullSnapshot, Rate: rate},
		Templates: []sort.Template{{Unit: 1, Channel: 0, Pre: 1, Waveform: []float32{0, -35, 10}, PeakUV: -35}}})
	// Behaviour every 20 samples: vx = sample/1000; the decoder's 10-sample
	// bins report the value at their centre (R² 1), or at their end (not).
	for s := uint64(0); s <= 2000; s += 20 {
		c.onEstimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: s, Rate: rate}, Model: rig.BehaviourModel,
			Names: []string{"vx"}, Values: []float64{float64(s) / 1000}})
	}
	for e := uint64(10); e <= 1990; e += 10 {
		c.onEstimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "good",
			Names: []string{"vx"}, Values: []float64{(float64(e) - 5) / 1000}})
		c.onEstimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "noisy",
			Names: []string{"vx"}, Values: []float64{math.Sin(float64(e))}})
		c.onEstimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "stuck",
			Names: []string{"vx"}, Values: []float64{1}})
	}
	s, err := c.snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", markSilent, markQuiet, markNoisy, markSilent, ""}
	for i, ch := range s.ChannelStats {
		if ch.Marker != want[i] {
			t.Errorf("channel %d (noise %.1f, rate %.1f): marker %q, want %q", i, ch.NoiseUV, ch.RateHz, ch.Marker, want[i])
		}
	}
	if s.ChannelStats[0].RateHz != 15 || s.ChannelStats[5].RateHz != 3 {
		t.Errorf("rates %v: want the mean of the status messages", s.ChannelStats)
	}
	if s.Health == nil || s.Health.MissedBatches != 1 || s.Health.MissedSamples != 50 || s.Health.LinkDuring.CRCErrors != 3 {
		t.Errorf("health %+v", s.Health)
	}
	if len(s.Units) != 1 || s.Units[0].SNR != 5 {
		t.Errorf("units %+v: want unit 1 with SNR 35/7", s.Units)
	}
	if len(s.Decoders) != 3 || s.Decoders[0].Model != "good" || s.Decoders[1].Model != "noisy" || s.Decoders[2].Model != "stuck" {
		t.Fatalf("decoders %+v", s.Decoders)
	}
	g := s.Decoders[0]
	if g.BinMS != 10 || g.Outputs[0].R2 == nil || *g.Outputs[0].R2 < 0.9999 || g.Outputs[0].Bins < 190 {
		t.Errorf("good decoder %+v: want bins of 10 ms, R² 1", g)
	}
	if n := s.Decoders[1].Outputs[0]; n.R2 == nil || *n.R2 > 0 {
		t.Errorf("noisy decoder %+v: want R² < 0", n)
	}
	// A constant output has an R² but no correlation.
	if st := s.Decoders[2].Outputs[0]; st.R2 == nil || st.Corr != nil {
		t.Errorf("stuck decoder %+v: want an R², no r", st)
	}
	// The figures draw without data for some of them.
	dir := t.TempDir()
	var out strings.Builder
	if err := s.write(snapOptions{out: dir, width: 600, height: 400, dpi: 60, maxPanels: 4}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 quiet, 1 noisy, 2 silent") {
		t.Errorf("stdout %s", out.String())
	}
}

// TestSnapshotOnlyEstimates: a publisher of decoder output alone, with
// --channels naming channels nobody reported; nothing to draw but the
// decoder, and every file is still written.
func TestSnapshotOnlyEstimates(t *testing.T) {
	o := snapOptions{nats: stream.Config{Rig: "est"}, url: "nats://x", duration: time.Second, window: time.Second,
		truth: rig.BehaviourModel, channels: []int{3, 4}}
	c := newSnapCollector(o)
	for e := uint64(600); e <= 60000; e += 600 {
		c.onEstimate("est", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: 30000}, Model: "kalman",
			Names: []string{"x"}, Values: []float64{float64(e)}})
	}
	s, err := c.snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out strings.Builder
	if err := s.write(snapOptions{out: dir, width: 400, height: 300, dpi: 50, maxPanels: 4}, &out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"probe.png", "templates.png", "raster.png", "decoder.png", "health.png", "snapshot.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(out.String(), "no channels") || !strings.Contains(out.String(), "no status") {
		t.Errorf("stdout %s", out.String())
	}
}

// BenchmarkSnapshotWrite measures drawing the five figures and the JSON
// of a 256-channel rig: 512 units, 40,000 spikes in the raster, 10 s of
// decoder output and behaviour, at the default 1400×900.
//
//	go test ./cmd/spikeline -run '^$' -bench SnapshotWrite -benchtime 5x
func BenchmarkSnapshotWrite(b *testing.B) {
	const rate, nch = 30000.0, 256
	o := snapOptions{nats: stream.Config{Rig: "bench"}, url: "nats://x", duration: 10 * time.Second, window: 10 * time.Second, truth: rig.BehaviourModel}
	c := newSnapCollector(o)
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
	c.onTemplates("bench", &schema.TemplateBatch{Header: schema.Header{Flags: schema.FlagFullSnapshot, Rate: rate}, Templates: templates})
	for i := range 10 {
		c.onStatus("bench", &schema.Status{Header: schema.Header{Sample: uint64(i+1) * 30000, Rate: rate}, Uptime: time.Duration(i+1) * time.Second,
			SampleRate: rate, LatencyP50: time.Millisecond, LatencyP99: 3 * time.Millisecond, NoiseUV: noise, RateHz: rates})
	}
	for blk := range 10000 { // 1 ms blocks, 4 spikes each
		first := uint64(blk) * 30
		var sp []sort.Spike
		for k := range 4 {
			ch := (blk*4 + k) * 37 % nch
			sp = append(sp, sort.Spike{Sample: first + uint64(k), Channel: int32(ch), Unit: int32(2*ch + k%2 + 1)})
		}
		c.onSpikes("bench", &schema.SpikeBatch{Header: schema.Header{Sample: first, Rate: rate}, End: first + 30, Spikes: sp})
	}
	for e := uint64(600); e <= 300000; e += 600 {
		v := math.Sin(float64(e) / 30000)
		c.onEstimate("bench", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: rig.BehaviourModel, Names: []string{"vx", "vy"}, Values: []float64{v, -v}})
		c.onEstimate("bench", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "wiener", Names: []string{"vx", "vy"}, Values: []float64{0.8 * v, -0.7 * v}})
	}
	dir := b.TempDir()
	b.ResetTimer()
	for range b.N {
		s, err := c.snapshot(nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.write(snapOptions{out: dir, width: 1400, height: 900, dpi: 100, maxPanels: 16}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
