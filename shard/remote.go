package shard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// Options configures a Remote: the rig's side of remote sorting. The zero
// value of every field but Conn takes the default beside it.
type Options struct {
	// Conn is the rig's NATS connection (the publisher's).
	Conn *nats.Conn
	// Rig names the rig (default stream.DefaultRig).
	Rig string
	// GroupChannels is the size of a channel group, the unit of work a
	// shard takes (64).
	GroupChannels int
	// Sort is the sorter configuration every shard runs (Workers is the
	// shard's business). Templates, if any (channels of the rig's
	// stream), seed the groups' sorters, as in the second pass of an
	// offline sort; their unit ids are kept.
	Sort sort.Config

	// Deadline is how long after a block was sent the merged stream waits
	// for a group's spikes before it goes on without them, reporting them
	// lost (500 ms): so one slow or dead shard never stalls the rest.
	Deadline time.Duration
	// BeatTimeout: a shard silent this long is dead (1 s; shards beat
	// every 200 ms).
	BeatTimeout time.Duration
	// StallTimeout: a lease whose output is this far behind the blocks
	// sent has stalled and moves to another shard (1.5 s).
	StallTimeout time.Duration
	// Retain is how long raw blocks are kept to be sent again to a shard
	// that missed them (2 s).
	Retain time.Duration
	// StartTimeout bounds the wait, at Start, for shards to take every
	// group (10 s).
	StartTimeout time.Duration
	// Gather is how long Start listens for shards before it hands out
	// the groups (500 ms, two heartbeats), and MinShards how many it
	// waits for (1): the groups are spread over the shards there are.
	Gather    time.Duration
	MinShards int

	// Events receives the events to publish on the events subject
	// (losses, shards joining and leaving); nil drops them.
	Events func(sample uint64, rate float64, events []schema.Event)
	// Logger receives what happens to shards and leases; nil discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Rig == "" {
		o.Rig = stream.DefaultRig
	}
	if o.GroupChannels <= 0 {
		o.GroupChannels = DefaultGroupChannels
	}
	def(&o.Deadline, 500*time.Millisecond)
	def(&o.BeatTimeout, time.Second)
	def(&o.StallTimeout, 1500*time.Millisecond)
	def(&o.Retain, 2*time.Second)
	def(&o.StartTimeout, 10*time.Second)
	def(&o.Gather, 500*time.Millisecond)
	if o.MinShards <= 0 {
		o.MinShards = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// DefaultGroupChannels is the default channel group size.
const DefaultGroupChannels = 64

// Batch is a run of the merged spike stream: every spike with
// First <= Sample < End, in (sample, channel) order, with the rig's unit
// ids. Consecutive batches tile the device clock.
type Batch struct {
	First, End uint64
	Rate       float64
	Spikes     []sort.Spike
	// Received is the host receive time of the block whose end let the
	// batch close (for latency).
	Received time.Time
}

// Stats counts what a Remote did. Counters only grow.
type Stats struct {
	Shards         int           // live shards now
	Groups         int           // channel groups
	Assigned       int           // groups with a lease now
	Leases         uint64        // leases given
	Moves          uint64        // groups moved to another shard without a gap
	Failures       uint64        // leases lost: shard dead or stalled
	Lost           uint64        // samples × channels whose sorted spikes are missing (reported)
	Late           uint64        // spikes that came after their samples were given up
	Resent         uint64        // raw blocks sent again to shards that missed them
	Asked          uint64        // requests to shards to send their output again
	RawBytes       uint64        // bytes of raw blocks published (first sends)
	Spikes         uint64        // spikes emitted
	Sorted         uint64        // of which with a unit
	Units          int           // current units
	Learned        uint64        // template changes seen (each makes Templates new)
	ShardBusy      int64         // ns the shards spent sorting (their beats)
	ShardWork      uint64        // samples per channel they sorted
	HopP50, HopP99 time.Duration // latency raw block published → shard received, the shards' last beats
}

// Remote sorts a rig's stream on shards over NATS: Send publishes each
// block's channel groups, Batches delivers the merged spike stream. One
// goroutine calls Send (in stream order) and Close; the others may be
// called from any goroutine.
type Remote struct {
	o       Options
	nc      *nats.Conn
	subj    Subjects
	session string
	groups  []Group
	chans   int
	rate    float64
	gain    float64
	lag     uint64
	start   uint64
	cfgJSON sort.Config

	// Raw side: Send and the NAK handler.
	rawMu   sync.Mutex
	seq     []uint64
	rings   []ring
	scratch []int16
	lastEnd uint64

	in      chan inMsg
	sent    chan sentBlock
	batches chan Batch
	stop    chan struct{}
	ended   chan struct{}
	ready   chan struct{}
	subs    []*nats.Subscription

	// The coordinator's (one goroutine).
	m        *merger
	shards   map[string]*shardInfo
	leases   map[*lease]*leaseInfo
	epoch    uint64
	planSeq  uint64
	blocks   []sentBlock
	pending  *Batch
	closing  bool
	finalEnd uint64
	readyOK  bool
	started  time.Time
	lastLoss time.Time

	snapMu sync.Mutex
	tmpl   []sort.Template
	noise  []float32
	stats  Stats
	raw    atomic.Uint64
	resent atomic.Uint64
}

type inMsg struct {
	kind  byte // 'o' output, 'b' beat, 'l' lease request, 'c' closing, 'x' give up
	msg   *nats.Msg
	group int
	end   uint64
	state chan string
}

type sentBlock struct {
	end      uint64
	received time.Time
	at       time.Time
}

type shardInfo struct {
	name    string
	beat    Beat
	last    time.Time
	suspect time.Time // no new leases before
}

type leaseInfo struct {
	g       int
	shard   string
	created time.Time
	fromSeq uint64
	seeds   []sort.Template
	askedAt time.Time
	gapAt   time.Time // output missing since
	moving  bool      // make-before-break: an older lease still runs
}

// Start begins remote sorting of the stream whose first block is first:
// it splits the channels into groups, waits for shards to take every
// group (Options.StartTimeout), and returns. Send first next.
func Start(ctx context.Context, o Options, first *device.Block) (*Remote, error) {
	o = o.withDefaults()
	if o.Conn == nil {
		return nil, errors.New("shard: remote sorting needs a NATS connection")
	}
	subj, err := NewSubjects(o.Rig)
	if err != nil {
		return nil, err
	}
	groups, err := Split(first.Channels, o.GroupChannels)
	if err != nil {
		return nil, err
	}
	if o.Sort.Reference != sort.RefNone {
		return nil, fmt.Errorf("shard: remote sorting takes no common reference (%v): each group would subtract its own, not the stream's", o.Sort.Reference)
	}
	if o.Sort.Probe != nil {
		return nil, errors.New("shard: remote sorting sorts every channel alone: a probe layout would join spikes across channel groups")
	}
	// The sorter's lag, and a check of the configuration before any shard
	// gets it.
	probe, err := sort.New(withoutLocal(o.Sort), 1, first.Rate, first.Gain)
	if err != nil {
		return nil, fmt.Errorf("shard: sorter configuration: %w", err)
	}
	lag := uint64(probe.Lag())
	probe.Close()
	var id [6]byte
	_, _ = rand.Read(id[:])
	r := &Remote{o: o, nc: o.Conn, subj: subj, session: hex.EncodeToString(id[:]), groups: groups,
		chans: first.Channels, rate: first.Rate, gain: first.Gain, lag: lag, start: first.First,
		cfgJSON: withoutLocal(o.Sort),
		seq:     make([]uint64, len(groups)), rings: make([]ring, len(groups)),
		in: make(chan inMsg, 4096), sent: make(chan sentBlock, 4096), batches: make(chan Batch, 256),
		stop: make(chan struct{}), ended: make(chan struct{}), ready: make(chan struct{}),
		m: newMerger(groups, first.First), shards: map[string]*shardInfo{}, leases: map[*lease]*leaseInfo{},
		noise: make([]float32, first.Channels)}
	r.stats.Groups = len(groups)
	r.started = time.Now()
	if len(o.Sort.Templates) > 0 {
		for i, t := range o.Sort.Templates {
			if t.Channel < 0 || int(t.Channel) >= first.Channels || t.Unit <= 0 {
				return nil, fmt.Errorf("shard: template %d (unit %d) on channel %d of %d", i, t.Unit, t.Channel, first.Channels)
			}
		}
		r.m.setBase(o.Sort.Templates)
		r.tmpl = r.m.templates(nil)
	}
	if err := r.subscribe(); err != nil {
		r.unsubscribe()
		return nil, err
	}
	go r.run()
	select {
	case <-r.ready:
		return r, nil
	case <-ctx.Done():
		r.abort()
		return nil, ctx.Err()
	case <-time.After(o.StartTimeout):
		r.abort()
		return nil, fmt.Errorf("shard: no shards took every channel group of rig %s within %v (start `spikeline shard --rig %s`)",
			o.Rig, o.StartTimeout, o.Rig)
	}
}

// withoutLocal strips what is the machine's business, not the shards'.
func withoutLocal(c sort.Config) sort.Config {
	c.Workers = 0
	c.Templates = nil
	c.Part = sort.Part{}
	return c
}

func (r *Remote) subscribe() error {
	sub := func(subject string, h nats.MsgHandler) error {
		s, err := r.nc.Subscribe(subject, h)
		if err != nil {
			return fmt.Errorf("shard: subscribe %s: %w", subject, err)
		}
		_ = s.SetPendingLimits(-1, 512<<20)
		r.subs = append(r.subs, s)
		return nil
	}
	index := map[string]int{}
	for i, g := range r.groups {
		index[g.Name] = i
	}
	out := func(kind byte) nats.MsgHandler {
		return func(m *nats.Msg) {
			name := m.Subject[len(m.Subject)-len(lastToken(m.Subject)):]
			g, ok := index[name]
			if !ok {
				return
			}
			select {
			case r.in <- inMsg{kind: kind, msg: m, group: g}:
			case <-r.stop:
			}
		}
	}
	if err := sub(r.subj.Output("*"), out('o')); err != nil {
		return err
	}
	fwd := func(kind byte) nats.MsgHandler {
		return func(m *nats.Msg) {
			select {
			case r.in <- inMsg{kind: kind, msg: m}:
			case <-r.stop:
			}
		}
	}
	if err := sub(r.subj.Beat(), fwd('b')); err != nil {
		return err
	}
	if err := sub(r.subj.Lease(), fwd('l')); err != nil {
		return err
	}
	return sub(r.subj.Nak(), r.nak)
}

func lastToken(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return s[i+1:]
		}
	}
	return s
}

