package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/streamtest"
)

func newTestPublisher(t *testing.T, cfg Config) *Publisher {
	t.Helper()
	p, err := NewPublisher(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// collector gathers decoded messages from a Handler.
type collector struct {
	mu     sync.Mutex
	spikes []*schema.SpikeBatch
	est    []*schema.EstimateMsg
	status []*schema.Status
	events []*schema.EventBatch
	tmpl   []*schema.TemplateBatch
	raw    []*schema.RawBlock
	errs   []error
	ch     chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1<<16)} }

func (c *collector) note() {
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) handler() Handler {
	return Handler{
		Spikes: func(rig string, m *schema.SpikeBatch) {
			c.mu.Lock()
			c.spikes = append(c.spikes, m)
			c.mu.Unlock()
			c.note()
		},
		Estimate: func(rig string, m *schema.EstimateMsg) {
			c.mu.Lock()
			c.est = append(c.est, m)
			c.mu.Unlock()
			c.note()
		},
		Status: func(rig string, m *schema.Status) {
			c.mu.Lock()
			c.status = append(c.status, m)
			c.mu.Unlock()
			c.note()
		},
		Events: func(rig string, m *schema.EventBatch) {
			c.mu.Lock()
			c.events = append(c.events, m)
			c.mu.Unlock()
			c.note()
		},
		Templates: func(rig string, m *schema.TemplateBatch) {
			c.mu.Lock()
			c.tmpl = append(c.tmpl, m)
			c.mu.Unlock()
			c.note()
		},
		Raw: func(rig, group string, m *schema.RawBlock) {
			c.mu.Lock()
			c.raw = append(c.raw, m)
			c.mu.Unlock()
			c.note()
		},
		Error: func(subject string, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
			c.note()
		},
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *collector) nSpikes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spikes)
}

