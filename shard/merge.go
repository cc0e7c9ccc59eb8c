package shard

import (
	"cmp"
	"slices"

	"github.com/spikeline/spikeline/sort"
)

// This file is the rig's merger: it puts the spike batches and templates
// of every group's leases back into one time-ordered stream of spikes
// that tiles the device clock, with the rig's unit numbering. It is pure
// state (no NATS, no clock): Remote drives it from one goroutine.
//
// Per group, the merger keeps a settled watermark: every spike of the
// group before it is known (or its loss recorded). It advances by taking
// the output of the newest lease that covers it (a lease covers the
// samples from its first batch on) or, when the rig's deadline passes,
// by forfeiting the samples no lease delivered in time: they are lost, and
// said so. The merged watermark is the least of the groups'; spikes before
// it leave in (sample, channel) order, the order of one sorter.

// output is one message of a lease's output stream: a spike batch or a
// templates snapshot, in the shard's publication order.
type output struct {
	seq       uint64
	templates []sort.Template // a snapshot (global channels, the lease's unit ids); nil for a batch
	isTmpl    bool
	first     uint64
	end       uint64
	spikes    []sort.Spike // global channels, the lease's unit ids
	lost      []Range
}

// lease is the merger's side of a lease: the lease's output received so
// far, in order.
type lease struct {
	epoch uint64
	shard string
	g     *group

	next    uint64            // next output sequence number expected
	stash   map[uint64]output // received ahead of a missing one
	started bool              // a batch arrived: [first, wm) is covered
	first   uint64
	wm      uint64
	spikes  []sort.Spike // received, not yet settled, sample >= g.wm
	units   map[int32]int32
	seeded  map[int32]bool
	tmpl    []sort.Template // the latest snapshot (the lease's unit ids)
	retired bool
}

type pendingSpike struct {
	sort.Spike
	l *lease
}

// group is the merger's state of one channel group.
type group struct {
	Group
	index  int
	leases []*lease // ascending epochs
	wm     uint64   // settled: every spike before wm is in out (or lost)
	out    []pendingSpike
	cur    *lease // the lease wm was last advanced with (its templates are the group's)

	loss    Range // open loss range (To > From), not yet reported
	lossWhy string

	base []sort.Template // templates given at the start (rig's ids, global channels), until a lease has its own
}

// announce is a unit a lease learned, waiting for its rig unit id.
type announce struct {
	key     uint64 // the lease's watermark when the templates arrived
	g       int
	channel int32
	local   int32
	l       *lease
}

// Loss is a run of samples of a group whose sorted spikes are missing
// from the merged stream.
type Loss struct {
	Group
	Range
	Why string
}

type merger struct {
	groups   []*group
	wm       uint64 // merged watermark: spikes before it have been emitted
	nextUnit int32
	pending  []announce
	losses   []Loss // to report
	changed  bool   // templates changed since the last emit
	late     uint64 // spikes dropped: they arrived after their samples were forfeited
}

func newMerger(groups []Group, start uint64) *merger {
	m := &merger{wm: start, nextUnit: 1}
	for i, g := range groups {
		m.groups = append(m.groups, &group{Group: g, index: i, wm: start})
	}
	return m
}

// addLease adds a lease of group g; seeds are the templates it was given
// (unit ids the rig's, channels the group's).
func (m *merger) addLease(g int, epoch uint64, shard string, seeds []sort.Template) *lease {
	gr := m.groups[g]
	l := &lease{epoch: epoch, shard: shard, g: gr, next: 1, stash: map[uint64]output{},
		units: map[int32]int32{}, seeded: map[int32]bool{}}
	for _, t := range seeds {
		l.seeded[t.Unit] = true
		l.units[t.Unit] = t.Unit
		t.Channel += int32(gr.First)
		l.tmpl = append(l.tmpl, t)
	}
	gr.leases = append(gr.leases, l)
	return l
}

// lease returns group g's lease of epoch, nil if it has none (any more).
func (m *merger) lease(g int, epoch uint64) *lease {
	for _, l := range m.groups[g].leases {
		if l.epoch == epoch {
			return l
		}
	}
	return nil
}

// dropLease removes a lease (its shard died, stalled, or was revoked).
func (m *merger) dropLease(l *lease) {
	gr := l.g
	gr.leases = slices.DeleteFunc(gr.leases, func(x *lease) bool { return x == l })
	l.retired = true
	// gr.cur stays: the group's templates are the dropped lease's until
	// another lease covers the group (and new leases are seeded with them).
}