func (r *Remote) unsubscribe() {
	for _, s := range r.subs {
		_ = s.Unsubscribe()
	}
	r.subs = nil
}

func (r *Remote) abort() {
	close(r.stop)
	<-r.ended
	r.unsubscribe()
	r.publishPlan(true)
}

// Groups returns the channel groups.
func (r *Remote) Groups() []Group { return slices.Clone(r.groups) }

// Lag returns the sorter's lag in samples: a batch ends at least this far
// before the last block sent.
func (r *Remote) Lag() int { return int(r.lag) }

// Channels returns the number of channels.
func (r *Remote) Channels() int { return r.chans }

// Rate returns the sample rate in Hz.
func (r *Remote) Rate() float64 { return r.rate }

// Config returns the sorter configuration the shards run.
func (r *Remote) Config() sort.Config { return r.o.Sort }

// Batches delivers the merged spike stream. It is closed after Close.
// A slow reader never stalls the merger: batches waiting for it are
// joined into one.
func (r *Remote) Batches() <-chan Batch { return r.batches }

// Send publishes block b's channel groups to the shards. It does not wait
// for them. Blocks must come in stream order and have the first block's
// channels and rate.
func (r *Remote) Send(b *device.Block) error {
	if b.Channels != r.chans || b.Rate != r.rate {
		return fmt.Errorf("shard: block at sample %d has %d channels at %g Hz, remote sorting was started for %d at %g Hz",
			b.First, b.Channels, b.Rate, r.chans, r.rate)
	}
	if b.Len() == 0 {
		return nil
	}
	now := time.Now()
	r.rawMu.Lock()
	for i, g := range r.groups {
		r.scratch = r.scratch[:0]
		for t := range b.Len() {
			row := b.Samples[t*b.Channels+g.First:]
			r.scratch = append(r.scratch, row[:g.Channels]...)
		}
		rb := schema.RawBlock{Header: schema.Header{Sample: b.First, Rate: b.Rate, Published: now.UnixNano()},
			Channels: g.Channels, FirstChannel: g.First, Gain: b.Gain, Samples: r.scratch}
		r.seq[i]++
		e := r.rings[i].put(r.seq[i], now, r.o.Retain)
		e.data, _ = rb.AppendBinary(e.data[:0])
		e.first, e.end = b.First, b.End()
		r.publishRaw(r.subj.Raw(g.Name), e)
		r.raw.Add(uint64(len(e.data)))
	}
	r.lastEnd = b.End()
	r.rawMu.Unlock()
	select {
	case r.sent <- sentBlock{end: b.End(), received: b.Received, at: now}:
	case <-r.ended:
		return errors.New("shard: remote sorting has stopped")
	}
	return nil
}

