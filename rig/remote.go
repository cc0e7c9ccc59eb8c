package rig

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/shard"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// Remote sorting (Config.Shards): the loop hands each block to a
// shard.Remote, which publishes its channel groups to the shards, and
// takes the merged spike stream from the Remote's batches as they come
// (loop.go, remoteBatch): publishing, recording, quality and the decoder
// run on it as on the local sorter's spikes. A new segment of the session
// ends the Remote (flushing the shards) and the next block starts another,
// seeded with the templates learned so far when the channels stay.

// shardDefaults checks Config.Shards and, for the embedded server, adds
// the shard role's credential.
func (c *Config) shardDefaults() error {
	if c.Shards == nil {
		return nil
	}
	switch {
	case c.Mode != device.ModeRaw:
		return configErrorf("remote sorting sorts raw samples: --mode %s sends none", c.Mode)
	case c.Sort.Reference != sort.RefNone:
		return configErrorf("remote sorting takes no common reference (--reference %v): each channel group would subtract its own", c.Sort.Reference)
	case c.Sort.Probe != nil:
		return configErrorf("remote sorting sorts every channel alone: a probe layout (--probe) would join spikes across channel groups")
	case c.Shards.GroupChannels < 0 || c.Shards.MinShards < 0 || c.Shards.Deadline < 0:
		return configErrorf("remote sorting: %d channels per group, %d shards, deadline %v: want >= 0",
			c.Shards.GroupChannels, c.Shards.MinShards, c.Shards.Deadline)
	}
	if !c.NATS.Embedded() {
		return nil
	}
	if c.NATS.Credentials == nil {
		creds, err := stream.NewCredentials(c.BehaviourSubject != "")
		if err != nil {
			return err
		}
		c.NATS.Credentials = creds
	}
	return c.NATS.Credentials.AddShard()
}

// remoteSorter sorts on shards: the loop's eventSorter with remote
// sorting. Process only sends; the spikes come on batches.
type remoteSorter struct {
	p   *Rig
	ctx context.Context
	r   *shard.Remote // nil between segments
	// Counters of the Remotes of earlier segments, so Stats only grow.
	base  sort.Stats
	last  *shard.Remote // the latest Remote, for Templates and Noise after a flush
	lag   int
	seeds []sort.Template // templates to start the next Remote with
	chans int
}

// startRemote starts remote sorting of the stream whose first block is
// first: it waits until shards have taken every channel group. stop
// releases the shards of a run that ends on an error (the loop's flush
// ends a run that ends well).
func (p *Rig) startRemote(ctx context.Context, first *device.Block) (stop func(), err error) {
	if p.cfg.Shards == nil {
		return func() {}, nil
	}
	if first.Spikes != nil || first.Features != nil {
		return nil, fmt.Errorf("remote sorting sorts raw samples: %s sends spike events or features", p.src.name)
	}
	rs := &remoteSorter{p: p, ctx: ctx, lag: p.sorter.Lag()}
	url := stream.RedactURL(p.pub.URL())
	how := fmt.Sprintf("spikeline shard --nats %s --rig %s", url, p.cfg.NATS.Rig)
	if p.runFile.Shard != "" {
		how += " --nats-nkey " + p.runFile.Shard
	}
	o := p.cfg.Shards
	size := o.GroupChannels
	if size == 0 {
		size = shard.DefaultGroupChannels
	}
	fmt.Fprintf(p.stdout, "spikeline: sorting on shards (channel groups of %d): waiting for %d; start them with: %s\n",
		size, max(o.MinShards, 1), how)
	if err := rs.start(first); err != nil {
		return nil, err
	}
	p.events = rs
	return func() {
		rs.Flush(nil) // nothing left on a run that ended well

	}, nil
}

