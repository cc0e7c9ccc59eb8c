package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// WorkerConfig configures a Worker, a sorting shard. The zero value of
// every field but Name takes the default beside it.
type WorkerConfig struct {
	// Name identifies the shard to the rig: a subject token, unique among
	// the rig's shards (default: "<host>-<pid>", made a token).
	Name string
	// Rig is the rig whose groups the shard sorts (stream.DefaultRig).
	Rig string
	// Capacity is the most groups the shard takes (0: no limit).
	Capacity int
	// Workers is the parallelism of each group's sorter (1: the groups
	// are the shard's parallelism).
	Workers int
	// Retain is how long output is kept to be sent again (2 s).
	Retain time.Duration
	// ResendWait is how long a shard waits for raw blocks it missed before
	// sorting on without them and saying so (500 ms).
	ResendWait time.Duration
	// BeatEvery is the heartbeat period (200 ms).
	BeatEvery time.Duration
	// PlanTimeout: without a plan from the rig for this long, the shard
	// drops its leases (3 s).
	PlanTimeout time.Duration
	// DrainTimeout bounds how long a stopping shard keeps sorting while
	// the rig moves its groups away (5 s).
	DrainTimeout time.Duration
	// Logger receives what happens; nil discards.
	Logger *slog.Logger
}

func (c WorkerConfig) withDefaults() WorkerConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Rig == "" {
		c.Rig = stream.DefaultRig
	}
	if c.Name == "" {
		c.Name = DefaultName()
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	def(&c.Retain, 2*time.Second)
	def(&c.ResendWait, 500*time.Millisecond)
	def(&c.BeatEvery, 200*time.Millisecond)
	def(&c.PlanTimeout, 3*time.Second)
	def(&c.DrainTimeout, 5*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// DefaultName returns "<host>-<pid>" with every character that is not
// allowed in a subject token replaced by '-'.
func DefaultName() string {
	h, _ := os.Hostname()
	b := []byte(h + "-" + strconv.Itoa(os.Getpid()))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > schema.MaxTokenLen {
		b = b[len(b)-schema.MaxTokenLen:]
	}
	return string(b)
}

// Worker is a sorting shard: it takes the channel groups the rig's plan
// gives it, sorts each with the sort package and publishes the group's
// spike batches and templates.
type Worker struct {
	c    WorkerConfig
	nc   *nats.Conn
	subj Subjects

	mu      sync.Mutex
	leases  map[leaseKey]*workLease
	leaving bool
	samples uint64
	busy    time.Duration
	hops    []time.Duration
}

type leaseKey struct {
	group string
	epoch uint64
}

// NewWorker returns a shard working over nc.
func NewWorker(nc *nats.Conn, c WorkerConfig) (*Worker, error) {
	c = c.withDefaults()
	if err := schema.ValidToken(c.Name); err != nil {
		return nil, fmt.Errorf("shard: name: %w", err)
	}
	if c.Capacity < 0 {
		return nil, fmt.Errorf("shard: capacity %d (want >= 0)", c.Capacity)
	}
	subj, err := NewSubjects(c.Rig)
	if err != nil {
		return nil, err
	}
	return &Worker{c: c, nc: nc, subj: subj, leases: map[leaseKey]*workLease{}}, nil
}

// Name returns the shard's name.
func (w *Worker) Name() string { return w.c.Name }

// Run works until ctx ends, then says it is leaving and keeps sorting
// until the rig has moved its groups (at most DrainTimeout).
func (w *Worker) Run(ctx context.Context) error {
	plans := make(chan Plan, 16)
	planSub, err := w.nc.Subscribe(w.subj.Plan(), func(m *nats.Msg) {
		var p Plan
		if err := decodeJSON(m.Data, &p, func() int { return p.V }); err != nil {
			w.c.Logger.Warn("shard: bad plan", "err", err)
			return
		}
		select {
		case plans <- p:
		default: // a newer one comes soon
		}
	})
	if err != nil {
		return fmt.Errorf("shard: subscribe %s: %w", w.subj.Plan(), err)
	}
	defer planSub.Unsubscribe()
	askSub, err := w.nc.Subscribe(w.subj.Ask(w.c.Name), w.ask)
	if err != nil {
		return fmt.Errorf("shard: subscribe %s: %w", w.subj.Ask(w.c.Name), err)
	}
	defer askSub.Unsubscribe()

	work, stopWork := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stopWork()
		wg.Wait()
		w.beat() // no leases any more
		_ = w.nc.FlushTimeout(time.Second)
	}()
	beat := time.NewTicker(w.c.BeatEvery)
	defer beat.Stop()
	w.beat()
	lastPlan := time.Now()
	var session string
	var drainUntil time.Time
	done := ctx.Done()
	for {
		select {
		case <-done:
			done = nil
			w.mu.Lock()
			w.leaving = true
			n := len(w.leases)
			w.mu.Unlock()
			w.c.Logger.Info("shard leaving", "leases", n)
			if n == 0 {
				return nil
			}
			drainUntil = time.Now().Add(w.c.DrainTimeout)
			w.beat()
		case p := <-plans:
			if p.Rig != w.c.Rig {
				continue
			}
			lastPlan = time.Now()
			if p.Session != session {
				session = p.Session
			}
			w.reconcile(work, &wg, p)
			if done == nil && w.count() == 0 {
				return nil
			}
		case <-beat.C:
			w.beat()
			if time.Since(lastPlan) > w.c.PlanTimeout && w.count() > 0 {
				w.c.Logger.Warn("shard: no plan from the rig; dropping leases", "for", time.Since(lastPlan).Round(time.Millisecond))
				w.reconcile(work, &wg, Plan{})
			}
			if done == nil && time.Now().After(drainUntil) {
				w.c.Logger.Warn("shard: stopping with leases the rig has not moved", "leases", w.count())
				return nil
			}
		}
	}
}

func (w *Worker) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.leases)
}