// publishRaw publishes a ring entry (rawMu held).
func (r *Remote) publishRaw(subject string, e *entry) {
	h := nats.Header{HeaderSeq: []string{strconv.FormatUint(e.seq, 10)}}
	if e.final {
		h.Set(HeaderEnd, "1")
	}
	_ = r.nc.PublishMsg(&nats.Msg{Subject: subject, Header: h, Data: e.data})
}

// nak sends raw blocks again to a shard that missed them.
func (r *Remote) nak(m *nats.Msg) {
	var n Nak
	if err := decodeJSON(m.Data, &n, func() int { return n.V }); err != nil {
		r.o.Logger.Warn("shard: bad nak", "err", err)
		return
	}
	i := slices.IndexFunc(r.groups, func(g Group) bool { return g.Name == n.Group })
	if i < 0 || n.To <= n.From {
		return
	}
	r.rawMu.Lock()
	defer r.rawMu.Unlock()
	subject := r.subj.Resend(n.Group)
	r.rings[i].each(n.From, n.To, func(e *entry) {
		r.publishRaw(subject, e)
		r.resent.Add(1)
	})
}

// Close ends the stream: the shards flush their sorters, the merged
// stream is completed up to the end of the last block sent (or what has
// not come when ctx ends is reported lost), the last batch is delivered
// and Batches is closed. The shards are released.
func (r *Remote) Close(ctx context.Context) error {
	r.rawMu.Lock()
	end := r.lastEnd
	if end == 0 {
		end = r.start
	}
	for i, g := range r.groups {
		rb := schema.RawBlock{Header: schema.Header{Sample: end, Rate: r.rate, Published: time.Now().UnixNano()},
			Channels: g.Channels, FirstChannel: g.First, Gain: r.gain}
		r.seq[i]++
		e := r.rings[i].put(r.seq[i], time.Now(), r.o.Retain)
		e.data, _ = rb.AppendBinary(e.data[:0])
		e.first, e.end, e.final = end, end, true
		r.publishRaw(r.subj.Raw(g.Name), e)
	}
	r.rawMu.Unlock()
	done := make(chan struct{})
	select {
	case r.sent <- sentBlock{end: end, at: time.Now(), received: time.Now()}:
	case <-r.ended:
	}
	select {
	case r.in <- inMsg{kind: 'c', end: end}:
	case <-r.ended:
	}
	go func() {
		select {
		case <-ctx.Done():
			select {
			case r.in <- inMsg{kind: 'x'}:
			case <-r.ended:
			}
		case <-done:
		}
	}()
	<-r.ended
	close(done)
	r.unsubscribe()
	r.publishPlan(true)
	return r.nc.FlushTimeout(time.Second)
}

