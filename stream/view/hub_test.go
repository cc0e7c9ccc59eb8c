package view

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// TestSlowBrowser checks that a browser that does not read loses frames
// (counted) while the view and the other browsers go on.
func TestSlowBrowser(t *testing.T) {
	v, err := New(Config{Rig: "slow", ClientQueue: 4})
	if err != nil {
		t.Fatal(err)
	}
	stuck, _, err := v.hub.join()
	if err != nil {
		t.Fatal(err)
	}
	reader, _, _ := v.hub.join()
	got := 0
	now := time.Now()
	for i := range 20 {
		v.AddSpikes(&schema.SpikeBatch{Header: schema.Header{Sample: uint64(i) * 30, Rate: 30000}, End: uint64(i+1) * 30,
			Spikes: []sort.Spike{{Sample: uint64(i) * 30, Channel: 1, Unit: 1}}})
		done := make(chan struct{})
		go func() { v.step(now.Add(time.Duration(i)*40*time.Millisecond), false, false); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("building a frame blocked on a browser that does not read")
		}
		for len(reader.ch) > 0 {
			<-reader.ch
			got++
		}
	}
	if got != 20 {
		t.Errorf("reading browser got %d frames, want 20", got)
	}
	if d := stuck.dropped.Load(); d != 16 {
		t.Errorf("stuck browser: %d frames dropped, want 16 (20 - queue of 4)", d)
	}
	if s := v.Stats(); s.ClientDrops != 16 || s.Clients != 2 || s.Frames != 20 {
		t.Errorf("stats %+v", s)
	}
	v.hub.leave(stuck)
	v.hub.leave(reader)
	if n := v.hub.count(); n != 0 {
		t.Errorf("%d browsers after both left", n)
	}
}

// TestReplayWindow checks that only the frames of the last Window are
// kept for browsers that connect later, and that the events log is
// bounded.
func TestReplayWindow(t *testing.T) {
	v, err := New(Config{Rig: "replay", Window: 2 * time.Second, MaxEvents: 5})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for i := range 100 { // 100 frames, 100 ms apart: 10 s
		v.AddSpikes(&schema.SpikeBatch{Header: schema.Header{Sample: uint64(i) * 3000, Rate: 30000}, End: uint64(i+1) * 3000})
		v.AddEvents(&schema.EventBatch{Events: []schema.Event{{Kind: schema.EventKind(3), Sample: uint64(i), Unit: -1, Channel: -1}}})
		v.step(t0.Add(time.Duration(i)*100*time.Millisecond), false, false)
	}
	_, first, err := v.hub.join()
	if err != nil {
		t.Fatal(err)
	}
	// hello + the frames of the last 2 s (21 frames: 7.9 s to 9.9 s inclusive).
	if n := len(first) - 1; n < 20 || n > 21 {
		t.Errorf("replayed %d frames, want the 2 s window (20-21)", n)
	}
	var h Hello
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.SplitN(string(first[0]), "data: ", 2)[1], "\n\n")), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != 5 || h.Events[4].Sample != 99 || h.Events[0].Sample != 95 {
		t.Errorf("events log: %d events, want the last 5", len(h.Events))
	}
}

// TestNumJSON checks the number encoding: NaN and infinities are null,
// values keep five significant digits.
func TestNumJSON(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{{1.5, "1.5"}, {-2, "-2"}, {0.000123456, "0.00012346"}, {30000, "30000"}, {123456789, "1.2346e+08"}} {
		b, _ := json.Marshal(Num(tc.in))
		if string(b) != tc.want {
			t.Errorf("Num(%g) = %s, want %s", tc.in, b, tc.want)
		}
	}
	b, err := json.Marshal([]Num{Num(nan()), Num(inf())})
	if err != nil || string(b) != "[null,null]" {
		t.Errorf("NaN, Inf: %s %v", b, err)
	}
}

func nan() float64 { z := 0.0; return z / z }
func inf() float64 { z := 0.0; return 1 / z }

// benchRig feeds a View what a 1,024-channel rig publishes in one frame
// period (40 ms at 25 frames/s): 40 spike batches of 1 ms with spikes at
// rate Hz per channel, two decoder estimates and, every 25th frame, a
// status with 1,024 noise and rate values.
type benchRig struct {
	v        *View
	batches  []schema.SpikeBatch
	status   schema.Status
	spikes   int
	channels int
}

func newBenchRig(b *testing.B, channels int, rate float64) *benchRig {
	v, err := New(Config{Rig: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	r := &benchRig{v: v, channels: channels}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		m := schema.SpikeBatch{Header: schema.Header{Sample: uint64(i) * 30, Rate: 30000}, End: uint64(i+1) * 30}
		n := int(float64(channels)*rate/1000 + rng.Float64())
		for range n {
			m.Spikes = append(m.Spikes, sort.Spike{Sample: m.Sample + uint64(rng.IntN(30)), Channel: int32(rng.IntN(channels)), Unit: int32(rng.IntN(4 * channels)), Amplitude: -60})
		}
		r.spikes += n
		r.batches = append(r.batches, m)
	}
	r.status = schema.Status{Header: schema.Header{Rate: 30000}, NoiseUV: make([]float32, channels), RateHz: make([]float32, channels)}
	for c := range channels {
		r.status.NoiseUV[c] = 6 + rng.Float32()*3
		r.status.RateHz[c] = rng.Float32() * 20
	}
	return r
}

func (r *benchRig) frame(i int, now time.Time) {
	for j := range r.batches {
		m := &r.batches[j]
		m.Sample += 1200
		m.End += 1200
		r.v.AddSpikes(m)
	}
	for k := range 2 {
		r.v.AddEstimate(&schema.EstimateMsg{Header: schema.Header{Sample: uint64(i)*1200 + uint64(k)*600, Rate: 30000},
			Model: "wiener", Names: []string{"vx", "vy"}, Values: []float64{1.25, -3.5}})
	}
	if i%25 == 0 {
		r.v.AddStatus(&r.status)
	}
	r.v.step(now, false, false)
}

// BenchmarkFrame measures the view's work per frame for a 1,024-channel
// rig firing 10 spikes/s per channel (about 410 spikes a frame) with one
// browser connected: ingest, build, JSON encoding and fan-out. The
// frame_bytes metric is the size sent to each browser.
func BenchmarkFrame(b *testing.B) {
	for _, bc := range []struct {
		name     string
		channels int
		rate     float64
	}{{"ch1024_10Hz", 1024, 10}, {"ch1024_100Hz", 1024, 100}, {"ch64_10Hz", 64, 10}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newBenchRig(b, bc.channels, bc.rate)
			c, _, _ := r.v.hub.join()
			var bytes int
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				r.frame(i, now.Add(time.Duration(i)*40*time.Millisecond))
				for len(c.ch) > 0 {
					bytes += len(<-c.ch)
				}
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "frame_bytes")
			b.ReportMetric(float64(r.spikes), "spikes/frame")
		})
	}
}