// reconcile starts the leases the plan gives this shard and stops the
// others.
func (w *Worker) reconcile(ctx context.Context, wg *sync.WaitGroup, p Plan) {
	want := map[leaseKey]Group{}
	for _, g := range p.Groups {
		for _, l := range g.Leases {
			if l.Shard == w.c.Name {
				want[leaseKey{g.Name, l.Epoch}] = g.Group
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, l := range w.leases {
		if _, ok := want[k]; !ok || l.session != p.Session {
			l.cancel()
			delete(w.leases, k)
		}
	}
	for k, g := range want {
		if _, ok := w.leases[k]; ok {
			continue
		}
		if schema.ValidToken(g.Name) != nil || g.Channels <= 0 || g.First < 0 {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		l := &workLease{w: w, key: k, group: g, session: p.Session, cancel: cancel, ask: make(chan uint64, 4)}
		w.leases[k] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.run(lctx); err != nil && !errors.Is(err, context.Canceled) {
				w.c.Logger.Warn("shard: lease failed", "group", g.Name, "lease", k.epoch, "err", err)
			}
		}()
	}
}

// beat publishes the heartbeat.
func (w *Worker) beat() {
	host, _ := os.Hostname()
	w.mu.Lock()
	b := Beat{V: Protocol, Shard: w.c.Name, Host: host, PID: os.Getpid(), Capacity: w.c.Capacity,
		Leaving: w.leaving, Leases: []LeaseStatus{}, Samples: w.samples, BusyNS: int64(w.busy)}
	if n := len(w.hops); n > 0 {
		slices.Sort(w.hops)
		b.HopP50NS, b.HopP99NS = int64(w.hops[n/2]), int64(w.hops[min(n-1, n*99/100)])
		w.hops = w.hops[:0]
	}
	for _, l := range w.leases {
		b.Leases = append(b.Leases, l.status())
	}
	w.mu.Unlock()
	slices.SortFunc(b.Leases, func(a, b LeaseStatus) int {
		if a.Group != b.Group {
			if a.Group < b.Group {
				return -1
			}
			return 1
		}
		return int(a.Epoch) - int(b.Epoch)
	})
	data, _ := json.Marshal(b)
	_ = w.nc.Publish(w.subj.Beat(), data)
}

// ask hands the rig's request to send output again to its lease.
func (w *Worker) ask(m *nats.Msg) {
	var a Ask
	if err := decodeJSON(m.Data, &a, func() int { return a.V }); err != nil {
		w.c.Logger.Warn("shard: bad ask", "err", err)
		return
	}
	w.mu.Lock()
	l := w.leases[leaseKey{a.Group, a.Epoch}]
	w.mu.Unlock()
	if l == nil {
		return
	}
	select {
	case l.ask <- a.From:
	default:
	}
}

// workLease is one lease being sorted.
type workLease struct {
	w       *Worker
	key     leaseKey
	group   Group
	session string
	cancel  context.CancelFunc
	ask     chan uint64

	smu   sync.Mutex
	ready bool
	seq   uint64
	end   uint64
	noise []float32 // the sorter's, after the last block (the sorter is busy while it learns)
}

func (l *workLease) status() LeaseStatus {
	l.smu.Lock()
	defer l.smu.Unlock()
	return LeaseStatus{Group: l.key.group, Epoch: l.key.epoch, Ready: l.ready, Seq: l.seq, End: l.end,
		NoiseUV: slices.Clone(l.noise)}
}

// fetch asks the rig for the lease's details, retrying until ctx ends.
func (l *workLease) fetch(ctx context.Context) (Lease, error) {
	w := l.w
	req, _ := json.Marshal(LeaseRequest{V: Protocol, Session: l.session, Shard: w.c.Name, Group: l.key.group, Epoch: l.key.epoch})
	for {
		m, err := w.nc.RequestWithContext(withTimeout(ctx, 2*time.Second), w.subj.Lease(), req)
		if err == nil {
			var ls Lease
			if err := decodeJSON(m.Data, &ls, func() int { return ls.V }); err != nil {
				return ls, err
			}
			if ls.Error != "" {
				return ls, fmt.Errorf("shard: the rig refused lease %d of group %s: %s", l.key.epoch, l.key.group, ls.Error)
			}
			if ls.Name != l.key.group || ls.Epoch != l.key.epoch || ls.Channels != l.group.Channels || ls.First != l.group.First {
				return ls, fmt.Errorf("%w: lease reply for group %s lease %d does not match the plan", ErrProtocol, ls.Name, ls.Epoch)
			}
			return ls, nil
		}
		if ctx.Err() != nil {
			return Lease{}, ctx.Err()
		}
		select {
		case <-ctx.Done():
			return Lease{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func withTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}

// run sorts the lease's group until ctx ends.
func (l *workLease) run(ctx context.Context) error {
	w := l.w
	ls, err := l.fetch(ctx)
	if err != nil {
		return err
	}
	in := make(chan *nats.Msg, 1024)
	recv := func(m *nats.Msg) {
		select {
		case in <- m:
		case <-ctx.Done():
		}
	}
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, subject := range []string{w.subj.Raw(l.group.Name), w.subj.Resend(l.group.Name)} {
		s, err := w.nc.Subscribe(subject, recv)
		if err != nil {
			return fmt.Errorf("shard: subscribe %s: %w", subject, err)
		}
		_ = s.SetPendingLimits(-1, 512<<20)
		subs = append(subs, s)
	}
	if err := w.nc.FlushTimeout(2 * time.Second); err != nil {
		return fmt.Errorf("shard: subscribing to group %s: %w", l.group.Name, err)
	}
	l.smu.Lock()
	l.ready = true
	l.smu.Unlock()
	w.beat() // tell the rig at once

	s := &sortState{l: l, cfg: ls.Sort, warm: ls.FromSeq > 0, expect: ls.FromSeq, retain: w.c.Retain}
	s.cfg.Workers = w.c.Workers
	defer s.close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-in:
			if err := s.take(m); err != nil {
				return err
			}
		case from := <-l.ask:
			s.resend(from)
		case <-tick.C:
			if err := s.checkGap(); err != nil {
				return err
			}
		}
	}
}

// templateEvery is the period, in seconds of device time, of a shard's
// template snapshots (as the rig's own).
const templateEvery = 10.0

// sortState is a lease's sorter and the order of its raw blocks.
type sortState struct {
	l      *workLease
	cfg    sort.Config
	sorter *sort.Sorter
	retain time.Duration

	expect  uint64 // next raw sequence number (0: take the first that comes)
	stash   map[uint64]*nats.Msg
	gapAt   time.Time // when the oldest missing block was noticed
	nakAt   time.Time
	lastEnd uint64 // end of the last block sorted
	lost    []Range

	warm     bool // output goes out (a fresh session's first lease sorts from its first block)
	done     uint64
	learned  uint64
	nextTmpl uint64 // device sample of the next periodic snapshot
	seq      uint64 // output sequence
	out      ring
	spikes   []sort.Spike
	noise    []float32
	buf      []byte
	ended    bool
	raw      schema.RawBlock
}

func (s *sortState) close() {
	if s.sorter != nil {
		s.sorter.Close()
	}
}

// take handles a raw message: in order, or kept until the missing ones
// come.
func (s *sortState) take(m *nats.Msg) error {
	seq, err := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
	if err != nil || seq == 0 {
		return nil // not from a rig doing remote sorting
	}
	if s.expect == 0 {
		s.expect = seq
	}
	switch {
	case seq < s.expect:
		return nil
	case seq > s.expect:
		if s.stash == nil {
			s.stash = map[uint64]*nats.Msg{}
		}
		if len(s.stash) < maxStash {
			s.stash[seq] = m
		}
		if s.gapAt.IsZero() {
			s.gapAt = time.Now()
			s.nak(s.expect, seq)
		}
		return nil
	}
	if err := s.block(m); err != nil {
		return err
	}
	s.expect++
	return s.drain()
}

// drain sorts the kept blocks that are now in order.
func (s *sortState) drain() error {
	for {
		m, ok := s.stash[s.expect]
		if !ok {
			break
		}
		delete(s.stash, s.expect)
		if err := s.block(m); err != nil {
			return err
		}
		s.expect++
	}
	if len(s.stash) == 0 {
		s.gapAt = time.Time{}
	} else if s.gapAt.IsZero() {
		s.gapAt = time.Now()
	}
	return nil
}

func (s *sortState) nak(from, to uint64) {
	s.nakAt = time.Now()
	l := s.l
	b, _ := json.Marshal(Nak{V: Protocol, Group: l.group.Name, From: from, To: to})
	_ = l.w.nc.Publish(l.w.subj.Nak(), b)
}

// checkGap asks again for missing blocks, and after ResendWait sorts on
// without them, recording their samples as lost.
func (s *sortState) checkGap() error {
	if s.gapAt.IsZero() || len(s.stash) == 0 {
		return nil
	}
	next := uint64(0)
	for q := range s.stash {
		if next == 0 || q < next {
			next = q
		}
	}
	if time.Since(s.gapAt) < s.l.w.c.ResendWait {
		if time.Since(s.nakAt) >= 150*time.Millisecond {
			s.nak(s.expect, next)
		}
		return nil
	}
	m := s.stash[next]
	var rb schema.RawBlock
	if err := rb.UnmarshalBinary(m.Data); err == nil && s.sorter != nil && rb.Sample > s.lastEnd {
		s.lost = append(s.lost, Range{s.lastEnd, rb.Sample})
	}
	s.l.w.c.Logger.Warn("shard: raw blocks lost", "group", s.l.group.Name, "from_seq", s.expect, "to_seq", next)
	s.expect = next
	s.gapAt = time.Time{}
	return s.drain()
}

// block sorts one raw block and publishes what it completes.
func (s *sortState) block(m *nats.Msg) error {
	l := s.l
	if err := s.raw.UnmarshalBinary(m.Data); err != nil {
		return fmt.Errorf("shard: group %s: %w", l.group.Name, err)
	}
	rb := &s.raw
	if rb.Channels != l.group.Channels || rb.FirstChannel != l.group.First {
		return fmt.Errorf("shard: group %s: raw block of channels %d+%d, the lease is for %d+%d",
			l.group.Name, rb.FirstChannel, rb.Channels, l.group.First, l.group.Channels)
	}
	recv := time.Now()
	if rb.Published > 0 {
		l.w.mu.Lock()
		if len(l.w.hops) < 1<<16 {
			l.w.hops = append(l.w.hops, recv.Sub(time.Unix(0, rb.Published)))
		}
		l.w.mu.Unlock()
	}
	if s.ended {
		return nil
	}
	final := m.Header.Get(HeaderEnd) != ""
	if s.sorter == nil {
		if final {
			s.ended = true
			return nil
		}
		var err error
		if s.sorter, err = sort.New(s.cfg, rb.Channels, rb.Rate, rb.Gain); err != nil {
			return fmt.Errorf("shard: group %s: %w", l.group.Name, err)
		}
		s.done = rb.Sample
	}
	if final {
		s.ended = true
		s.spikes = s.sorter.Flush(s.spikes[:0])
		s.publishTemplates(rb.Sample, true)
		return s.publishBatch(s.done, max(s.lastEnd, s.done))
	}
	b := device.Block{First: rb.Sample, Rate: rb.Rate, Channels: rb.Channels, Gain: rb.Gain, Samples: rb.Samples}
	t0 := time.Now()
	var err error
	s.spikes, err = s.sorter.Process(b, s.spikes[:0])
	busy := time.Since(t0)
	if err != nil {
		return fmt.Errorf("shard: group %s: %w", l.group.Name, err)
	}
	l.w.mu.Lock()
	l.w.samples += uint64(b.Len())
	l.w.busy += busy
	l.w.mu.Unlock()
	s.lastEnd = b.End()
	s.noise = s.sorter.Noise(s.noise[:0])
	l.smu.Lock()
	l.noise = append(l.noise[:0], s.noise...)
	l.smu.Unlock()
	lag := uint64(s.sorter.Lag())
	complete := max(b.End(), lag) - lag
	if !s.warm {
		// A lease that joins a running stream sends nothing until its
		// sorter has a noise estimate (its thresholds): what it would
		// send before is not sorted.
		if !slices.ContainsFunc(s.noise, func(v float32) bool { return v > 0 }) &&
			s.sorter.Stats().Samples < uint64(2*max(s.cfg.NoiseWindow, 0.5)*rb.Rate) {
			return nil
		}
		s.warm = true
		s.done = complete
		s.lost = nil
		return nil
	}
	s.publishTemplates(b.End(), false)
	if complete > s.done {
		return s.publishBatch(s.done, complete)
	}
	return nil
}

// publishTemplates sends a full snapshot when learning changed the
// templates, every templateEvery of device time (templates drift) and
// when forced (at the end).
func (s *sortState) publishTemplates(sample uint64, force bool) {
	st := s.sorter.Stats()
	if st.Learned == s.learned && sample < s.nextTmpl && !force {
		return
	}
	if st.Learned == 0 && st.Units == 0 {
		return
	}
	s.learned = st.Learned
	s.nextTmpl = sample + uint64(templateEvery*s.sorter.Rate())
	ts := s.sorter.Templates()
	for i := range ts {
		ts[i].Channel += int32(s.l.group.First)
	}
	tb := schema.TemplateBatch{Header: schema.Header{Flags: schema.FlagFullSnapshot, Sample: sample, Rate: s.sorter.Rate(),
		Published: time.Now().UnixNano()}, Templates: ts}
	data, err := tb.AppendBinary(nil)
	if err != nil {
		s.l.w.c.Logger.Warn("shard: templates", "err", err)
		return
	}
	s.send(data, nil)
}

func (s *sortState) publishBatch(first, end uint64) error {
	n := 0
	for _, sp := range s.spikes {
		if sp.Sample >= first {
			sp.Channel += int32(s.l.group.First)
			s.spikes[n] = sp
			n++
		}
	}
	s.spikes = s.spikes[:n]
	s.buf = schema.AppendSpikes(s.buf[:0], first, end, s.sorter.Rate(), time.Now().UnixNano(), s.spikes)
	var lost []Range
	if len(s.lost) > 0 {
		lost, s.lost = s.lost, nil
	}
	s.send(s.buf, lost)
	s.done = end
	s.l.smu.Lock()
	s.l.end = end
	s.l.smu.Unlock()
	return nil
}

// send publishes one output message and keeps it to be sent again.
func (s *sortState) send(data []byte, lost []Range) {
	s.seq++
	e := s.out.put(s.seq, time.Now(), s.retain)
	e.data = append(e.data[:0], data...)
	if len(lost) > 0 {
		e.lost = FormatRanges(lost)
	}
	s.publish(e)
	s.l.smu.Lock()
	s.l.seq = s.seq
	s.l.smu.Unlock()
}

func (s *sortState) publish(e *entry) {
	l := s.l
	h := nats.Header{
		HeaderSeq:   []string{strconv.FormatUint(e.seq, 10)},
		HeaderLease: []string{strconv.FormatUint(l.key.epoch, 10)},
		HeaderShard: []string{l.w.c.Name},
	}
	if e.lost != "" {
		h.Set(HeaderLost, e.lost)
	}
	_ = l.w.nc.PublishMsg(&nats.Msg{Subject: l.w.subj.Output(l.group.Name), Header: h, Data: e.data})
}

// resend publishes the kept output from sequence number from on.
func (s *sortState) resend(from uint64) {
	s.out.each(from, s.seq+1, s.publish)
}