// Templates returns the current templates of every group with the rig's
// unit ids and channels.
func (r *Remote) Templates() []sort.Template {
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	return slices.Clone(r.tmpl)
}

// Noise appends each channel's noise σ in µV, as the shards last reported
// it (0 where unknown), to dst.
func (r *Remote) Noise(dst []float32) []float32 {
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	return append(dst, r.noise...)
}

// Stats returns what the Remote has done so far.
func (r *Remote) Stats() Stats {
	r.snapMu.Lock()
	s := r.stats
	r.snapMu.Unlock()
	s.RawBytes = r.raw.Load()
	s.Resent = r.resent.Load()
	return s
}

// run is the coordinator: leases, heartbeats, failures, the merge.
func (r *Remote) run() {
	defer close(r.ended)
	defer close(r.batches)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastPlan time.Time
	for {
		now := time.Now()
		select {
		case msg := <-r.in:
			switch msg.kind {
			case 'o':
				r.output(msg.group, msg.msg, now)
			case 'b':
				r.beat(msg.msg, now)
			case 'l':
				r.leaseRequest(msg.msg)
			case 'c':
				r.closing, r.finalEnd = true, msg.end
			case 'd':
				msg.state <- r.describe()
			case 'x':
				// Close's context ended: give up on what has not come.
				r.forfeitAll(r.finalEnd, "the stream ended before the shard's last spikes came")
				r.advance(now)
				r.deliver(true)
				return
			}
		case b := <-r.sent:
			r.blocks = append(r.blocks, b)
		case <-tick.C:
			if r.tick(now) || now.Sub(lastPlan) >= planEvery {
				r.publishPlan(false)
				lastPlan = now
			}
		case <-r.stop:
			return
		}
		r.advance(now)
		if r.closing && r.m.wm >= r.finalEnd {
			r.deliver(true)
			return
		}
		r.deliver(false)
	}
}

// planEvery is the period of the plan (also the rig's heartbeat to shards).
const planEvery = 200 * time.Millisecond

// output takes a spike batch or templates of a shard.
func (r *Remote) output(g int, m *nats.Msg, now time.Time) {
	epoch, err1 := strconv.ParseUint(m.Header.Get(HeaderLease), 10, 64)
	seq, err2 := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
	if err1 != nil || err2 != nil || seq == 0 {
		r.o.Logger.Warn("shard: output without lease or sequence headers", "subject", m.Subject)
		return
	}
	l := r.m.lease(g, epoch)
	if l == nil {
		return // a lease that has ended
	}
	o := output{seq: seq}
	msg, err := schema.Decode(m.Data)
	if err != nil {
		r.o.Logger.Warn("shard: bad output", "subject", m.Subject, "shard", l.shard, "err", err)
		return
	}
	switch v := msg.(type) {
	case *schema.SpikeBatch:
		o.first, o.end, o.spikes = v.Sample, v.End, v.Spikes
		if o.lost, err = ParseRanges(m.Header.Get(HeaderLost)); err != nil {
			r.o.Logger.Warn("shard: bad lost ranges", "shard", l.shard, "err", err)
		}
	case *schema.TemplateBatch:
		o.isTmpl, o.templates = true, v.Templates
	default:
		return
	}
	missing := r.m.receive(l, o)
	if li := r.leases[l]; li != nil {
		switch {
		case missing == 0:
			li.gapAt = time.Time{}
		case li.gapAt.IsZero():
			li.gapAt = now
		}
	}
}

