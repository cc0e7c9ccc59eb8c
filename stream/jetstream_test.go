package stream

import (
	"context"
	"testing"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/streamtest"
)

// A durable subscriber that stops and comes back later (on a new
// connection, as after a process restart) resumes where it was: every
// batch published while it was away arrives, none is lost.
func TestJetStreamDurableResume(t *testing.T) {
	s := streamtest.RunJetStreamServer(t)
	ctx := context.Background()
	p := newTestPublisher(t, Config{URLs: []string{s.ClientURL()}, Rig: "js1", JetStream: true})

	const n1, n2 = 200, 300
	batch := func(i int) {
		if !p.PublishSpikes(uint64(i)*600, uint64(i+1)*600, 30000, []sort.Spike{{Sample: uint64(i)*600 + 5, Unit: int32(i)}}) {
			t.Fatalf("batch %d dropped", i)
		}
		if i%10 == 0 {
			if ok, err := p.PublishEstimate("ridge", decode.Estimate{End: uint64(i+1) * 600, Rate: 30000, Names: []string{"vx"}, Values: []float64{float64(i)}}); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
	}
	for i := range n1 {
		batch(i)
	}

	seen := map[uint64]int{}
	est := 0
	got := make(chan uint64, n1+n2)
	h := Handler{
		Spikes:   func(rig string, m *schema.SpikeBatch) { got <- m.Sample },
		Estimate: func(rig string, m *schema.EstimateMsg) { est++ },
	}
	c1 := NewClient(streamtest.Connect(t, s))
	sub, err := c1.SubscribeDurable(ctx, "js1", "display", h, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Take part of the backlog, then stop as a crashing display would.
	for len(seen) < 50 {
		select {
		case smp := <-got:
			seen[smp]++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d batches from the durable consumer", len(seen))
		}
	}
	sub.Stop()
	c1.Conn().Close()
	first := len(seen)
	// Drain what was in flight to the stopped subscription.
	for drained := false; !drained; {
		select {
		case smp := <-got:
			seen[smp]++
		case <-time.After(200 * time.Millisecond):
			drained = true
		}
	}
	for i := n1; i < n1+n2; i++ {
		batch(i)
	}
	if err := p.Conn().Flush(); err != nil {
		t.Fatal(err)
	}

	c2 := NewClient(streamtest.Connect(t, s))
	sub2, err := c2.SubscribeDurable(ctx, "js1", "display", h, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Stop()
	firstAfter := uint64(1 << 62)
	for len(seen) < n1+n2 {
		select {
		case smp := <-got:
			if _, dup := seen[smp]; !dup && smp < firstAfter {
				firstAfter = smp
			}
			seen[smp]++
		case <-time.After(10 * time.Second):
			t.Fatalf("after restart: %d of %d batches", len(seen), n1+n2)
		}
	}
	dups := 0
	for i := range n1 + n2 {
		c, ok := seen[uint64(i)*600]
		if !ok {
			t.Fatalf("batch %d lost", i)
		}
		dups += c - 1
	}
	if firstAfter < uint64(first-1)*600 {
		t.Errorf("second session started at sample %d, before the %d batches already handled: not resumed", firstAfter, first)
	}
	if dups > 0 {
		t.Logf("%d batches redelivered (acknowledgements in flight at stop)", dups)
	}

	// The stream holds spikes and decoder output.
	js, _ := jetstream.New(p.Conn())
	st, err := js.Stream(ctx, StreamName("js1"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(n1 + n2 + (n1+n2)/10); info.State.Msgs != want {
		t.Errorf("stream holds %d messages, want %d", info.State.Msgs, want)
	}
	// EnsureStream again (a restarted pipeline) updates, not fails.
	if err := EnsureStream(ctx, p.Conn(), Config{Rig: "js1", StreamMaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

// The embedded server with JetStream in a configured store directory keeps
// the capture across a restart of the pipeline.
func TestJetStreamEmbeddedStore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := Config{Rig: "emb", Port: -1, JetStream: true, StoreDir: dir}
	p, err := NewPublisher(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		p.PublishSpikes(uint64(i)*100, uint64(i+1)*100, 30000, nil)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	p2 := newTestPublisher(t, cfg)
	js, _ := jetstream.New(p2.Conn())
	st, err := js.Stream(ctx, StreamName("emb"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	if info.State.Msgs != 10 {
		t.Fatalf("after restart the stream holds %d messages, want 10", info.State.Msgs)
	}
}