// BenchmarkAddSpikes measures the NATS-callback side alone: the cost per
// spike of handing a batch to the view.
func BenchmarkAddSpikes(b *testing.B) {
	r := newBenchRig(b, 1024, 10)
	m := &r.batches[0]
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r.v.AddSpikes(m)
		if i%40 == 39 {
			r.v.mu.Lock()
			r.v.cur.reset()
			r.v.mu.Unlock()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*max(1, len(m.Spikes))), "ns/spike")
}

// TestSilentRigAndReset checks that the recent past stays available after
// the rig goes silent (heartbeats do not push it out) and that a device
// reset (counter back to 0) restarts the view's clock.
func TestSilentRigAndReset(t *testing.T) {
	v, err := New(Config{Rig: "reset", Window: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	const start = 10_000_000
	for i := range 10 {
		v.AddSpikes(&schema.SpikeBatch{Header: schema.Header{Sample: start + uint64(i)*3000, Rate: 30000}, End: start + uint64(i+1)*3000,
			Spikes: []sort.Spike{{Sample: start + uint64(i)*3000, Channel: 0, Unit: 1}}})
		v.step(t0.Add(time.Duration(i)*100*time.Millisecond), false, false)
	}
	for i := range 60 { // a minute of heartbeats, no data
		v.step(t0.Add(time.Second+time.Duration(i)*time.Second), true, false)
	}
	_, first, _ := v.hub.join()
	if n := len(first) - 1; n != 10 {
		t.Errorf("after a silent minute %d frames kept, want the 10 of the last window", n)
	}
	// The device restarts its counter.
	v.AddSpikes(&schema.SpikeBatch{Header: schema.Header{Sample: 0, Rate: 30000}, End: 3000,
		Spikes: []sort.Spike{{Sample: 100, Channel: 0, Unit: 1}}})
	c, _, _ := v.hub.join()
	v.step(t0.Add(2*time.Minute), false, false)
	msg := string(<-c.ch)
	var f Frame
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.SplitN(msg, "data: ", 2)[1], "\n\n")), &f); err != nil {
		t.Fatal(err)
	}
	if f.Sample != 3000 || f.Spikes == nil || f.Spikes.Base != 100 {
		t.Errorf("after reset: frame sample %d spikes %+v, want sample 3000 and the spike at 100", f.Sample, f.Spikes)
	}
	if _, first, _ = v.hub.join(); len(first)-1 != 1 {
		t.Errorf("after reset %d frames kept, want only the new one", len(first)-1)
	}
}

// TestHeartbeat checks that frames without data are sent only as the
// once-a-second heartbeat, also after a decoder stopped publishing.
func TestHeartbeat(t *testing.T) {
	v, err := New(Config{Rig: "hb"})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := v.hub.join()
	now := time.Now()
	v.AddEstimate(&schema.EstimateMsg{Header: schema.Header{Sample: 600, Rate: 30000}, Model: "wiener", Names: []string{"vx"}, Values: []float64{1}})
	if sent, _ := v.step(now, false, false); !sent {
		t.Fatal("frame with an estimate not sent")
	}
	for i := range 10 {
		if sent, _ := v.step(now.Add(time.Duration(i+1)*40*time.Millisecond), false, false); sent {
			t.Fatalf("empty frame %d sent without force", i)
		}
	}
	if sent, _ := v.step(now.Add(time.Second), true, false); !sent {
		t.Fatal("heartbeat not sent")
	}
	if n := len(c.ch); n != 2 {
		t.Errorf("%d frames queued, want 2 (data, heartbeat)", n)
	}
}

// TestLagEvent checks that a browser is told, on its event stream, how
// many frames it missed.
func TestLagEvent(t *testing.T) {
	v, err := New(Config{Rig: "lag"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(v)
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	until := func(prefix string) string {
		t.Helper()
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				return sc.Text()
			}
		}
		t.Fatalf("stream ended before %q", prefix)
		return ""
	}
	until("event: hello")
	// Pretend the browser missed 7 frames, then send one.
	for v.hub.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	v.hub.mu.Lock()
	for c := range v.hub.clients {
		c.dropped.Add(7)
	}
	v.hub.mu.Unlock()
	v.step(time.Now(), true, false)
	until("event: frame")
	until("event: lag")
	if d := until("data: "); d != `data: {"dropped":7}` {
		t.Errorf("lag data %q", d)
	}
}