// askEvery is how long a gap in a lease's output may stay open before the
// shard is asked to send it again, and the least time between two asks.
const askEvery = 100 * time.Millisecond

// askMissing asks shards for output that has not come in order.
func (r *Remote) askMissing(now time.Time) {
	for l, li := range r.leases {
		if li.gapAt.IsZero() || now.Sub(li.gapAt) < askEvery || now.Sub(li.askedAt) < askEvery {
			continue
		}
		li.askedAt = now
		b, _ := json.Marshal(Ask{V: Protocol, Group: r.groups[li.g].Name, Epoch: l.epoch, From: l.next})
		_ = r.nc.Publish(r.subj.Ask(l.shard), b)
		r.snapMu.Lock()
		r.stats.Asked++
		r.snapMu.Unlock()
	}
}

func (r *Remote) beat(m *nats.Msg, now time.Time) {
	var b Beat
	if err := decodeJSON(m.Data, &b, func() int { return b.V }); err != nil {
		r.o.Logger.Warn("shard: bad heartbeat", "err", err)
		return
	}
	if schema.ValidToken(b.Shard) != nil {
		return
	}
	s := r.shards[b.Shard]
	if s == nil {
		s = &shardInfo{name: b.Shard}
		r.shards[b.Shard] = s
		r.o.Logger.Info("shard joined", "shard", b.Shard, "host", b.Host, "pid", b.PID)
		r.event(schema.Event{Kind: schema.EventShard, Channel: -1, Unit: -1,
			Detail: fmt.Sprintf("shard %s joined (host %s, pid %d)", b.Shard, b.Host, b.PID)})
	}
	if b.Leaving && !s.beat.Leaving {
		r.o.Logger.Info("shard leaving", "shard", b.Shard)
		r.event(schema.Event{Kind: schema.EventShard, Channel: -1, Unit: -1, Detail: fmt.Sprintf("shard %s is leaving", b.Shard)})
	}
	s.beat, s.last = b, now
	r.snapMu.Lock()
	for _, ls := range b.Leases {
		g := slices.IndexFunc(r.groups, func(g Group) bool { return g.Name == ls.Group })
		if g < 0 || len(ls.NoiseUV) != r.groups[g].Channels {
			continue
		}
		if l := r.m.lease(g, ls.Epoch); l != nil && l == r.m.groups[g].cur {
			copy(r.noise[r.groups[g].First:], ls.NoiseUV)
		}
	}
	var busy int64
	var work uint64
	var p50, p99 time.Duration
	for _, s := range r.shards {
		busy += s.beat.BusyNS
		work += s.beat.Samples
		p50 = max(p50, time.Duration(s.beat.HopP50NS))
		p99 = max(p99, time.Duration(s.beat.HopP99NS))
	}
	r.stats.ShardBusy, r.stats.ShardWork, r.stats.HopP50, r.stats.HopP99 = busy, work, p50, p99
	r.snapMu.Unlock()
}

func (r *Remote) leaseRequest(m *nats.Msg) {
	var q LeaseRequest
	reply := func(l Lease) {
		l.V = Protocol
		b, _ := json.Marshal(l)
		if m.Reply != "" {
			_ = r.nc.Publish(m.Reply, b)
		}
	}
	if err := decodeJSON(m.Data, &q, func() int { return q.V }); err != nil {
		reply(Lease{Error: err.Error()})
		return
	}
	g := slices.IndexFunc(r.groups, func(g Group) bool { return g.Name == q.Group })
	if g < 0 {
		reply(Lease{Error: fmt.Sprintf("rig %s has no group %q", r.o.Rig, q.Group)})
		return
	}
	l := r.m.lease(g, q.Epoch)
	if l == nil || l.shard != q.Shard || q.Session != r.session {
		reply(Lease{Error: fmt.Sprintf("group %s: lease %d is not %s's (any more)", q.Group, q.Epoch, q.Shard)})
		return
	}
	li := r.leases[l]
	cfg := r.cfgJSON
	cfg.Templates = li.seeds
	// The group's place in the stream: its sorter then spreads noise
	// estimates and seeds learning as one sorter of every channel does.
	cfg.Part = sort.Part{First: r.groups[g].First, Total: r.chans}
	reply(Lease{Epoch: l.epoch, Group: r.groups[g], FromSeq: li.fromSeq, Sort: cfg, Session: r.session})
}

