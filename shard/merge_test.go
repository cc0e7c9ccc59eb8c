package shard

import (
	"slices"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

func sp(sample uint64, ch, unit int32) sort.Spike {
	return sort.Spike{Sample: sample, Channel: ch, Unit: unit, Amplitude: -50}
}

func batch(seq, first, end uint64, spikes ...sort.Spike) output {
	return output{seq: seq, first: first, end: end, spikes: spikes}
}

func tmpl(seq uint64, ts ...[2]int32) output {
	o := output{seq: seq, isTmpl: true}
	for _, t := range ts {
		o.templates = append(o.templates, sort.Template{Channel: t[0], Unit: t[1], Pre: 1, Waveform: []float32{0, -1, 0}})
	}
	return o
}

func twoGroups() *merger {
	return newMerger([]Group{{Name: "g0", First: 0, Channels: 2}, {Name: "g1", First: 2, Channels: 2}}, 100)
}

func emitAll(m *merger) ([]sort.Spike, uint64) {
	for _, g := range m.groups {
		m.settle(g)
	}
	return m.emit(nil)
}

// The merged stream waits for the slowest group, then leaves in (sample,
// channel) order.
func TestMergeOrder(t *testing.T) {
	m := twoGroups()
	a := m.addLease(0, 1, "s0", nil)
	b := m.addLease(1, 2, "s1", nil)
	m.receive(a, batch(1, 100, 200, sp(150, 1, 0), sp(160, 0, 0)))
	if got, end := emitAll(m); len(got) != 0 || end != 100 {
		t.Fatalf("emitted %v up to %d before group 1 came", got, end)
	}
	m.receive(b, batch(1, 100, 180, sp(150, 2, 0), sp(170, 3, 0)))
	got, end := emitAll(m)
	want := []sort.Spike{sp(150, 1, 0), sp(150, 2, 0), sp(160, 0, 0), sp(170, 3, 0)}
	if end != 180 || !slices.Equal(got, want) {
		t.Fatalf("got %v up to %d, want %v up to 180", got, end, want)
	}
	m.receive(b, batch(2, 180, 220))
	if got, end = emitAll(m); end != 200 || len(got) != 0 {
		t.Fatalf("got %v up to %d, want nothing up to 200", got, end)
	}
}

// Output out of order is kept until the gap is filled; repeats are
// ignored.
func TestMergeSequence(t *testing.T) {
	m := newMerger([]Group{{Name: "g0", Channels: 1}}, 0)
	l := m.addLease(0, 1, "s0", nil)
	if miss := m.receive(l, batch(2, 10, 20, sp(15, 0, 0))); miss != 1 {
		t.Fatalf("missing %d, want 1", miss)
	}
	if _, end := emitAll(m); end != 0 {
		t.Fatalf("emitted up to %d across a gap", end)
	}
	if miss := m.receive(l, batch(1, 0, 10, sp(5, 0, 0))); miss != 0 {
		t.Fatalf("missing %d after the gap filled", miss)
	}
	m.receive(l, batch(1, 0, 10, sp(5, 0, 0))) // a repeat
	got, end := emitAll(m)
	if end != 20 || !slices.Equal(got, []sort.Spike{sp(5, 0, 0), sp(15, 0, 0)}) {
		t.Fatalf("got %v up to %d", got, end)
	}
}

// A deadline forfeits a group's samples: they are reported lost, spikes
// that come for them later are dropped, and a new lease takes over from
// its first batch.
func TestMergeForfeit(t *testing.T) {
	m := twoGroups()
	a := m.addLease(0, 1, "s0", nil)
	b := m.addLease(1, 2, "s1", nil)
	m.receive(a, batch(1, 100, 300, sp(250, 0, 0)))
	m.receive(b, batch(1, 100, 150, sp(120, 2, 0)))
	if _, end := emitAll(m); end != 150 {
		t.Fatalf("merged up to %d, want 150", end)
	}
	// s1 dies; the deadline passes 250.
	m.dropLease(b)
	m.forfeit(m.groups[1], 250, "dead")
	got, end := emitAll(m)
	if end != 250 || len(got) != 0 {
		t.Fatalf("got %v up to %d", got, end)
	}
	// A new lease starts (after its warm-up) at 280; the deadline passes
	// 300 before it has sent anything.
	c := m.addLease(1, 3, "s2", nil)
	m.forfeit(m.groups[1], 270, "dead")
	m.receive(c, batch(1, 280, 320, sp(290, 3, 0)))
	m.forfeit(m.groups[1], 300, "dead")
	got, end = emitAll(m)
	if end != 300 || !slices.Equal(got, []sort.Spike{sp(250, 0, 0), sp(290, 3, 0)}) {
		t.Fatalf("got %v up to %d", got, end)
	}
	m.flushLosses()
	ls := m.takeLosses()
	if len(ls) != 1 || ls[0].Range != (Range{150, 280}) || ls[0].Name != "g1" {
		t.Fatalf("losses %+v, want g1 [150, 280)", ls)
	}
}

// A group moves without a gap: the old lease's spikes up to the new
// lease's first sample, the new one's after.
func TestMergeHandover(t *testing.T) {
	m := newMerger([]Group{{Name: "g0", Channels: 1}}, 0)
	old := m.addLease(0, 1, "s0", nil)
	m.receive(old, batch(1, 0, 100, sp(50, 0, 0)))
	nw := m.addLease(0, 2, "s1", nil)
	m.receive(nw, batch(1, 150, 200, sp(160, 0, 0), sp(190, 0, 0)))
	if got, end := emitAll(m); end != 100 || len(got) != 1 {
		t.Fatalf("got %v up to %d", got, end)
	}
	m.receive(old, batch(2, 100, 180, sp(120, 0, 0), sp(170, 0, 0)))
	retired := m.settle(m.groups[0])
	if len(retired) != 1 || retired[0] != old {
		t.Fatalf("retired %v, want the old lease", retired)
	}
	got, end := m.emit(nil)
	want := []sort.Spike{sp(120, 0, 0), sp(160, 0, 0), sp(190, 0, 0)}
	if end != 200 || !slices.Equal(got, want) {
		t.Fatalf("got %v up to %d, want %v up to 200", got, end, want)
	}
	if ls := m.takeLosses(); len(ls) != 0 {
		t.Fatalf("losses %+v in a handover", ls)
	}
}

// Units are numbered as one sorter numbers them: by learning pass, then
// channel, whatever order the groups' templates arrive in; a lease seeded
// with templates keeps their ids.
func TestMergeUnits(t *testing.T) {
	m := twoGroups()
	a := m.addLease(0, 1, "s0", nil)
	b := m.addLease(1, 2, "s1", nil)
	m.receive(b, batch(1, 100, 200))
	m.receive(b, tmpl(2, [2]int32{2, 1}, [2]int32{3, 2}))
	m.receive(b, batch(3, 200, 300, sp(250, 3, 2)))
	m.receive(a, batch(1, 100, 200))
	m.receive(a, tmpl(2, [2]int32{1, 1}))
	m.receive(a, batch(3, 200, 300, sp(240, 1, 1), sp(260, 1, 0)))
	got, _ := emitAll(m)
	want := []sort.Spike{sp(240, 1, 1), sp(250, 3, 3), sp(260, 1, 0)}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	ts := m.templates(nil)
	if len(ts) != 3 || ts[0].Channel != 1 || ts[1].Channel != 2 || ts[2].Channel != 3 {
		t.Fatalf("templates %+v", ts)
	}
	// Group 1 moves; the new lease is seeded with units 2 and 3 (as
	// channels of the group) and learns a unit of its own, local id 4.
	seeds := m.seeds(1)
	if len(seeds) != 2 || seeds[0].Channel != 0 || seeds[0].Unit != 2 {
		t.Fatalf("seeds %+v", seeds)
	}
	c := m.addLease(1, 3, "s2", seeds)
	m.receive(c, batch(1, 250, 300))
	m.receive(a, batch(4, 300, 400))
	m.receive(c, tmpl(2, [2]int32{2, 2}, [2]int32{3, 3}, [2]int32{2, 4}))
	m.receive(c, batch(3, 300, 400, sp(310, 2, 2), sp(320, 2, 4)))
	got, _ = emitAll(m)
	want = []sort.Spike{sp(310, 2, 2), sp(320, 2, 4)}
	if !slices.Equal(got, want) {
		t.Fatalf("after the move got %v, want %v", got, want)
	}
}