// receive takes a message of lease l. It returns the first missing
// sequence number when a gap opened (0: none).
func (m *merger) receive(l *lease, o output) (missing uint64) {
	switch {
	case o.seq < l.next:
		return 0 // a repeat
	case o.seq > l.next:
		if len(l.stash) < maxStash {
			l.stash[o.seq] = o
		}
		return l.next
	}
	m.apply(l, o)
	l.next++
	for {
		s, ok := l.stash[l.next]
		if !ok {
			break
		}
		delete(l.stash, l.next)
		m.apply(l, s)
		l.next++
	}
	if len(l.stash) > 0 {
		return l.next
	}
	return 0
}

// maxStash bounds the messages kept ahead of a missing one, per lease.
const maxStash = 4096

func (m *merger) apply(l *lease, o output) {
	gr := l.g
	if o.isTmpl {
		key := l.wm
		if !l.started {
			key = gr.wm
		}
		for _, t := range o.templates {
			if _, ok := l.units[t.Unit]; ok || t.Unit <= 0 {
				continue
			}
			if slices.ContainsFunc(m.pending, func(a announce) bool { return a.l == l && a.local == t.Unit }) {
				continue
			}
			m.pending = append(m.pending, announce{key: key, g: gr.index, channel: t.Channel, local: t.Unit, l: l})
		}
		l.tmpl = o.templates
		if gr.cur == l {
			m.changed = true
		}
		return
	}
	if !l.started {
		l.started, l.first, l.wm = true, o.first, o.first
	}
	if o.first != l.wm {
		// Batches of a lease tile its samples; a jump is a hole the
		// shard did not say was lost: treat it as lost.
		if o.first > l.wm {
			o.lost = append(o.lost, Range{l.wm, o.first})
		}
	}
	for _, s := range o.spikes {
		if s.Sample >= gr.wm {
			l.spikes = append(l.spikes, s)
		} else if !l.retired && l == gr.best() {
			m.late++
		}
	}
	l.wm = max(l.wm, o.end)
	for _, r := range o.lost {
		m.losses = append(m.losses, Loss{Group: gr.Group, Range: r, Why: "raw blocks lost in transport to shard " + l.shard})
	}
}

// best returns the newest lease that covers the group's watermark.
func (gr *group) best() *lease {
	var b *lease
	for _, l := range gr.leases {
		if l.started && l.first <= gr.wm {
			b = l
		}
	}
	return b
}

// settle advances group gr's watermark with what its leases delivered. It
// returns the leases that a newer one has taken over from.
func (m *merger) settle(gr *group) (retired []*lease) {
	for {
		b := gr.best()
		if b == nil {
			return retired
		}
		// Older leases than the one covering wm are done with.
		for _, l := range gr.leases {
			if l.epoch < b.epoch {
				retired = append(retired, l)
			}
		}
		for _, l := range retired {
			m.dropLease(l)
		}
		if gr.cur != b {
			gr.cur = b
			m.changed = true
		}
		// A newer lease that has started takes over at its first sample.
		to := b.wm
		for _, l := range gr.leases {
			if l.epoch > b.epoch && l.started {
				to = min(to, l.first)
			}
		}
		if to <= gr.wm {
			return retired
		}
		m.closeLoss(gr)
		n := 0
		for _, s := range b.spikes {
			if s.Sample < to {
				if s.Sample >= gr.wm {
					gr.out = append(gr.out, pendingSpike{s, b})
				}
			} else {
				b.spikes[n] = s
				n++
			}
		}
		b.spikes = b.spikes[:n]
		gr.wm = to
		m.trim(gr)
	}
}

// trim drops what leases hold before the group's watermark.
func (m *merger) trim(gr *group) {
	for _, l := range gr.leases {
		n := 0
		for _, s := range l.spikes {
			if s.Sample >= gr.wm {
				l.spikes[n] = s
				n++
			}
		}
		l.spikes = l.spikes[:n]
	}
}

// forfeit advances group gr's watermark to at least d, recording what no
// lease delivered as lost.
func (m *merger) forfeit(gr *group, d uint64, why string) (retired []*lease) {
	retired = m.settle(gr)
	for gr.wm < d {
		to := d
		for _, l := range gr.leases {
			if l.started && l.first > gr.wm && l.first < to {
				to = l.first
			}
		}
		m.openLoss(gr, Range{gr.wm, to}, why)
		gr.wm = to
		m.trim(gr)
		retired = append(retired, m.settle(gr)...)
	}
	return retired
}

func (m *merger) openLoss(gr *group, r Range, why string) {
	if gr.loss.To > gr.loss.From && (gr.loss.To != r.From || gr.lossWhy != why) {
		m.closeLoss(gr)
	}
	if gr.loss.To > gr.loss.From {
		gr.loss.To = r.To
		return
	}
	gr.loss, gr.lossWhy = r, why
}

