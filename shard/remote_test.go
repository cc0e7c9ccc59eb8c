package shard

import (
	"testing"

	"github.com/spikeline/spikeline/sort"
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
	c, st := sortWithoutFault(t, nc, "rigT", 32, cfg, blocks, want)
	t.Logf("%d spikes in %d batches; stats %+v", len(c.spikes), c.batches, st)
	if st.Lost != 0 || st.Failures != 0 {
		t.Errorf("lost %d, failures %d without a fault", st.Lost, st.Failures)
	}
}
