package shard

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// The fault tests sort a recording at real time with templates learned
// beforehand (a second pass, so that no shard stops to learn and a
// replacement shard starts with the same templates), over a 3-node
// cluster of separate processes.

// secondPass returns the sorter configuration of a second pass over
// blocks: templates from a first pass, no learning.
func secondPass(t testing.TB, blocks []device.Block) sort.Config {
	t.Helper()
	s, err := sort.New(sort.Config{Deterministic: true, LearnSeconds: 3}, blocks[0].Channels, blocks[0].Rate, blocks[0].Gain)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, b := range blocks {
		if _, err := s.Process(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	return sort.Config{Deterministic: true, LearnSeconds: 1000, Templates: s.Templates()}
}

// groupSeeded sorts each group with its share of cfg.Templates.
func groupSeeded(t testing.TB, cfg sort.Config, blocks []device.Block, groups []Group) []sort.Spike {
	t.Helper()
	var all []sort.Spike
	for gi, g := range groups {
		c := cfg
		c.Templates = nil
		for _, tp := range cfg.Templates {
			if int(tp.Channel) >= g.First && int(tp.Channel) < g.First+g.Channels {
				tp.Channel -= int32(g.First)
				c.Templates = append(c.Templates, tp)
			}
		}
		for _, sp := range groupSort(t, c, blocks, []Group{g}) {
			if sp.Unit > 0 {
				sp.Unit &= 0xffff // seeded: the rig keeps the seeds' ids
			}
			_ = gi
			all = append(all, sp)
		}
	}
	slices.SortFunc(all, bySampleChannel)
	return all
}

// planWatch follows the rig's plan: which shard holds each group.
type planWatch struct {
	mu      sync.Mutex
	holders map[string][]string
}

func watchPlan(t testing.TB, nc *nats.Conn, rig string) *planWatch {
	t.Helper()
	subj, _ := NewSubjects(rig)
	w := &planWatch{holders: map[string][]string{}}
	sub, err := nc.Subscribe(subj.Plan(), func(m *nats.Msg) {
		var p Plan
		if json.Unmarshal(m.Data, &p) != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, g := range p.Groups {
			var hs []string
			for _, l := range g.Leases {
				hs = append(hs, l.Shard)
			}
			w.holders[g.Name] = hs
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return w
}

func (w *planWatch) holder(group string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if hs := w.holders[group]; len(hs) > 0 {
		return hs[len(hs)-1]
	}
	return ""
}

// paced sends blocks at real time, calling at(i) before block i.
func paced(t testing.TB, r *Remote, blocks []device.Block, at func(i int)) {
	t.Helper()
	t0 := time.Now()
	for i, b := range blocks {
		if at != nil {
			at(i)
		}
		time.Sleep(time.Until(t0.Add(time.Duration(float64(b.First-blocks[0].First) / b.Rate * float64(time.Second)))))
		b.Received = time.Now()
		if err := r.Send(&b); err != nil {
			t.Fatal(err)
		}
	}
}

func onChannels(spikes []sort.Spike, lo, hi int32, in bool) []sort.Spike {
	var out []sort.Spike
	for _, s := range spikes {
		if (s.Channel >= lo && s.Channel < hi) == in {
			out = append(out, s)
		}
	}
	return out
}

func inRanges(x uint64, rs []Range) bool {
	for _, r := range rs {
		if x >= r.From && x < r.To {
			return true
		}
	}
	return false
}

// TestClusterKillShard kills the shard process that holds group g1
// mid-run: its groups resume on another shard within 5 s, the samples
// without sorted spikes are reported exactly (samples, channels), every
// other group's spikes are exactly one sorter's per group, and the merged
// stream never stops for more than the deadline.
func TestClusterKillShard(t *testing.T) {
	const secs, killAt = 10.0, 3.0
	blocks := recording(t, 64, secs, 13)
	cfg := secondPass(t, blocks)
	groups, _ := Split(64, 16)
	want := groupSeeded(t, cfg, blocks, groups)

	cl := startCluster(t, 3)
	nc := rigConn(cl, 0)
	procs := map[string]*shardProc{
		"a": startShard(t, "a", "rigK", cl.from(1)),
		"b": startShard(t, "b", "rigK", cl.from(2)),
		"c": startShard(t, "c", "rigK", cl.from(1)),
	}
	waitShards(t, nc, "rigK", 3)
	plan := watchPlan(t, nc, "rigK")
	c := &collector{}
	r, err := Start(context.Background(), Options{Conn: nc, Rig: "rigK", GroupChannels: 16, Sort: cfg,
		Events: func(s uint64, rate float64, evs []schema.Event) { c.addEvents(s, rate, evs) }}, &blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	collect(r, blocks[0].First, c)
	var killed string
	var killSample uint64
	var killTime time.Time
	paced(t, r, blocks, func(i int) {
		if killed == "" && float64(blocks[i].First) >= killAt*blocks[i].Rate {
			killed = plan.holder("g1")
			killSample, killTime = blocks[i].First, time.Now()
			procs[killed].kill()
			t.Logf("killed shard %s (group g1) at sample %d", killed, killSample)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-c.done
	if killed == "" {
		t.Fatal("no shard killed")
	}
	if len(c.errs) > 0 {
		t.Fatalf("batches do not tile: %v", c.errs[:min(5, len(c.errs))])
	}
	st := r.Stats()
	t.Logf("stats %+v", st)

	// The groups of the killed shard: the losses reported, per group.
	lost := map[int32][]Range{}
	var lostSamples uint64
	for _, e := range c.eventsOf(schema.EventSortLost) {
		lost[e.Channel] = append(lost[e.Channel], Range{e.Sample - e.Count, e.Sample})
		lostSamples += e.Count * uint64(e.Value)
		t.Logf("reported: %s", e.Detail)
	}
	if lostSamples != st.Lost {
		t.Errorf("events report %d samples x channels, stats %d", lostSamples, st.Lost)
	}
	if len(lost[16]) == 0 {
		t.Fatalf("no loss reported for group g1 (channels 16-31)")
	}
	for _, g := range groups {
		lo, hi := int32(g.First), int32(g.First+g.Channels)
		got, exp := onChannels(c.spikes, lo, hi, true), onChannels(want, lo, hi, true)
		rs := lost[lo]
		if len(rs) == 0 {
			if !slices.Equal(got, exp) {
				t.Errorf("group %s, not lost: %d spikes, want exactly the %d of its own sorter", g.Name, len(got), len(exp))
			}
			continue
		}
		first, last := rs[0].From, rs[len(rs)-1].To
		for i := 1; i < len(rs); i++ {
			if rs[i].From < rs[i-1].To {
				t.Errorf("group %s: lost ranges overlap: %v", g.Name, rs)
			}
		}
		rate := blocks[0].Rate
		resumed := float64(last-killSample) / rate
		t.Logf("group %s: lost [%d, %d) = %.3f s from %.3f s before the kill; resumed %.2f s after it",
			g.Name, first, last, float64(last-first)/rate, float64(int64(killSample)-int64(first))/rate, resumed)
		if resumed > 5 {
			t.Errorf("group %s resumed %.2f s after the kill, want <= 5 s", g.Name, resumed)
		}
		// Before the loss: exactly its sorter's spikes; inside: none;
		// after: sorted again (a new sorter, so close to but not the
		// same spikes).
		before := func(s []sort.Spike) []sort.Spike {
			return slices.DeleteFunc(slices.Clone(s), func(x sort.Spike) bool { return x.Sample >= first })
		}
		if b, e := before(got), before(exp); !slices.Equal(b, e) {
			t.Errorf("group %s before its loss: %d spikes, want the %d of its sorter", g.Name, len(b), len(e))
		}
		inside, after, expAfter := 0, 0, 0
		for _, s := range got {
			switch {
			case inRanges(s.Sample, rs):
				inside++
			case s.Sample >= last:
				after++
			}
		}
		for _, s := range exp {
			if s.Sample >= last {
				expAfter++
			}
		}
		if inside > 0 {
			t.Errorf("group %s: %d spikes inside the ranges reported lost", g.Name, inside)
		}
		t.Logf("group %s after the loss: %d spikes, its first sorter %d", g.Name, after, expAfter)
		if expAfter > 0 && float64(after) < 0.8*float64(expAfter) {
			t.Errorf("group %s after the loss: %d spikes, want about %d", g.Name, after, expAfter)
		}
	}
	// Nothing else stalls: the merged stream kept coming.
	gap := c.longestGap(killTime.Add(-time.Second), killTime.Add(5*time.Second))
	t.Logf("longest wait between merged batches around the kill: %v", gap)
	if gap > 2*time.Second {
		t.Errorf("the merged stream stopped for %v around the kill", gap)
	}
}

// TestClusterKillNode kills one NATS node of three mid-run: the rig's, or
// a shard's. Clients reconnect to the others; raw blocks and batches that
// did not cross are sent again: no sorted spike is lost.
func TestClusterKillNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		node int
	}{{"rig-node", 0}, {"shard-node", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			const secs, killAt = 6.0, 2.5
			blocks := recording(t, 64, secs, 17)
			cfg := secondPass(t, blocks)
			groups, _ := Split(64, 16)
			want := groupSeeded(t, cfg, blocks, groups)

			cl := startCluster(t, 3)
			nc := rigConn(cl, 0)
			startShard(t, "a", "rigN", cl.from(1))
			startShard(t, "b", "rigN", cl.from(2))
			waitShards(t, nc, "rigN", 2)
			c := &collector{}
			// What is tested is that a node's death loses nothing; with
			// -short (CI runs it under the race detector, several times
			// slower on 2 cores) shards get more than the 500 ms default
			// to deliver, so that slowness is not mistaken for loss.
			deadline := time.Duration(0)
			if testing.Short() {
				deadline = 3 * time.Second
			}
			r, err := Start(context.Background(), Options{Conn: nc, Rig: "rigN", GroupChannels: 16, Sort: cfg, Deadline: deadline,
				Events: func(s uint64, rate float64, evs []schema.Event) { c.addEvents(s, rate, evs) }}, &blocks[0])
			if err != nil {
				t.Fatal(err)
			}
			collect(r, blocks[0].First, c)
			killed := false
			paced(t, r, blocks, func(i int) {
				if !killed && float64(blocks[i].First) >= killAt*blocks[i].Rate {
					killed = true
					cl.kill(tc.node)
					t.Logf("killed NATS node %d at sample %d", tc.node, blocks[i].First)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			<-c.done
			st := r.Stats()
			t.Logf("stats %+v", st)
			for _, e := range c.events {
				t.Logf("event %s", e)
			}
			if len(c.errs) > 0 {
				t.Fatalf("batches do not tile: %v", c.errs[:min(5, len(c.errs))])
			}
			if st.Lost != 0 || st.Failures != 0 {
				t.Errorf("lost %d samples x channels, %d leases failed", st.Lost, st.Failures)
			}
			if !slices.Equal(c.spikes, want) {
				t.Errorf("%d spikes, want exactly the %d of a sorter per group", len(c.spikes), len(want))
			}
			t.Logf("%d spikes; raw blocks sent again %d, shard output asked again %d", len(c.spikes), st.Resent, st.Asked)
		})
	}
}