// tick detects dead and stalled shards and leases, gives out leases and
// balances the groups over the shards. It reports whether the plan
// changed.
func (r *Remote) tick(now time.Time) bool {
	changed := false
	r.askMissing(now)
	// Dead shards.
	for name, s := range r.shards {
		if now.Sub(s.last) < r.o.BeatTimeout {
			continue
		}
		delete(r.shards, name)
		why := fmt.Sprintf("shard %s lost: no heartbeat for %v", name, now.Sub(s.last).Round(time.Millisecond))
		if s.beat.Leaving {
			why = fmt.Sprintf("shard %s left", name)
		}
		r.o.Logger.Warn("shard lost", "shard", name, "why", why)
		r.event(schema.Event{Kind: schema.EventShard, Channel: -1, Unit: -1, Detail: why})
		for l, li := range r.leases {
			if li.shard == name {
				r.fail(l, why)
				changed = true
			}
		}
	}
	// Stalled leases: output far behind what was sent, or not started.
	stallAt := r.sentBefore(now.Add(-r.o.StallTimeout))
	for l, li := range r.leases {
		switch {
		case !l.started && now.Sub(li.created) > r.o.StartTimeout:
			r.fail(l, fmt.Sprintf("lease %d of group %s on shard %s never started", l.epoch, r.groups[li.g].Name, l.shard))
		case stallAt > 0 && l.started && l.wm < stallAt && !l.finished(r.finalEnd, r.closing):
			if s := r.shards[l.shard]; s != nil {
				s.suspect = now.Add(suspectFor)
			}
			r.fail(l, fmt.Sprintf("lease %d of group %s on shard %s stalled: %d samples behind",
				l.epoch, r.groups[li.g].Name, l.shard, stallAt-l.wm))
		default:
			continue
		}
		changed = true
	}
	// The deadline: groups behind it go on without their spikes.
	if d := r.sentBefore(now.Add(-r.o.Deadline)); d > 0 {
		for _, gr := range r.m.groups {
			if gr.wm < d {
				r.retire(r.m.forfeit(gr, d, r.lateWhy(gr)))
			}
		}
	}
	if now.Sub(r.lastLoss) >= time.Second {
		r.m.flushLosses()
		r.lastLoss = now
	}
	if !r.closing && now.Sub(r.started) >= r.o.Gather && len(r.shards) >= r.o.MinShards && r.assign(now) {
		changed = true
	}
	if !r.readyOK && r.allReady() {
		r.readyOK = true
		close(r.ready)
	}
	r.snapMu.Lock()
	r.stats.Shards = len(r.shards)
	r.stats.Assigned = 0
	for _, gr := range r.m.groups {
		if len(gr.leases) > 0 {
			r.stats.Assigned++
		}
	}
	r.snapMu.Unlock()
	return changed
}

// suspectFor: a shard whose lease stalled gets no new lease for this long.
const suspectFor = 10 * time.Second

// finished reports whether a lease delivered everything up to the end.
func (l *lease) finished(end uint64, closing bool) bool { return closing && l.wm >= end }

func (r *Remote) lateWhy(gr *group) string {
	if len(gr.leases) == 0 {
		return "no shard has the group"
	}
	l := gr.leases[len(gr.leases)-1]
	if gr.cur != nil && !gr.cur.retired {
		l = gr.cur
	}
	if !l.started {
		return fmt.Sprintf("shard %s (lease %d) is starting: its sorter needs its noise estimate before it sorts", l.shard, l.epoch)
	}
	return fmt.Sprintf("shard %s (lease %d) missed the %v deadline", l.shard, l.epoch, r.o.Deadline)
}

// sentBefore returns the end, minus the sorter's lag, of the last block
// sent at or before t (0: none).
func (r *Remote) sentBefore(t time.Time) uint64 {
	i, _ := slices.BinarySearchFunc(r.blocks, t, func(b sentBlock, t time.Time) int { return b.at.Compare(t) })
	for i < len(r.blocks) && !r.blocks[i].at.After(t) {
		i++
	}
	if i == 0 {
		return 0
	}
	return max(r.blocks[i-1].end, r.lag) - r.lag
}

func (r *Remote) fail(l *lease, why string) {
	li := r.leases[l]
	delete(r.leases, l)
	r.retire(r.m.settle(l.g)) // what it delivered in order stands
	r.m.dropLease(l)
	r.snapMu.Lock()
	r.stats.Failures++
	r.snapMu.Unlock()
	gr := r.groups[li.g]
	r.o.Logger.Warn("lease lost", "group", gr.Name, "lease", l.epoch, "shard", l.shard, "why", why)
	r.event(schema.Event{Kind: schema.EventShard, Channel: int32(gr.First), Unit: -1, Value: float64(gr.Channels),
		Detail: fmt.Sprintf("group %s (channels %d-%d): %s", gr.Name, gr.First, gr.First+gr.Channels-1, why)})
}

// retire ends leases a newer one has taken over from.
func (r *Remote) retire(ls []*lease) {
	for _, l := range ls {
		if li := r.leases[l]; li != nil {
			delete(r.leases, l)
			r.snapMu.Lock()
			r.stats.Moves++
			r.snapMu.Unlock()
			gr := r.groups[li.g]
			r.o.Logger.Info("group moved", "group", gr.Name, "from", l.shard, "lease", l.epoch)
		}
	}
}

