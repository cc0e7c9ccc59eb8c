package view_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
	"github.com/spikeline/spikeline/stream/view"
)

// rig is a real nats-server, a stream.Publisher, a View subscribed
// through a stream.Client and an HTTP server serving the View.
type rig struct {
	pub  *stream.Publisher
	view *view.View
	http *httptest.Server
}

func startRig(t *testing.T, cfg view.Config) *rig {
	t.Helper()
	srv := streamtest.RunServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pub, err := stream.NewPublisher(ctx, stream.Config{URLs: []string{streamtest.URL(srv)}, Rig: cfg.Rig})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	v, err := view.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := stream.NewClient(streamtest.Connect(t, srv))
	sub, err := client.Subscribe(cfg.Rig, v.Handler(), stream.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Stop() })
	done := make(chan struct{})
	go func() { v.Run(ctx); close(done) }()
	hs := httptest.NewServer(v)
	t.Cleanup(func() { cancel(); <-done; hs.Close() })
	return &rig{pub: pub, view: v, http: hs}
}

// event is one Server-Sent Event.
type event struct {
	name string
	data string
}

// openEvents connects to /events and returns the events as they arrive.
func openEvents(t *testing.T, url string) <-chan event {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("/events Content-Type %q, want text/event-stream", ct)
	}
	ch := make(chan event, 1024)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 64<<20)
		var e event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" || e.data != "" {
					select {
					case ch <- e:
					case <-ctx.Done():
						return
					}
				}
				e = event{}
			case strings.HasPrefix(line, "event: "):
				e.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				e.data += line[len("data: "):]
			}
		}
	}()
	return ch
}

// next returns the next event named name, failing after timeout.
func next(t *testing.T, ch <-chan event, name string, timeout time.Duration) event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended while waiting for %q", name)
			}
			if e.name == name {
				return e
			}
		case <-deadline:
			t.Fatalf("no %q event within %v", name, timeout)
		}
	}
}

func decodeJSON[T any](t *testing.T, e event) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(e.data), &v); err != nil {
		t.Fatalf("%s event: %v\n%s", e.name, err, e.data)
	}
	return v
}

func TestPageServed(t *testing.T) {
	r := startRig(t, view.Config{Rig: "page"})
	resp, err := http.Get(r.http.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET / status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET / Content-Type %q", ct)
	}
	for _, want := range []string{"<!doctype html>", `new EventSource("events")`, "<canvas"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("page does not contain %q", want)
		}
	}
	// Self-contained: nothing fetched from elsewhere.
	for _, bad := range []string{"http://", "https://", "<script src", "<link "} {
		if strings.Contains(string(body), bad) {
			t.Errorf("page references %q: it must be self-contained", bad)
		}
	}
	resp, err = http.Get(r.http.URL + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nothing status %d, want 404", resp.StatusCode)
	}
	resp, err = http.Post(r.http.URL+"/events", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /events status %d, want 405", resp.StatusCode)
	}
}

