package shard

import (
	"testing"

	"github.com/spikeline/spikeline/sort"
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
	c, st := sortWithoutFault(t, nc, "rigC", 16, cfg, blocks, want)
	t.Logf("%d spikes, %d units; stats %+v", len(c.spikes), st.Units, st)
	if st.Lost != 0 || st.Failures != 0 || st.Moves != 0 {
		t.Errorf("lost %d, failures %d, moves %d without a fault", st.Lost, st.Failures, st.Moves)
	}
}
