package device

import (
	"context"
	"time"
)

// Pacer releases Blocks no faster than the device produced them, for
// replaying recordings in real time (or faster, or slower).
//
// The first Block anchors the clock: a Block is due when its last sample
// would have been acquired, at anchor + (End - anchor sample) / Rate /
// Speed. Wait sleeps until then. A counter that goes backwards (a device
// reset or a Seek) or a change of rate re-anchors the clock on that Block;
// a gap does not, since the lost samples took time too. The zero Pacer,
// and any Pacer with Speed <= 0, does not wait.
type Pacer struct {
	Speed float64 // 1 = real time, 2 = twice as fast; <= 0 = no pacing
	// MaxLag, if > 0, bounds how far behind schedule the consumer may
	// fall before the Pacer re-anchors instead of releasing the backlog
	// as fast as it can.
	MaxLag time.Duration

	anchored bool
	wall     time.Time // wall-clock time of the anchor
	sample   uint64    // device sample index of the anchor
	rate     float64
	end      uint64 // End of the previous Block

	timer *time.Timer
	now   func() time.Time // for tests; time.Now if nil
}

func (p *Pacer) reset() { p.anchored = false }

func (p *Pacer) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// Due returns the wall-clock time at which b is due, updating the anchor
// as described on Pacer. It returns the zero Time if p does not pace.
func (p *Pacer) Due(b *Block) time.Time {
	if p.Speed <= 0 || !(b.Rate > 0) {
		return time.Time{}
	}
	now := p.clock()
	if !p.anchored || b.Rate != p.rate || b.First < p.end {
		p.anchored = true
		p.wall, p.sample, p.rate = now, b.First, b.Rate
	}
	p.end = b.End()
	due := p.at(p.end)
	if p.MaxLag > 0 && now.Sub(due) > p.MaxLag {
		// Too far behind: start again from now.
		p.wall, p.sample = now, b.First
		due = p.at(p.end)
	}
	return due
}

func (p *Pacer) at(sample uint64) time.Time {
	sec := float64(sample-p.sample) / p.rate / p.Speed
	return p.wall.Add(time.Duration(sec * float64(time.Second)))
}

// Wait sleeps until b is due or ctx ends, returning ctx.Err() in that case.
func (p *Pacer) Wait(ctx context.Context, b *Block) error {
	due := p.Due(b)
	if due.IsZero() {
		return ctx.Err()
	}
	d := due.Sub(p.clock())
	if d <= 0 {
		return ctx.Err()
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		p.timer.Stop()
		return ctx.Err()
	case <-p.timer.C:
		return nil
	}
}

// PacedSource wraps a Source and releases its Blocks through a Pacer.
type PacedSource struct {
	Source
	Pacer Pacer
}

// Paced returns src releasing its Blocks at speed times real time (see
// Pacer); speed <= 0 leaves it unpaced.
func Paced(src Source, speed float64) *PacedSource {
	return &PacedSource{Source: src, Pacer: Pacer{Speed: speed}}
}

// Next returns the next Block of the wrapped Source when it is due. When
// paced, the Block's Received time is when it was released, as a device
// delivering it in real time would have it arrive, so latencies measured
// from it do not include the wait for its last sample.
func (s *PacedSource) Next(ctx context.Context) (Block, error) {
	b, err := s.Source.Next(ctx)
	if err != nil {
		return b, err
	}
	if err := s.Pacer.Wait(ctx, &b); err != nil {
		return Block{}, err
	}
	if s.Pacer.Speed > 0 {
		b.Received = time.Now()
	}
	return b, nil
}
