package main

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

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