// TestStreamCarriesData publishes every kind of message through a real
// nats-server and checks that the browser's event stream carries it.
func TestStreamCarriesData(t *testing.T) {
	r := startRig(t, view.Config{Rig: "lab1", FrameRate: 50})
	evs := openEvents(t, r.http.URL)
	hello := decodeJSON[view.Hello](t, next(t, evs, "hello", 5*time.Second))
	if hello.Rig != "lab1" || hello.FrameRate != 50 || hello.WindowS != 10 {
		t.Fatalf("hello %+v", hello)
	}

	const rate = 30000.0
	const batches, perBatch = 40, 7
	want := map[[2]int32]int{} // (channel, unit) -> spikes
	for b := range batches {
		first := uint64(b) * 300
		spikes := make([]sort.Spike, perBatch)
		for i := range spikes {
			s := sort.Spike{Sample: first + uint64(i*40), Channel: int32((b + i) % 32), Unit: int32(i % 4), Amplitude: -80}
			spikes[i] = s
			want[[2]int32{s.Channel, s.Unit}]++
		}
		r.pub.PublishSpikes(first, first+300, rate, spikes)
	}
	for i := range 5 {
		ok, err := r.pub.PublishEstimate("ridge", decode.Estimate{End: uint64(1500 * (i + 1)), Rate: rate,
			Names: []string{"vx", "vy"}, Values: []float64{float64(i) + 0.25, -float64(i)}})
		if !ok || err != nil {
			t.Fatalf("publish estimate: %v %v", ok, err)
		}
	}
	r.pub.PublishEstimate("truth", decode.Estimate{End: 1500, Rate: rate, Names: []string{"vx", "vy"}, Values: []float64{1, math.NaN()}})
	st := &schema.Status{Header: schema.Header{Sample: 12000, Rate: rate},
		Link:       schema.LinkStats{Frames: 400, CRCErrors: 3, Gaps: 2, LostSamples: 90},
		SampleRate: 29990, SpikeRate: 140, LatencyP50: 1500 * time.Microsecond, LatencyP99: 4 * time.Millisecond,
		NoiseUV: []float32{5.5, 6.25, 7}, RateHz: []float32{1, 2, 3.5}, Threshold: 4.5}
	if _, err := r.pub.PublishStatus(st); err != nil {
		t.Fatal(err)
	}
	r.pub.PublishEvents(12000, rate, []schema.Event{
		stream.LinkEvent(device.Event{Kind: device.EventGap, Sample: 6000, Count: 90}),
		{Kind: schema.EventTemplateAdded, Sample: 7000, Unit: 3, Channel: 5},
	})
	if _, err := r.pub.PublishTemplates(7000, rate, []sort.Template{
		{Unit: 3, Channel: 5, Pre: 1, Waveform: []float32{0, -50, 20}, PeakUV: -50, Count: 12},
		{Unit: 4, Channel: 2, Pre: 1, Waveform: []float32{0, -70, 10}, PeakUV: -70, Count: 30},
	}, true); err != nil {
		t.Fatal(err)
	}

	got := map[[2]int32]int{}
	var nSpikes, nSeen uint64
	est := map[string][][]view.Num{}
	var status *view.StatusJSON
	var events []view.EventJSON
	var templates *view.TemplatesJSON
	deadline := time.After(10 * time.Second)
	for nSpikes < batches*perBatch || len(est["ridge"]) < 5 || len(est["truth"]) < 1 || status == nil || len(events) < 2 || templates == nil {
		var e event
		select {
		case e = <-evs:
		case <-deadline:
			t.Fatalf("timed out: spikes %d/%d, ridge %d, truth %d, status %v, events %d, templates %v",
				nSpikes, batches*perBatch, len(est["ridge"]), len(est["truth"]), status != nil, len(events), templates != nil)
		}
		switch e.name {
		case "frame":
			f := decodeJSON[view.Frame](t, e)
			if f.Rate != rate {
				t.Errorf("frame rate %g", f.Rate)
			}
			if s := f.Spikes; s != nil {
				if len(s.Offset) != len(s.Channel) || len(s.Offset) != len(s.Unit) || uint64(len(s.Offset)) != s.N {
					t.Fatalf("frame spikes: %d offsets, %d channels, %d units, n %d", len(s.Offset), len(s.Channel), len(s.Unit), s.N)
				}
				for i := range s.Offset {
					sample := s.Base + s.Offset[i]
					if sample < s.First || sample >= s.End {
						t.Errorf("spike at %d outside the frame's [%d, %d)", sample, s.First, s.End)
					}
					got[[2]int32{s.Channel[i], s.Unit[i]}]++
				}
				nSpikes += s.N
				nSeen += uint64(len(s.Offset))
			}
			for _, es := range f.Estimates {
				if es.Truth != (es.Model == "truth") {
					t.Errorf("model %s: truth %v", es.Model, es.Truth)
				}
				if len(es.Names) != 2 || es.Names[0] != "vx" || es.Names[1] != "vy" {
					t.Errorf("model %s names %v", es.Model, es.Names)
				}
				est[es.Model] = append(est[es.Model], es.Values...)
			}
			if f.Status != nil {
				status = f.Status
			}
			events = append(events, f.Events...)
		case "templates":
			templates = new(decodeJSON[view.TemplatesJSON](t, e))
		}
	}
	if nSpikes != batches*perBatch || nSeen != nSpikes {
		t.Errorf("spikes: %d in frames, %d listed, want %d", nSpikes, nSeen, batches*perBatch)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("channel %d unit %d: %d spikes, want %d", k[0], k[1], got[k], n)
		}
	}
	for i, vals := range est["ridge"] {
		if float64(vals[0]) != float64(i)+0.25 || float64(vals[1]) != -float64(i) {
			t.Errorf("ridge estimate %d: %v", i, vals)
		}
	}
	if tv := est["truth"][0]; tv[0] != 1 || !math.IsNaN(float64(tv[1])) {
		t.Errorf("truth estimate %v, want [1 NaN]", tv)
	}
	if status.Sample != 12000 || status.Link.CRCErrors != 3 || status.Link.Gaps != 2 || status.Link.LostSamples != 90 ||
		status.Throughput != 29990 || status.LatencyP50Ms != 1.5 || status.LatencyP99Ms != 4 || status.Threshold != 4.5 {
		t.Errorf("status %+v", status)
	}
	if len(status.NoiseUV) != 3 || status.NoiseUV[1] != 6.25 || status.RateHz[2] != 3.5 {
		t.Errorf("status noise %v rates %v", status.NoiseUV, status.RateHz)
	}
	if events[0].Kind != "gap" || events[0].Count != 90 || events[1].Kind != "template_added" || events[1].Unit != 3 || events[1].ID <= events[0].ID {
		t.Errorf("events %+v", events)
	}
	if templates.Total != 2 || len(templates.Units) != 2 || templates.Units[0].Unit != 4 || templates.Units[1].Waveform[1] != -50 {
		t.Errorf("templates %+v", templates)
	}

	// Pipeline info from the control service goes to connected browsers
	// and to those that connect later.
	r.view.SetInfo(stream.Info{Rig: "lab1", Device: "sim", Channels: 32, Rate: rate, Models: []string{"ridge"}})
	if info := decodeJSON[stream.Info](t, next(t, evs, "info", 5*time.Second)); info.Channels != 32 || info.Device != "sim" {
		t.Errorf("info event %+v", info)
	}

	// A browser that connects now gets the state and the recent frames.
	late := openEvents(t, r.http.URL)
	h := decodeJSON[view.Hello](t, next(t, late, "hello", 5*time.Second))
	if h.Info == nil || h.Info.Channels != 32 {
		t.Errorf("late hello info %+v", h.Info)
	}
	if h.Rate != rate || h.Status == nil || h.Status.Sample != 12000 || h.Templates == nil || len(h.Templates.Units) != 2 || len(h.Events) != 2 {
		t.Errorf("late hello: rate %g status %v templates %v events %d", h.Rate, h.Status != nil, h.Templates != nil, len(h.Events))
	}
	var replayed uint64
	for replayed < batches*perBatch {
		f := decodeJSON[view.Frame](t, next(t, late, "frame", 5*time.Second))
		if f.Spikes != nil {
			replayed += f.Spikes.N
		}
	}
	if replayed != batches*perBatch {
		t.Errorf("late browser replayed %d spikes, want %d", replayed, batches*perBatch)
	}

	// Removing a unit's template by event updates the templates.
	r.pub.PublishEvents(13000, rate, []schema.Event{{Kind: schema.EventTemplateRemoved, Sample: 13000, Unit: 4, Channel: 2}})
	tp := decodeJSON[view.TemplatesJSON](t, next(t, evs, "templates", 5*time.Second))
	if tp.Total != 1 || tp.Units[0].Unit != 3 {
		t.Errorf("after removal: %+v", tp)
	}
	s := r.view.Stats()
	if s.Spikes != batches*perBatch || s.Estimates != 6 || s.Statuses != 1 || s.Templates != 1 || s.Clients != 2 || s.Undecodable != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestSpikeSampling checks that a frame with more spikes than