// start starts a Remote at block b.
func (rs *remoteSorter) start(b *device.Block) error {
	p := rs.p
	o := *p.cfg.Shards
	o.Conn, o.Rig, o.Logger = p.pub.Conn(), p.cfg.NATS.Rig, p.log
	o.Sort = p.cfg.Sort
	if rs.seeds != nil && rs.chans == b.Channels {
		o.Sort.Templates = rs.seeds
	}
	o.Events = func(sample uint64, rate float64, evs []schema.Event) { p.pub.PublishEvents(sample, rate, evs) }
	r, err := shard.Start(rs.ctx, o, b)
	if err != nil {
		return err
	}
	rs.r, rs.last, rs.lag, rs.chans = r, r, r.Lag(), b.Channels
	p.log.Info("sorting on shards", "groups", len(r.Groups()), "channels", b.Channels)
	return nil
}

// batches returns the merged stream's batches (nil between segments).
func (rs *remoteSorter) batches() <-chan shard.Batch {
	if rs == nil || rs.r == nil {
		return nil
	}
	return rs.r.Batches()
}

// remoteSorting returns the remote sorter, or nil when sorting is local.
func (p *Rig) remoteSorting() *remoteSorter {
	rs, _ := p.events.(*remoteSorter)
	return rs
}

// Process sends b to the shards; the spikes come on batches.
func (rs *remoteSorter) Process(b device.Block, dst []sort.Spike) ([]sort.Spike, error) {
	if rs.r == nil {
		if err := rs.start(&b); err != nil {
			return dst, err
		}
	}
	return dst, rs.r.Send(&b)
}

// flushTimeout bounds the wait for the shards' last spikes at the end of
// a segment beyond the merge deadline (by which the Remote has given up
// on late groups itself); what has not come is reported lost.
const flushTimeout = 10 * time.Second

// Flush ends the Remote: the shards flush their sorters and every spike
// the merged stream has not delivered yet is appended to dst.
func (rs *remoteSorter) Flush(dst []sort.Spike) []sort.Spike {
	if rs.r == nil {
		return dst
	}
	r := rs.r
	rs.r = nil
	deadline := rs.p.cfg.Shards.Deadline
	if deadline <= 0 {
		deadline = 500 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline+flushTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Close(ctx) }()
	for b := range r.Batches() {
		dst = append(dst, b.Spikes...)
	}
	if err := <-done; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		rs.p.log.Warn("remote sorting: closing", "err", err)
	}
	st := rs.stats(r)
	rs.base = st
	rs.seeds = r.Templates()
	return dst
}

func (rs *remoteSorter) stats(r *shard.Remote) sort.Stats {
	s := r.Stats()
	st := rs.base
	st.Samples += s.ShardWork / uint64(max(s.Groups, 1))
	st.Spikes += s.Spikes
	st.Sorted += s.Sorted
	st.Learned += s.Learned
	st.Units = s.Units
	return st
}

func (rs *remoteSorter) Stats() sort.Stats {
	if rs.r == nil {
		return rs.base
	}
	return rs.stats(rs.r)
}

func (rs *remoteSorter) Templates() []sort.Template {
	if rs.last == nil {
		return nil
	}
	return rs.last.Templates()
}

func (rs *remoteSorter) Noise(dst []float32) []float32 {
	if rs.last == nil {
		return dst
	}
	return rs.last.Noise(dst)
}

func (rs *remoteSorter) Lag() int { return rs.lag }

// remoteBatch publishes, records and decodes a batch of the merged
// stream of remote sorting, as sort does the local sorter's spikes.
func (l *sortLoop) remoteBatch(bt *shard.Batch) error {
	p := l.p
	l.spikes = append(l.spikes[:0], bt.Spikes...)
	if err := l.emit(bt.End, bt.Rate, bt.Received); err != nil {
		return err
	}
	if !bt.Received.IsZero() {
		l.win.latency = append(l.win.latency, time.Since(bt.Received))
	}
	// The live page: the spikes, with no new samples.
	p.feedView(&device.Block{First: l.lastEnd, Rate: bt.Rate}, l.spikes)
	l.decodeSpikes(l.lastEnd, bt.Rate)
	return nil
}
