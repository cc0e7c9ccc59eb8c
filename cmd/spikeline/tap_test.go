package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/quality"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
)

// syncBuffer is a bytes.Buffer safe for the tap goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runTapUntilDone runs tap with args while publish keeps publishing, until
// tap exits (it has --count) or the deadline.
func runTapUntilDone(t *testing.T, args []string, publish func()) (string, string) {
	t.Helper()
	var out, errb syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runTap(ctx, args, &out, &errb) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tap: %v\nstderr: %s", err, errb.String())
			}
			return out.String(), errb.String()
		case <-tick.C:
			publish()
		case <-ctx.Done():
			t.Fatalf("tap did not finish; stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		}
	}
}

func tapPublisher(t *testing.T, url, rig string, jsonTwins bool) *stream.Publisher {
	t.Helper()
	p, err := stream.NewPublisher(context.Background(), stream.Config{URLs: []string{url}, Rig: rig, JSON: jsonTwins})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func publishAll(p *stream.Publisher) {
	p.PublishSpikes(30000, 30600, 30000, []sort.Spike{{Sample: 30012, Channel: 3, Unit: 7, Amplitude: -84.5}})
	p.PublishEstimate("ridge", decode.Estimate{End: 30600, Rate: 30000, Names: []string{"vx", "vy"}, Values: []float64{1.5, -2}})
	p.PublishStatus(&schema.Status{Header: schema.Header{Sample: 30600, Rate: 30000}, SampleRate: 30000, SpikeRate: 12,
		NoiseUV: []float32{6, 7, 8}, RateHz: []float32{1, 2, 3}})
	p.PublishLinkEvents(&device.Block{First: 30600, Rate: 30000, Events: []device.Event{{Kind: device.EventGap, Sample: 30600, Count: 40}}})
	p.PublishTemplateBatch(&schema.TemplateBatch{Header: schema.Header{Sample: 30600, Rate: 30000},
		Templates: []sort.Template{{Unit: 7, Channel: 3, Pre: 1, Waveform: []float32{0, -84, 10}, PeakUV: -84, Count: 3}},
		Quality: []quality.Unit{{ID: 7, Channel: 3, Label: quality.MUA, Metrics: quality.Metrics{NumSpikes: 3, FiringRate: 3, PresenceRatio: math.NaN(),
			SNR: 12, ISIViolationsRatio: 0, RPContamination: 0, AmplitudeCutoff: math.NaN(), AmplitudeMedian: -84.5}}}})
}

func TestTapText(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	p := tapPublisher(t, s.ClientURL(), "tapr", false)
	out, errOut := runTapUntilDone(t, []string{"--nats", s.ClientURL(), "--rig", "tapr", "--count", "25"}, func() { publishAll(p) })
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 25 {
		t.Fatalf("%d lines, want 25:\n%s", len(lines), out)
	}
	want := map[string]string{
		"spikeline.tapr.spikes":       "[30000,30600) 1.000s @30000Hz 1 spikes: ch3 u7 @30012 -84.5µV",
		"spikeline.tapr.decode.ridge": "model ridge end 30600 1.020s vx=1.5 vy=-2",
		"spikeline.tapr.status":       "3 ch noise median 7.0µV [6.0–8.0] rate mean 2.00Hz",
		"spikeline.tapr.events":       "1 events: gap at sample 30600 count 40",
		"spikeline.tapr.templates":    "changed 1 templates: u7 ch3 -84.0µV (3 samples, 3 spikes) mua 3 spikes 3.00Hz snr 12.0 isi 0 rp 0 presence NaN cutoff NaN median -84.5µV",
	}
	seen := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Fatalf("short line %q", l)
		}
		w, ok := want[f[1]]
		if !ok {
			t.Fatalf("unexpected subject in %q", l)
		}
		if !strings.Contains(l, w) || !strings.Contains(l, "| lat ") {
			t.Errorf("line %q lacks %q or latency", l, w)
		}
		seen[f[1]] = true
	}
	if len(seen) != len(want) {
		t.Errorf("saw subjects %v, want all of %v", seen, want)
	}
	if !strings.Contains(errOut, "spikeline.tapr.spikes") {
		t.Errorf("stderr does not say what is tapped: %q", errOut)
	}
}

func TestTapJSONAndTwins(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	p := tapPublisher(t, s.ClientURL(), "tapj", true)
	// Binary subject printed as JSON lines, and the JSON twin read as JSON.
	for _, subj := range []string{"spikes", "spikes.json", "spikeline.tapj.decode.*.json"} {
		out, _ := runTapUntilDone(t, []string{"--nats", s.ClientURL(), "--rig", "tapj", "--json", "--count", "3", subj}, func() { publishAll(p) })
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var rec struct {
				Subject    string
				ReceivedNS int64 `json:"received_ns"`
				Message    map[string]any
				Error      string
			}
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("%s: line %q: %v", subj, l, err)
			}
			if rec.Error != "" || rec.ReceivedNS == 0 || rec.Message["v"] != 1.0 || rec.Message["sample"] == nil || rec.Message["rate"] != 30000.0 {
				t.Errorf("%s: record %+v", subj, rec)
			}
			wantType := "spikes"
			if strings.Contains(subj, "decode") {
				wantType = "estimate"
			}
			if rec.Message["type"] != wantType {
				t.Errorf("%s: type %v, want %s", subj, rec.Message["type"], wantType)
			}
		}
	}
}