// eligible lists the shards that may take a lease now, with their loads.
func (r *Remote) loads(now time.Time) (map[string]int, []string) {
	load := map[string]int{}
	var names []string
	for name, s := range r.shards {
		if s.beat.Leaving || now.Before(s.suspect) {
			continue
		}
		load[name] = 0
		names = append(names, name)
	}
	for _, gr := range r.m.groups {
		if n := len(gr.leases); n > 0 {
			if _, ok := load[gr.leases[n-1].shard]; ok {
				load[gr.leases[n-1].shard]++
			}
		}
	}
	slices.Sort(names)
	return load, names
}

// assign gives a lease to every group without one, moves the groups of
// leaving shards and balances the load, one move at a time.
func (r *Remote) assign(now time.Time) bool {
	load, names := r.loads(now)
	if len(names) == 0 {
		return false
	}
	least := func(not string) string {
		best := ""
		for _, n := range names {
			c := r.shards[n].beat.Capacity
			if n == not || (c > 0 && load[n] >= c) {
				continue
			}
			if best == "" || load[n] < load[best] {
				best = n
			}
		}
		return best
	}
	changed := false
	for g, gr := range r.m.groups {
		if len(gr.leases) > 0 {
			continue
		}
		to := least("")
		if to == "" {
			break
		}
		r.newLease(g, to, now, false)
		load[to]++
		changed = true
	}
	moving := false
	for _, li := range r.leases {
		moving = moving || li.moving
	}
	if moving {
		return changed
	}
	// One move per tick: out of a leaving shard, else from the most to
	// the least loaded shard when they differ by two or more.
	for g, gr := range r.m.groups {
		n := len(gr.leases)
		if n != 1 {
			continue
		}
		from := gr.leases[0].shard
		if s := r.shards[from]; s != nil && s.beat.Leaving {
			if to := least(from); to != "" {
				r.newLease(g, to, now, true)
				return true
			}
		}
	}
	most := ""
	for _, n := range names {
		if most == "" || load[n] > load[most] {
			most = n
		}
	}
	to := least(most)
	if to == "" || load[most]-load[to] < 2 {
		return changed
	}
	for g, gr := range r.m.groups {
		if len(gr.leases) == 1 && gr.leases[0].shard == most && gr.leases[0].started {
			r.newLease(g, to, now, true)
			return true
		}
	}
	return changed
}

func (r *Remote) newLease(g int, shard string, now time.Time, moving bool) {
	r.epoch++
	seeds := r.m.seeds(g)
	r.rawMu.Lock()
	fresh := r.seq[g] == 0
	r.rawMu.Unlock()
	var from uint64
	if fresh {
		from = 1
	}
	l := r.m.addLease(g, r.epoch, shard, seeds)
	r.leases[l] = &leaseInfo{g: g, shard: shard, created: now, fromSeq: from, seeds: seeds, moving: moving}
	r.snapMu.Lock()
	r.stats.Leases++
	r.snapMu.Unlock()
	gr := r.groups[g]
	r.o.Logger.Info("lease", "group", gr.Name, "shard", shard, "lease", r.epoch, "moving", moving)
	if moving || !fresh {
		r.event(schema.Event{Kind: schema.EventShard, Channel: int32(gr.First), Unit: -1, Value: float64(gr.Channels),
			Detail: fmt.Sprintf("group %s (channels %d-%d) goes to shard %s (lease %d)", gr.Name, gr.First, gr.First+gr.Channels-1, shard, r.epoch)})
	}
}