// MaxSpikesPerFrame carries a sample of them and their true count.
func TestSpikeSampling(t *testing.T) {
	r := startRig(t, view.Config{Rig: "big", MaxSpikesPerFrame: 100, FrameRate: 10})
	evs := openEvents(t, r.http.URL)
	next(t, evs, "hello", 5*time.Second)
	spikes := make([]sort.Spike, 5000)
	for i := range spikes {
		spikes[i] = sort.Spike{Sample: uint64(i), Channel: int32(i % 1024), Unit: 1}
	}
	r.pub.PublishSpikes(0, 5000, 30000, spikes)
	var n, listed uint64
	for n < 5000 {
		f := decodeJSON[view.Frame](t, next(t, evs, "frame", 5*time.Second))
		if f.Spikes == nil {
			continue
		}
		if len(f.Spikes.Offset) > 100 {
			t.Fatalf("frame lists %d spikes, cap 100", len(f.Spikes.Offset))
		}
		n += f.Spikes.N
		listed += uint64(len(f.Spikes.Offset))
		if f.View.SpikesSampled != f.View.Spikes-listed {
			t.Errorf("view counters: %d spikes, %d sampled out, %d listed", f.View.Spikes, f.View.SpikesSampled, listed)
		}
	}
	if n != 5000 || listed != 100 {
		t.Errorf("%d spikes counted, %d listed; want 5000 and 100", n, listed)
	}
}

