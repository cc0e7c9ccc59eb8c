package shard

import (
	"context"
	"testing"
	"time"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
)

// TestRemoteSortsLikeGroups: over one real in-process server, two
// in-process shards sort a recording exactly as one sorter per group in
// this process does, and the batches tile the device clock.
func TestRemoteSortsLikeGroups(t *testing.T) {
	blocks := recording(t, 96, 15, 7)
	cfg := sort.Config{Deterministic: true, LearnSeconds: 3}
	groups, _ := Split(96, 32)
	want := groupSort(t, cfg, blocks, groups)

	s := streamtest.RunServer(t, nil)
	nc := streamtest.Connect(t, s)
	startWorkers(t, s.ClientURL(), "rigT", 2)
	c := &collector{}
	r, err := Start(context.Background(), Options{Conn: nc, Rig: "rigT", GroupChannels: 32, Sort: cfg,
		// Deterministic learning runs inside Process: seconds of sorting
		// stop while it does, so no real-time deadline here, and no
		// heartbeat timeout a slow (race-detector) build would trip.
		Deadline: time.Minute, StallTimeout: time.Minute, BeatTimeout: 30 * time.Second,
		Events: func(s uint64, rate float64, evs []schema.Event) { c.addEvents(s, rate, evs) }}, &blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	collect(r, blocks[0].First, c)
	send(t, r, c, blocks, 0, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-c.done
	if len(c.errs) > 0 {
		t.Fatalf("batches do not tile: %v", c.errs[:min(5, len(c.errs))])
	}
	if end := blocks[len(blocks)-1].End(); c.next != end {
		t.Errorf("merged stream ends at %d, want %d", c.next, end)
	}
	sameSorting(t, c.spikes, want)
	st := r.Stats()
	t.Logf("%d spikes in %d batches; stats %+v", len(c.spikes), c.batches, st)
	if st.Lost != 0 || st.Failures != 0 {
		t.Errorf("lost %d, failures %d without a fault", st.Lost, st.Failures)
	}
}
