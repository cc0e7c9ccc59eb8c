package view

import (
	"sync/atomic"

	"github.com/spikeline/spikeline/device"
)

// Raw-signal checks of the in-process feed (Live.Feed): which channels sit
// at the int16 rails (a saturated amplifier) and which are a flat line (an
// open input, a dead ADC channel). They run on the pipeline's hot path, so
// each block scans only a stripe of channels in turn: with the default 16
// channels per block and 1 ms blocks, every channel of a 1,024-channel
// probe is looked at every 64 ms, and a saturation that lasts longer than
// that is always seen.

const (
	// railHigh and railLow are the int16 rails. -32767 rather than
	// -32768: ADCs with a symmetric range clip there.
	railHigh = 32767
	railLow  = -32767
	// flatMinLen is the fewest samples of one channel a block must hold
	// for min == max to mean a flat line.
	flatMinLen = 8
)

// railScan keeps, per channel, when it was last seen at a rail, last seen
// moving, and last scanned (device sample indices, one past the block;
// 0: never). scan is called by one goroutine; the flags may be read by
// any.
type railScan struct {
	channels int
	stripe   int
	next     int // first channel of the next stripe
	satAt    []atomic.Uint64
	movedAt  []atomic.Uint64
	seenAt   []atomic.Uint64
}

func newRailScan(channels, stripe int) *railScan {
	stripe = max(1, min(stripe, channels))
	return &railScan{channels: channels, stripe: stripe,
		satAt: make([]atomic.Uint64, channels), movedAt: make([]atomic.Uint64, channels), seenAt: make([]atomic.Uint64, channels)}
}

// scan looks at the next stripe of channels of b. It does not allocate.
func (r *railScan) scan(b *device.Block) {
	n := b.Len()
	if b.Channels != r.channels || n == 0 {
		return
	}
	end := b.End()
	s := b.Samples
	for k := 0; k < r.stripe; k++ {
		c := r.next
		r.next++
		if r.next == r.channels {
			r.next = 0
		}
		lo, hi := s[c], s[c]
		for i := c + r.channels; i < len(s); i += r.channels {
			x := s[i]
			lo = min(lo, x)
			hi = max(hi, x)
		}
		if hi >= railHigh || lo <= railLow {
			r.satAt[c].Store(end)
		}
		if n < flatMinLen {
			continue // too short to tell a flat line from a quiet moment
		}
		switch {
		case hi != lo:
			r.movedAt[c].Store(end)
		case r.seenAt[c].Load() == 0:
			// Seen for the first time: a flat line is reported only
			// once it has lasted.
			r.movedAt[c].Store(b.First)
		}
		r.seenAt[c].Store(end)
	}
}

// flags appends the channels that hit a rail within recent samples of now
// to sat, and those that have been flat for at least flatFor samples to
// flat.
func (r *railScan) flags(now, recent, flatFor uint64, sat, flat []int32) ([]int32, []int32) {
	for c := range r.channels {
		if t := r.satAt[c].Load(); t > 0 && t+recent >= now {
			sat = append(sat, int32(c))
		}
		seen := r.seenAt[c].Load()
		if seen > 0 && seen-min(seen, r.movedAt[c].Load()) >= flatFor {
			flat = append(flat, int32(c))
		}
	}
	return sat, flat
}