// TestUndecodable checks that garbage on a rig subject is counted and
// logged, not fatal.
func TestUndecodable(t *testing.T) {
	r := startRig(t, view.Config{Rig: "junk"})
	evs := openEvents(t, r.http.URL)
	next(t, evs, "hello", 5*time.Second)
	if err := r.pub.Conn().Publish("spikeline.junk.spikes", []byte("not a message")); err != nil {
		t.Fatal(err)
	}
	for {
		f := decodeJSON[view.Frame](t, next(t, evs, "frame", 5*time.Second))
		if len(f.Events) == 0 {
			continue
		}
		e := f.Events[0]
		if e.Kind != "undecodable" || e.Source != "view" || !strings.Contains(e.Text, "spikeline.junk.spikes") || f.View.Undecodable != 1 {
			t.Errorf("event %+v, undecodable %d", e, f.View.Undecodable)
		}
		return
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  view.Config
		want string
	}{
		{view.Config{}, "rig"},
		{view.Config{Rig: "a.b"}, "rig"},
		{view.Config{Rig: "r", FrameRate: 500}, "frame rate"},
		{view.Config{Rig: "r", Window: time.Millisecond}, "window"},
		{view.Config{Rig: "r", MaxSpikesPerFrame: -1}, "max spikes"},
		{view.Config{Rig: "r", Truth: []string{"a b"}}, "truth"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one about %q", tc.cfg, err, tc.want)
		}
	}
	if err := (view.Config{Rig: "r"}).Validate(); err != nil {
		t.Errorf("zero config with a rig: %v", err)
	}
}

func TestLoopbackHosts(t *testing.T) {
	r := startRig(t, view.Config{Rig: "hosts"})
	hs := httptest.NewServer(view.LoopbackHosts(r.view))
	defer hs.Close()
	for host, want := range map[string]int{"": 200, "localhost:8080": 200, "[::1]:8080": 200, "127.0.0.1": 200, "evil.example:8080": 421} {
		req, _ := http.NewRequest("GET", hs.URL+"/", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: status %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// The event streams are capped at MaxBrowsers: one more is answered 503
// with the reason; a place freed is taken again.
func TestMaxBrowsers(t *testing.T) {
	r := startRig(t, view.Config{Rig: "cap", MaxBrowsers: 2})
	first := openEvents(t, r.http.URL)
	next(t, first, "hello", 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", r.http.URL+"/events", nil)
	second, err := http.DefaultClient.Do(req)
	if err != nil || second.StatusCode != 200 {
		t.Fatalf("second browser: %v %v", second.StatusCode, err)
	}
	resp, err := http.Get(r.http.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "2 browsers are already connected") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third browser: %d %q, want 503 saying why", resp.StatusCode, body)
	}
	cancel()
	second.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(r.http.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.HasPrefix(string(b), "ok 1 browsers") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second browser's place was not freed: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	third := openEvents(t, r.http.URL)
	next(t, third, "hello", 5*time.Second)
}
