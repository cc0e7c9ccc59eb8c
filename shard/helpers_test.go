package shard

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// recording returns secs seconds of a simulated recording of channels
// channels in blocks of 10 ms.
func recording(t testing.TB, channels int, secs float64, seed int64) []device.Block {
	t.Helper()
	sm, err := sim.New(sim.Config{Channels: channels, Seed: seed, Duration: uint64(secs * 30000), BlockSamples: 300})
	if err != nil {
		t.Fatal(err)
	}
	var blocks []device.Block
	for {
		b, err := sm.Next(context.Background())
		if err == io.EOF {
			return blocks
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Samples = slices.Clone(b.Samples)
		blocks = append(blocks, b)
	}
}

// groupSort sorts each group of blocks with its own sorter in this
// process: what remote sorting must reproduce. Units are (group, local
// unit) pairs packed as group<<16 | unit.
func groupSort(t testing.TB, cfg sort.Config, blocks []device.Block, groups []Group) []sort.Spike {
	t.Helper()
	var all []sort.Spike
	for gi, g := range groups {
		cfg.Part = sort.Part{First: g.First, Total: blocks[0].Channels}
		s, err := sort.New(cfg, g.Channels, blocks[0].Rate, blocks[0].Gain)
		if err != nil {
			t.Fatal(err)
		}
		var out []sort.Spike
		for _, b := range blocks {
			sb := b
			sb.Channels = g.Channels
			sb.Samples = make([]int16, 0, g.Channels*b.Len())
			for i := range b.Len() {
				sb.Samples = append(sb.Samples, b.Samples[i*b.Channels+g.First:][:g.Channels]...)
			}
			if out, err = s.Process(sb, out); err != nil {
				t.Fatal(err)
			}
		}
		out = s.Flush(out)
		s.Close()
		for _, sp := range out {
			sp.Channel += int32(g.First)
			if sp.Unit > 0 {
				sp.Unit |= int32(gi) << 16
			}
			all = append(all, sp)
		}
	}
	slices.SortFunc(all, bySampleChannel)
	return all
}

func bySampleChannel(a, b sort.Spike) int {
	if c := cmp.Compare(a.Sample, b.Sample); c != 0 {
		return c
	}
	return cmp.Compare(a.Channel, b.Channel)
}

// sameSorting checks that got has exactly want's spikes and that its
// units are want's (group, unit) pairs renamed one to one.
func sameSorting(t testing.TB, got, want []sort.Spike) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d spikes, want %d", len(got), len(want))
	}
	fwd, back := map[int32]int32{}, map[int32]int32{}
	bad := 0
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Sample != w.Sample || g.Channel != w.Channel || g.Amplitude != w.Amplitude || (g.Unit == 0) != (w.Unit == 0) {
			if bad++; bad <= 5 {
				t.Errorf("spike %d: %+v, want %+v", i, g, w)
			}
			continue
		}
		if g.Unit == 0 {
			continue
		}
		if u, ok := fwd[w.Unit]; ok && u != g.Unit {
			if bad++; bad <= 5 {
				t.Errorf("spike %d: unit %d, but group %d unit %d was %d before", i, g.Unit, w.Unit>>16, w.Unit&0xffff, u)
			}
		}
		if u, ok := back[g.Unit]; ok && u != w.Unit {
			if bad++; bad <= 5 {
				t.Errorf("spike %d: unit %d stands for group %d unit %d and group %d unit %d", i, g.Unit, u>>16, u&0xffff, w.Unit>>16, w.Unit&0xffff)
			}
		}
		fwd[w.Unit], back[g.Unit] = g.Unit, w.Unit
	}
	if bad > 0 {
		t.Errorf("%d spikes differ", bad)
	}
}

// collector reads a Remote's batches and checks that they tile.
type collector struct {
	mu      sync.Mutex
	spikes  []sort.Spike
	next    uint64
	batches int
	errs    []string
	lat     []time.Duration
	events  []schema.Event
	at      []time.Time // when each batch came
	done    chan struct{}
}

// longestGap returns the longest time between two batches, or between
// from or to and a batch, within [from, to].
func (c *collector) longestGap(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var gap time.Duration
	prev := from
	for _, at := range c.at {
		if at.Before(from) {
			continue
		}
		if at.After(to) {
			at = to
		}
		gap = max(gap, at.Sub(prev))
		prev = at
		if at.Equal(to) {
			return gap
		}
	}
	return max(gap, to.Sub(prev))
}

func collect(r *Remote, start uint64, c *collector) *collector {
	c.next, c.done = start, make(chan struct{})
	go func() {
		defer close(c.done)
		for b := range r.Batches() {
			now := time.Now()
			c.mu.Lock()
			if b.First != c.next {
				c.errs = append(c.errs, fmt.Sprintf("batch [%d, %d) after %d", b.First, b.End, c.next))
			}
			if !b.Received.IsZero() {
				c.lat = append(c.lat, now.Sub(b.Received))
			}
			c.next = b.End
			c.batches++
			c.at = append(c.at, now)
			c.spikes = append(c.spikes, b.Spikes...)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) addEvents(_ uint64, _ float64, evs []schema.Event) {
	c.mu.Lock()
	c.events = append(c.events, evs...)
	c.mu.Unlock()
}

func (c *collector) eventsOf(k schema.EventKind) []schema.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []schema.Event
	for _, e := range c.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// startWorkers runs n in-process shards on their own connections to url.
func startWorkers(t testing.TB, url, rig string, n int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		w, err := NewWorker(nc, WorkerConfig{Name: fmt.Sprintf("w%d", i), Rig: rig})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			if err := w.Run(ctx); err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// pace sends blocks through r at speed × real time (0: as fast as the
// merge keeps up with, at most window samples ahead of it).
func send(t testing.TB, r *Remote, c *collector, blocks []device.Block, speed float64, window uint64) {
	t.Helper()
	t0 := time.Now()
	for _, b := range blocks {
		if speed > 0 {
			at := t0.Add(time.Duration(float64(b.First-blocks[0].First) / b.Rate / speed * float64(time.Second)))
			time.Sleep(time.Until(at))
		} else {
			stuck := time.Now()
			for {
				c.mu.Lock()
				ahead := b.First - min(b.First, c.next)
				c.mu.Unlock()
				if ahead <= window {
					break
				}
				if time.Since(stuck) > 20*time.Second {
					t.Fatalf("merged stream stuck at %d:\n%s", c.next, r.State())
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		b.Received = time.Now()
		if err := r.Send(&b); err != nil {
			t.Fatal(err)
		}
	}
}

// sortWithoutFault sorts blocks over the shards of rig through nc (groups
// of groupChannels) and checks that the merged stream tiles the device
// clock and holds exactly the spikes want (one sorter per group in this
// process). Deterministic learning runs inside Process: seconds of sorting
// stop while it does, so no real-time deadline here, and no heartbeat
// timeout a slow (race-detector) build would trip.
func sortWithoutFault(t *testing.T, nc *nats.Conn, rig string, groupChannels int, cfg sort.Config, blocks []device.Block, want []sort.Spike) (*collector, Stats) {
	t.Helper()
	c := &collector{}
	r, err := Start(context.Background(), Options{Conn: nc, Rig: rig, GroupChannels: groupChannels, Sort: cfg,
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
	return c, r.Stats()
}