func TestPublisherAllTypes(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	p := newTestPublisher(t, Config{URLs: []string{s.ClientURL()}, Rig: "rigA", JSON: true})
	cl := NewClient(streamtest.Connect(t, s))
	bin, json := newCollector(), newCollector()
	if _, err := cl.Subscribe("rigA", bin.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Subscribe("*", json.handler(), SubscribeOptions{JSON: true}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixNano()
	spikes := []sort.Spike{{Sample: 1010, Channel: 2, Unit: 3, Amplitude: -70}}
	if !p.PublishSpikes(1000, 1600, 30000, spikes) {
		t.Fatal("spikes dropped")
	}
	spikes[0].Unit = 99 // the publisher copied
	if ok, err := p.PublishEstimate("kalman", decode.Estimate{End: 1600, Rate: 30000, Names: []string{"vx", "vy"}, Values: []float64{1, 2}}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := p.PublishEstimate("bad.model", decode.Estimate{}); err == nil {
		t.Fatal("bad model name accepted")
	}
	if ok, err := p.PublishStatus(&schema.Status{Header: schema.Header{Sample: 1600, Rate: 30000}, NoiseUV: []float32{5}, RateHz: []float32{2}}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	blk := device.Block{First: 1600, Rate: 30000, Channels: 3, Gain: 0.195, Samples: []int16{1, 2, 3, 4, 5, 6},
		Events: []device.Event{{Kind: device.EventGap, Sample: 1600, Count: 30}}}
	if !p.PublishLinkEvents(&blk) {
		t.Fatal("events dropped")
	}
	if ok, err := p.PublishTemplates(1600, 30000, []sort.Template{{Unit: 3, Channel: 2, Pre: 1, Waveform: []float32{0, -70, 10}, PeakUV: -70, Count: 9}}, true); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := p.PublishRaw("g1", &blk, 1, 2, false); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := p.PublishRaw("g1", &blk, 2, 2, false); err == nil {
		t.Fatal("raw group outside block accepted")
	}
	for _, c := range []*collector{bin, json} {
		waitFor(t, 5*time.Second, "all six message types", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.spikes) == 1 && len(c.est) == 1 && len(c.status) == 1 && len(c.events) == 1 && len(c.tmpl) == 1 && len(c.raw) == 1
		})
		c.mu.Lock()
		if len(c.errs) > 0 {
			t.Errorf("decode errors: %v", c.errs)
		}
		sb := c.spikes[0]
		if sb.Sample != 1000 || sb.End != 1600 || sb.Rate != 30000 || len(sb.Spikes) != 1 || sb.Spikes[0].Unit != 3 {
			t.Errorf("spikes = %+v", sb)
		}
		if sb.Published < before || sb.Published > time.Now().UnixNano() {
			t.Errorf("publish time %d not stamped (test started %d)", sb.Published, before)
		}
		if e := c.est[0]; e.Model != "kalman" || e.Sample != 1600 || e.Values[1] != 2 || e.Names[0] != "vx" {
			t.Errorf("estimate = %+v", e)
		}
		if st := c.status[0]; len(st.NoiseUV) != 1 || st.RateHz[0] != 2 {
			t.Errorf("status = %+v", st)
		}
		if ev := c.events[0].Events; len(ev) != 1 || ev[0].Kind != schema.EventKind(device.EventGap) || ev[0].Count != 30 {
			t.Errorf("events = %+v", ev)
		}
		if tb := c.tmpl[0]; !tb.Full() || tb.Templates[0].Waveform[1] != -70 {
			t.Errorf("templates = %+v", tb)
		}
		if r := c.raw[0]; r.Channels != 2 || r.FirstChannel != 1 || r.Gain != 0.195 || len(r.Samples) != 4 ||
			r.Samples[0] != 2 || r.Samples[1] != 3 || r.Samples[2] != 5 || r.Samples[3] != 6 {
			t.Errorf("raw = %+v", r)
		}
		c.mu.Unlock()
	}
	if st := p.Stats(); st.Sent != 6 || st.Dropped != 0 || st.Errors != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestPublisherEmbeddedServer(t *testing.T) {
	p := newTestPublisher(t, Config{Port: -1})
	if p.ServerURL() == "" || !strings.HasPrefix(p.ServerURL(), "nats://127.0.0.1:") {
		t.Fatalf("embedded server URL = %q, want loopback", p.ServerURL())
	}
	nc, err := nats.Connect(p.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := newCollector()
	if _, err := NewClient(nc).Subscribe(DefaultRig, c.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	p.PublishSpikes(0, 100, 20000, nil)
	waitFor(t, 5*time.Second, "spikes from the embedded server", func() bool { return c.nSpikes() == 1 })
}

func TestServerDefaultPortFallback(t *testing.T) {
	a, err := StartServer(ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := StartServer(ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if a.Port() == b.Port() {
		t.Fatalf("two servers on port %d", a.Port())
	}
	if a.Port() != DefaultPort && b.Port() != DefaultPort {
		t.Logf("port %d was taken by something else; both fell back (%d, %d)", DefaultPort, a.Port(), b.Port())
	}
	if _, err := StartServer(ServerConfig{Port: a.Port()}); err == nil {
		t.Fatal("explicit taken port accepted")
	}
}

// With the server gone mid-run, publishing never blocks and what cannot be
// sent is counted; after the server comes back publishing resumes.
func TestPublisherServerDownNeverBlocks(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	p := newTestPublisher(t, Config{URLs: []string{s.ClientURL()}, Rig: "r1", QueueLen: 64,
		ReconnectBufSize: 32 << 10, ReconnectWait: 20 * time.Millisecond})
	subConn := streamtest.Connect(t, s, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	c := newCollector()
	if _, err := NewClient(subConn).Subscribe("r1", c.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	spikes := make([]sort.Spike, 50)
	p.PublishSpikes(0, 600, 30000, spikes)
	waitFor(t, 5*time.Second, "first batch", func() bool { return c.nSpikes() == 1 })

	streamtest.Shutdown(s)
	waitFor(t, 5*time.Second, "publisher to see the disconnect", func() bool { return !p.Stats().Connected })

	const n = 20000
	done := make(chan int)
	go func() {
		ok := 0
		for i := range n {
			if p.PublishSpikes(uint64(i+1)*600, uint64(i+2)*600, 30000, spikes) {
				ok++
			}
		}
		done <- ok
	}()
	var accepted int
	select {
	case accepted = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("PublishSpikes blocked with the server down")
	}
	// Let the queue drain into the (full) reconnect buffer.
	waitFor(t, 5*time.Second, "queue to drain", func() bool { return p.Stats().Queued == 0 })
	st := p.Stats()
	lost := st.Dropped + st.Errors
	t.Logf("server down: %d of %d accepted into the queue; dropped %d (queue full), refused %d (reconnect buffer full)", accepted, n, st.Dropped, st.Errors)
	if st.Dropped != uint64(n-accepted) {
		t.Errorf("Dropped = %d, want %d (calls that returned false)", st.Dropped, n-accepted)
	}
	if lost == 0 {
		t.Fatal("nothing counted as lost although the server was down and the reconnect buffer holds ~30 batches")
	}

	s2 := streamtest.Restart(t, s)
	_ = s2
	waitFor(t, 10*time.Second, "publisher to reconnect", func() bool { return p.Stats().Connected })
	waitFor(t, 10*time.Second, "subscriber to reconnect", func() bool { return subConn.IsConnected() })
	if err := subConn.Flush(); err != nil {
		t.Fatal(err)
	}
	// Batches buffered while down arrive; new batches too.
	const mark = 1 << 40
	waitFor(t, 10*time.Second, "a batch published after the restart", func() bool {
		p.PublishSpikes(mark, mark+600, 30000, nil)
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, b := range c.spikes {
			if b.Sample == mark {
				return true
			}
		}
		return false
	})
	st2 := p.Stats()
	if st2.Reconnects == 0 {
		t.Errorf("Reconnects = 0 after restart")
	}
	var status schema.Status
	p.PublishStatus(&status)
	if status.PublishDropped != st2.Dropped || status.PublishErrors != st2.Errors || status.Reconnects == 0 {
		t.Errorf("status counters %+v do not show drops %+v", status, st2)
	}
}

func TestPublisherCloseDrains(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	p, err := NewPublisher(context.Background(), Config{URLs: []string{s.ClientURL()}, QueueLen: 10000})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	if _, err := NewClient(streamtest.Connect(t, s)).Subscribe(DefaultRig, c.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := range n {
		if !p.PublishSpikes(uint64(i)*10, uint64(i+1)*10, 30000, []sort.Spike{{Sample: uint64(i) * 10}}) {
			t.Fatalf("batch %d dropped with a 10000 queue", i)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.PublishSpikes(0, 1, 1, nil) {
		t.Error("publish after Close accepted")
	}
	waitFor(t, 10*time.Second, "all batches after Close", func() bool { return c.nSpikes() == n })
	for i, b := range c.spikes {
		if b.Sample != uint64(i)*10 {
			t.Fatalf("batch %d has first sample %d: out of order", i, b.Sample)
		}
	}
}

// Credentials never reach the logs: not the password of a URL, not a token,
// not a password given as an option.
func TestConfigCredentialsRedacted(t *testing.T) {
	const user, pass, token = "alice", "hunter2-secret", "tok-3f9a8c7d"
	for _, tc := range []struct {
		name string
		opts func(*server.Options)
		cfg  func(url string) Config
	}{
		{"url userinfo", func(o *server.Options) { o.Username, o.Password = user, pass },
			func(u string) Config {
				return Config{URLs: []string{strings.Replace(u, "nats://", "nats://"+user+":"+pass+"@", 1)}}
			}},
		{"user option", func(o *server.Options) { o.Username, o.Password = user, pass },
			func(u string) Config { return Config{URLs: []string{u}, User: user, Password: pass} }},
		{"token option", func(o *server.Options) { o.Authorization = token },
			func(u string) Config { return Config{URLs: []string{u}, Token: token} }},
		{"token in url", func(o *server.Options) { o.Authorization = token },
			func(u string) Config {
				return Config{URLs: []string{strings.Replace(u, "nats://", "nats://"+token+"@", 1)}}
			}},
		{"wrong password", func(o *server.Options) { o.Username, o.Password = user, "other" },
			func(u string) Config { return Config{URLs: []string{u}, User: user, Password: pass} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := streamtest.DefaultOptions()
			tc.opts(o)
			s := streamtest.RunServer(t, o)
			var logs lockedBuffer
			cfg := tc.cfg(s.ClientURL())
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			cfg.ReconnectWait = 10 * time.Millisecond
			p, err := NewPublisher(context.Background(), cfg)
			if err != nil {
				if strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), token) {
					t.Fatalf("error shows a credential: %v", err)
				}
				return
			}
			p.PublishSpikes(0, 1, 1, nil)
			streamtest.Shutdown(s)
			time.Sleep(100 * time.Millisecond)
			p.Close(context.Background())
			cfg.Logger.Info("config", "config", cfg)
			out := logs.String()
			if !strings.Contains(out, "REDACTED") && !strings.Contains(out, "redacted") && tc.name != "wrong password" {
				t.Errorf("logs show no sign of redaction:\n%s", out)
			}
			for _, secret := range []string{pass, token} {
				if strings.Contains(out, secret) {
					t.Fatalf("logs contain credential %q:\n%s", secret, out)
				}
			}
		})
	}
	if got := RedactURL("nats://" + user + ":" + pass + "@host:4222"); got != "nats://REDACTED@host:4222" {
		t.Errorf("RedactURL = %q", got)
	}
	if got := RedactURL("nats://host:4222"); got != "nats://host:4222" {
		t.Errorf("RedactURL without userinfo = %q", got)
	}
	if err := (&Config{URLs: []string{"http://" + user + ":" + pass + "@h"}}).Validate(); err == nil || strings.Contains(err.Error(), pass) {
		t.Errorf("Validate of a bad URL: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Rig: "a.b"},
		{Rig: "*"},
		{URLs: []string{"nats://h"}, User: "u", Token: "t"},
		{URLs: []string{"nats://h"}, Password: "p"},
		{URLs: []string{"nats://h"}, TLSCert: "c"},
		{URLs: []string{"nats://h"}, CredsFile: "/nonexistent/creds"},
		{Token: "t"}, // credentials with the embedded server
		{URLs: []string{"nats://"}},
		{Port: 70000},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid, want error", c)
		}
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer for loggers written from NATS goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// With ConnectTimeout < 0, a publisher started before its NATS server (the
// server comes up later) starts anyway, never blocks, and delivers once
// the server is there.
func TestPublisherServerLate(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	p := newTestPublisher(t, Config{URLs: []string{url}, Rig: "late", QueueLen: 16, ReconnectWait: 20 * time.Millisecond, ConnectTimeout: -1})
	done := make(chan struct{})
	go func() {
		for i := range 5000 {
			p.PublishSpikes(uint64(i)*10, uint64(i+1)*10, 30000, nil)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("PublishSpikes blocked with no server")
	}
	if st := p.Stats(); st.Connected || st.Dropped == 0 {
		t.Fatalf("stats with no server: %+v", st)
	}
	o := streamtest.DefaultOptions()
	o.Port = port
	s := streamtest.RunServer(t, o)
	c := newCollector()
	if _, err := NewClient(streamtest.Connect(t, s)).Subscribe("late", c.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "spikes once the server is up", func() bool {
		p.PublishSpikes(1<<40, 1<<40+10, 30000, nil)
		return c.nSpikes() > 0
	})
}

// By default a publisher whose server does not answer fails at start,
// after ConnectTimeout, naming the URL and without the credentials.
func TestPublisherNoServerFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("nats://alice:s3cret@%s", l.Addr())
	l.Close()
	start := time.Now()
	_, err = NewPublisher(context.Background(), Config{URLs: []string{url}, ConnectTimeout: 300 * time.Millisecond})
	el := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "no NATS server answered") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("publisher without a server: %v", err)
	}
	if el < 300*time.Millisecond || el > 5*time.Second {
		t.Errorf("failed after %v, want about 300ms", el)
	}
}

// Raw blocks have their own queue: a flood of them is dropped and counted
// without taking the places of spike batches.
func TestPublisherRawFloodKeepsSpikes(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	p := newTestPublisher(t, Config{URLs: []string{s.ClientURL()}, Rig: "flood", QueueLen: 64})
	c := newCollector()
	if _, err := NewClient(streamtest.Connect(t, s)).Subscribe("flood", Handler{Spikes: c.handler().Spikes}, SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	blk := device.Block{First: 0, Rate: 30000, Channels: 64, Gain: 0.195, Samples: make([]int16, 64*600)}
	rawOK := 0
	for i := range 500 {
		if ok, err := p.PublishRaw("all", &blk, 0, 64, false); err != nil {
			t.Fatal(err)
		} else if ok {
			rawOK++
		}
		if i%10 == 0 && !p.PublishSpikes(uint64(i)*600, uint64(i+1)*600, 30000, nil) {
			t.Fatalf("spike batch %d dropped during a raw flood", i/10)
		}
	}
	waitFor(t, 10*time.Second, "all 50 spike batches", func() bool { return c.nSpikes() == 50 })
	t.Logf("raw blocks accepted %d of 500, dropped %d", rawOK, p.Stats().Dropped)
}

// A message that does not decode reaches Handler.Error, naming the
// subject and what was wrong; the subscription keeps going.
func TestClientUndecodable(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	nc := streamtest.Connect(t, s)
	c := newCollector()
	if _, err := NewClient(nc).Subscribe("bad", c.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	good := schema.AppendSpikes(nil, 0, 10, 30000, 0, nil)
	nc.Publish("spikeline.bad.spikes", good[:40])
	nc.Publish("spikeline.bad.status", good) // a spikes message on the status subject
	nc.Publish("spikeline.bad.spikes", good)
	waitFor(t, 5*time.Second, "error and batches", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.errs) == 2 && len(c.spikes) == 1
	})
	// The two subjects are separate subscriptions: their order may vary.
	var short, mismatch bool
	for _, err := range c.errs {
		var de *schema.DecodeError
		short = short || (errors.As(err, &de) && errors.Is(err, schema.ErrShort))
		mismatch = mismatch || strings.Contains(err.Error(), "spikeline.bad.status carries a spikes message, want status")
	}
	if !short || !mismatch {
		t.Errorf("errors = %v, want a truncation DecodeError and a subject/type mismatch", c.errs)
	}
}
