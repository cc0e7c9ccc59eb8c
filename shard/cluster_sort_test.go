package shard

import (
	"context"
	"testing"
	"time"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// TestClusterSortsLikeGroups: a 3-node nats-server cluster (separate
// processes), the rig on node 0 and two shard processes on nodes 1 and 2:
// the merged stream tiles the device clock and holds exactly the spikes
// and units of one sorter per group in this process.
func TestClusterSortsLikeGroups(t *testing.T) {
	blocks := recording(t, 64, 6, 11)
	cfg := sort.Config{Deterministic: true, LearnSeconds: 2}
	groups, _ := Split(64, 16)
	want := groupSort(t, cfg, blocks, groups)

	cl := startCluster(t, 3)
	nc := rigConn(cl, 0)
	startShard(t, "a", "rigC", cl.from(1))
	startShard(t, "b", "rigC", cl.from(2))
	waitShards(t, nc, "rigC", 2)
	c := &collector{}
	r, err := Start(context.Background(), Options{Conn: nc, Rig: "rigC", GroupChannels: 16, Sort: cfg,
		Deadline: time.Minute, StallTimeout: time.Minute, BeatTimeout: 30 * time.Second,
		Events: func(s uint64, rate float64, evs []schema.Event) { c.addEvents(s, rate, evs) }}, &blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	collect(r, blocks[0].First, c)
	send(t, r, c, blocks, 0, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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
	t.Logf("%d spikes, %d units; stats %+v", len(c.spikes), st.Units, st)
	if st.Lost != 0 || st.Failures != 0 || st.Moves != 0 {
		t.Errorf("lost %d, failures %d, moves %d without a fault", st.Lost, st.Failures, st.Moves)
	}
}