// closeLoss reports group gr's open loss range.
func (m *merger) closeLoss(gr *group) {
	if gr.loss.To > gr.loss.From {
		m.losses = append(m.losses, Loss{Group: gr.Group, Range: gr.loss, Why: gr.lossWhy})
	}
	gr.loss = Range{}
}

// flushLosses reports every open loss range up to now (a loss still going
// on continues in a new range).
func (m *merger) flushLosses() {
	for _, gr := range m.groups {
		m.closeLoss(gr)
	}
}

// takeLosses returns the losses to report, and forgets them.
func (m *merger) takeLosses() []Loss {
	ls := m.losses
	m.losses = nil
	return ls
}

// merged returns the merged watermark the groups allow.
func (m *merger) merged() uint64 {
	w := uint64(0)
	for i, gr := range m.groups {
		if i == 0 || gr.wm < w {
			w = gr.wm
		}
	}
	return max(w, m.wm)
}

// emit appends to dst the spikes before the merged watermark, in (sample,
// channel) order with the rig's unit ids, and returns the batch's end.
func (m *merger) emit(dst []sort.Spike) ([]sort.Spike, uint64) {
	w := m.merged()
	if w <= m.wm {
		return dst, m.wm
	}
	m.allocate(w)
	start := len(dst)
	for _, gr := range m.groups {
		n := 0
		for _, p := range gr.out {
			if p.Sample >= w {
				gr.out[n] = p
				n++
				continue
			}
			s := p.Spike
			if s.Unit > 0 {
				s.Unit = m.unit(p.l, s.Unit)
			}
			dst = append(dst, s)
		}
		clear(gr.out[n:])
		gr.out = gr.out[:n]
	}
	slices.SortFunc(dst[start:], func(a, b sort.Spike) int {
		if c := cmp.Compare(a.Sample, b.Sample); c != 0 {
			return c
		}
		return cmp.Compare(a.Channel, b.Channel)
	})
	m.wm = w
	return dst, w
}

// allocate gives rig unit ids to the units announced before w, in the
// order one sorter of every channel numbers them: by learning pass, then
// channel.
func (m *merger) allocate(w uint64) {
	var now []announce
	m.pending = slices.DeleteFunc(m.pending, func(a announce) bool {
		if a.key < w {
			now = append(now, a)
			return true
		}
		return false
	})
	slices.SortFunc(now, func(a, b announce) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		if c := cmp.Compare(a.channel, b.channel); c != 0 {
			return c
		}
		return cmp.Compare(a.local, b.local)
	})
	for _, a := range now {
		m.unit(a.l, a.local)
	}
	if len(now) > 0 {
		m.changed = true
	}
}

// unit returns the rig's id of lease l's unit u, allocating one if needed.
func (m *merger) unit(l *lease, u int32) int32 {
	if g, ok := l.units[u]; ok {
		return g
	}
	g := m.nextUnit
	m.nextUnit++
	l.units[u] = g
	return g
}

// setBase gives the groups the templates the session starts with (the
// rig's unit ids, global channels): the seeds of their first leases.
func (m *merger) setBase(ts []sort.Template) {
	for _, t := range ts {
		for _, gr := range m.groups {
			if int(t.Channel) >= gr.First && int(t.Channel) < gr.First+gr.Channels {
				gr.base = append(gr.base, t)
			}
		}
		m.nextUnit = max(m.nextUnit, t.Unit+1)
	}
}

// templates appends every group's current templates, with the rig's unit
// ids, to dst.
func (m *merger) templates(dst []sort.Template) []sort.Template {
	for _, gr := range m.groups {
		l := gr.cur
		if l == nil {
			dst = append(dst, gr.base...)
			continue
		}
		for _, t := range l.tmpl {
			g, ok := l.units[t.Unit]
			if !ok {
				continue // not numbered yet
			}
			t.Unit = g
			dst = append(dst, t)
		}
	}
	slices.SortFunc(dst, func(a, b sort.Template) int { return cmp.Compare(a.Unit, b.Unit) })
	return dst
}

// seeds returns group g's current templates for a new lease: channels the
// group's, unit ids the rig's.
func (m *merger) seeds(g int) []sort.Template {
	gr := m.groups[g]
	var ts []sort.Template
	for _, t := range m.templates(nil) {
		if int(t.Channel) >= gr.First && int(t.Channel) < gr.First+gr.Channels {
			t.Channel -= int32(gr.First)
			ts = append(ts, t)
		}
	}
	return ts
}