// allReady reports whether every group has a lease whose shard has
// subscribed to its raw blocks.
func (r *Remote) allReady() bool {
	for g, gr := range r.m.groups {
		ok := false
		for _, l := range gr.leases {
			if s := r.shards[l.shard]; s != nil {
				for _, ls := range s.beat.Leases {
					ok = ok || (ls.Group == r.groups[g].Name && ls.Epoch == l.epoch && ls.Ready)
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (r *Remote) publishPlan(empty bool) {
	r.planSeq++
	p := Plan{V: Protocol, Rig: r.o.Rig, Session: r.session, Seq: r.planSeq, Groups: []PlanGroup{}}
	if !empty {
		for _, gr := range r.m.groups {
			pg := PlanGroup{Group: gr.Group, Leases: []PlanLease{}}
			for _, l := range gr.leases {
				pg.Leases = append(pg.Leases, PlanLease{Shard: l.shard, Epoch: l.epoch})
			}
			p.Groups = append(p.Groups, pg)
		}
	}
	b, _ := json.Marshal(p)
	_ = r.nc.Publish(r.subj.Plan(), b)
}

func (r *Remote) forfeitAll(end uint64, why string) {
	for _, gr := range r.m.groups {
		r.retire(r.m.forfeit(gr, end, why))
	}
}

// advance settles every group, emits the merged spikes, reports losses.
func (r *Remote) advance(now time.Time) {
	for _, gr := range r.m.groups {
		r.retire(r.m.settle(gr))
		if len(gr.leases) == 1 {
			if li := r.leases[gr.leases[0]]; li != nil {
				li.moving = false
			}
		}
	}
	first := r.m.wm
	spikes, end := r.m.emit(nil)
	if end > first {
		b := Batch{First: first, End: end, Rate: r.rate, Spikes: spikes, Received: r.receivedFor(end)}
		if r.pending == nil {
			r.pending = &b
		} else {
			r.pending.End = b.End
			r.pending.Spikes = append(r.pending.Spikes, b.Spikes...)
			r.pending.Received = b.Received
		}
		r.snapMu.Lock()
		r.stats.Spikes += uint64(len(spikes))
		for _, s := range spikes {
			if s.Unit > 0 {
				r.stats.Sorted++
			}
		}
		r.stats.Late = r.m.late
		r.snapMu.Unlock()
		// Blocks whose samples are all merged are no longer needed,
		// beyond the deadline and stall windows.
		keep := now.Add(-2 * max(r.o.Deadline, r.o.StallTimeout))
		n := 0
		for n < len(r.blocks)-1 && r.blocks[n].at.Before(keep) && r.blocks[n].end <= end {
			n++
		}
		r.blocks = r.blocks[n:]
	}
	if r.closing && r.m.wm >= r.finalEnd {
		r.m.flushLosses()
	}
	if ls := r.m.takeLosses(); len(ls) > 0 {
		var evs []schema.Event
		var lost uint64
		for _, l := range ls {
			lost += (l.To - l.From) * uint64(l.Channels)
			evs = append(evs, schema.Event{Kind: schema.EventSortLost, Sample: l.To, Count: l.To - l.From,
				Channel: int32(l.First), Unit: -1, Value: float64(l.Channels),
				Detail: fmt.Sprintf("group %s (channels %d-%d): samples [%d, %d) unsorted: %s", l.Name, l.First, l.First+l.Channels-1, l.From, l.To, l.Why)})
		}
		r.snapMu.Lock()
		r.stats.Lost += lost
		r.snapMu.Unlock()
		if r.o.Events != nil {
			r.o.Events(r.m.wm, r.rate, evs)
		}
	}
	if r.m.changed {
		r.m.changed = false
		ts := r.m.templates(nil)
		r.snapMu.Lock()
		r.tmpl = ts
		r.stats.Units = len(ts)
		r.stats.Learned++
		r.snapMu.Unlock()
	}
}

// receivedFor returns the receive time of the first block whose end,
// less the lag, reaches end.
func (r *Remote) receivedFor(end uint64) time.Time {
	for _, b := range r.blocks {
		if b.end >= end+r.lag || b.end >= r.finalEnd && r.closing {
			return b.received
		}
	}
	if n := len(r.blocks); n > 0 {
		return r.blocks[n-1].received
	}
	return time.Time{}
}

// deliver hands the pending batch to the reader without waiting (or, at
// the end, waiting).
func (r *Remote) deliver(final bool) {
	if r.pending == nil {
		return
	}
	if final {
		r.batches <- *r.pending
		r.pending = nil
		return
	}
	select {
	case r.batches <- *r.pending:
		r.pending = nil
	default:
	}
}

func (r *Remote) event(e schema.Event) {
	if e.Sample == 0 {
		e.Sample = r.m.wm
	}
	if r.o.Events != nil {
		r.o.Events(r.m.wm, r.rate, []schema.Event{e})
	}
}

// State describes the merge and the leases, for diagnostics.
func (r *Remote) State() string {
	c := make(chan string, 1)
	select {
	case r.in <- inMsg{kind: 'd', state: c}:
		return <-c
	case <-r.ended:
		return "ended"
	}
}

func (r *Remote) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "merged %d, closing %v (end %d), %d blocks kept\n", r.m.wm, r.closing, r.finalEnd, len(r.blocks))
	for _, gr := range r.m.groups {
		fmt.Fprintf(&b, "  group %s: wm %d, %d spikes out, loss %v\n", gr.Name, gr.wm, len(gr.out), gr.loss)
		for _, l := range gr.leases {
			fmt.Fprintf(&b, "    lease %d on %s: started %v [%d, %d), next seq %d, stash %d, %d spikes\n",
				l.epoch, l.shard, l.started, l.first, l.wm, l.next, len(l.stash), len(l.spikes))
		}
	}
	for name, s := range r.shards {
		fmt.Fprintf(&b, "  shard %s: beat %v ago, leases %+v\n", name, time.Since(s.last).Round(time.Millisecond), s.beat.Leases)
	}
	return b.String()
}