func TestTapAllRigsAndBadInput(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	pa := tapPublisher(t, s.ClientURL(), "ra", false)
	pb := tapPublisher(t, s.ClientURL(), "rb", false)
	out, _ := runTapUntilDone(t, []string{"--nats", s.ClientURL(), "--rig", "*", "--count", "20", "spikes"}, func() {
		pa.PublishSpikes(0, 10, 30000, nil)
		pb.PublishSpikes(0, 10, 30000, nil)
	})
	if !strings.Contains(out, "spikeline.ra.spikes") || !strings.Contains(out, "spikeline.rb.spikes") {
		t.Errorf("--rig '*' did not tap both rigs:\n%s", out)
	}
	// A message that is not spikeline's is reported, not fatal.
	nc := streamtest.Connect(t, s)
	out, _ = runTapUntilDone(t, []string{"--nats", s.ClientURL(), "--rig", "ra", "--count", "1", "junk"}, func() {
		nc.Publish("spikeline.ra.junk", []byte("hello, this is not a spikeline message at all"))
	})
	if !strings.Contains(out, "undecodable (45 bytes)") || !strings.Contains(out, "bad magic") {
		t.Errorf("junk message line: %q", out)
	}

	for _, args := range [][]string{
		{"--rig", "a.b"},
		{"--count", "-1"},
		{"--tls-cert", "x.pem"},
		{"--nats", "http://h:1"},
		{"--nats", "nats://h:1", "--nats-user", "u", "--nats-token", "t"},
		{"--nats-creds", "/nonexistent/user.creds", "--nats", "nats://h:1"},
		{"--jetstream"},
		{"a..b"},
		{"spikeline.x.>.y"},
		{"--bogus"},
	} {
		var stdout, stderr bytes.Buffer
		if code := realMain(append([]string{"tap"}, args...), &stdout, &stderr); code != 2 {
			t.Errorf("tap %q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}

func TestTapRedactsCredentials(t *testing.T) {
	o := streamtest.DefaultOptions()
	o.Username, o.Password = "alice", "pa55-word-xyz"
	s := streamtest.RunServer(t, o)
	url := strings.Replace(s.ClientURL(), "nats://", "nats://alice:pa55-word-xyz@", 1)
	p := tapPublisher(t, url, "sec", false)
	out, errOut := runTapUntilDone(t, []string{"--nats", url, "--rig", "sec", "--count", "1"}, func() { p.PublishSpikes(0, 1, 30000, nil) })
	if strings.Contains(out+errOut, "pa55-word-xyz") {
		t.Fatalf("password printed:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "REDACTED@") {
		t.Errorf("stderr %q does not show the redacted URL", errOut)
	}
}

func TestTapMarksMissingBatches(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	p := tapPublisher(t, s.ClientURL(), "gap", false)
	var n uint64
	out, _ := runTapUntilDone(t, []string{"--nats", s.ClientURL(), "--rig", "gap", "--count", "12", "spikes"}, func() {
		// Batches of 100 samples with every fifth one missing.
		for range 4 {
			if n%5 != 4 {
				p.PublishSpikes(n*100, (n+1)*100, 30000, nil)
			}
			n++
		}
	})
	if !strings.Contains(out, "| MISSING [") || !strings.Contains(out, ") 100 samples") {
		t.Errorf("no MISSING mark for the skipped batches:\n%s", out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(l, "MISSING") && !strings.Contains(l, "100 samples") {
			t.Errorf("wrong gap size: %s", l)
		}
	}
}

func TestNATSFlags(t *testing.T) {
	fs := newFlagSet("x", &bytes.Buffer{})
	build := natsFlags(fs)
	t.Setenv(envNATSToken, "env-token")
	if err := fs.Parse([]string{"--nats", "nats://a:4222, nats://b:4222", "--rig", "r-1", "--jetstream"}); err != nil {
		t.Fatal(err)
	}
	c, err := build()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.URLs) != 2 || c.URLs[1] != "nats://b:4222" || c.Rig != "r-1" || !c.JetStream || c.Token != "env-token" {
		t.Errorf("config = %+v", c)
	}
	fs = newFlagSet("x", &bytes.Buffer{})
	build = natsFlags(fs)
	fs.Parse(nil)
	if c, err := build(); err != nil || !c.Embedded() || c.Token != "" || c.Rig != stream.DefaultRig {
		t.Errorf("defaults: %+v, %v (the env token must not apply to the embedded server)", c, err)
	}
}

// tap --durable reads the JetStream capture and, run again with the same
// name, resumes after the last message it printed.
func TestTapDurableResumes(t *testing.T) {
	s := streamtest.RunJetStreamServer(t)
	p, err := stream.NewPublisher(context.Background(), stream.Config{URLs: []string{s.ClientURL()}, Rig: "cap", JetStream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for i := range 30 {
		p.PublishSpikes(uint64(i)*100, uint64(i+1)*100, 30000, nil)
	}
	p.Conn().Flush()
	firsts := func(out string) []string {
		var f []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			fields := strings.Fields(l)
			if len(fields) < 3 {
				t.Fatalf("line %q", l)
			}
			f = append(f, fields[2])
		}
		return f
	}
	args := []string{"--nats", s.ClientURL(), "--rig", "cap", "--durable", "tapper", "--count", "10", "spikes"}
	out1, _ := runTapUntilDone(t, args, func() {})
	out2, _ := runTapUntilDone(t, args, func() {})
	got := append(firsts(out1), firsts(out2)...)
	for i, f := range got {
		if want := fmt.Sprintf("[%d,%d)", i*100, (i+1)*100); f != want {
			t.Fatalf("message %d is %s, want %s (no resume?)\nfirst run:\n%s\nsecond run:\n%s", i, f, want, out1, out2)
		}
	}
	var stderr bytes.Buffer
	if code := realMain([]string{"tap", "--rig", "*", "--durable", "x"}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("--durable with --rig '*': exit %d, want 2", code)
	}
}
