package sort

import (
	"fmt"
	"slices"
)

// WatchLen is the number of band-passed samples kept per watched channel
// (about 2.2 s at 30 kHz): enough for a display that reads them a few
// times a second.
const WatchLen = 1 << 16

// watched is the band-passed signal of one channel a display asked for.
type watched struct {
	ch   int       // channel, sorter-wide
	c    int       // column in its shard
	ring []float32 // WatchLen samples, indexed by stream row & (WatchLen-1)
}

// Watch sets the channels whose band-passed signal the sorter keeps for
// Trace (nil or empty: none). It costs one copy per watched channel and
// sample, in the filter, so a display can show the signal the detector
// sees without a second filter. Channels out of range are an error. Safe
// to call from any goroutine; it waits for a running Process.
func (s *Sorter) Watch(channels []int) error {
	for _, ch := range channels {
		if ch < 0 || ch >= s.channels {
			return fmt.Errorf("sort: watch channel %d: want 0..%d", ch, s.channels-1)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shards {
		var keep []*watched
		for _, w := range sh.watch {
			if slices.Contains(channels, w.ch) {
				keep = append(keep, w)
			}
		}
		for _, ch := range channels {
			if ch < sh.c0 || ch >= sh.c0+sh.n || slices.ContainsFunc(keep, func(w *watched) bool { return w.ch == ch }) {
				continue
			}
			keep = append(keep, &watched{ch: ch, c: ch - sh.c0, ring: make([]float32, WatchLen)})
		}
		sh.watch = keep
	}
	return nil
}

// Trace appends to dst the last n (at most WatchLen) band-passed samples,
// in µV, of a channel given to Watch, and returns it with the device index
// one past the last sample. Samples before the channel was watched, or
// before the current segment (after a gap), are zero. The signal is the
// filter's output before any common reference and before matched
// templates are subtracted. ok is false when ch is not watched.
func (s *Sorter) Trace(ch, n int, dst []float32) (out []float32, end uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch < 0 || ch >= s.channels {
		return dst, 0, false
	}
	sh := s.shardOf(ch)
	i := slices.IndexFunc(sh.watch, func(w *watched) bool { return w.ch == ch })
	if i < 0 {
		return dst, 0, false
	}
	w := sh.watch[i]
	n = min(n, WatchLen)
	from := s.tau - min(s.tau, uint64(n))
	if s.tau < uint64(n) {
		dst = append(dst, make([]float32, uint64(n)-s.tau)...)
	}
	for t := from; t < s.tau; t++ {
		v := w.ring[t&(WatchLen-1)]
		if t < s.segTau {
			v = 0
		}
		dst = append(dst, v)
	}
	if s.started {
		end = s.segFirst + (s.tau - s.segTau)
	}
	return dst, end, true
}

// tap copies the watched channels of rows [from, from+rows) of the ring.
func (sh *shard) tap(from uint64, rows int) {
	for _, w := range sh.watch {
		for i := range rows {
			t := from + uint64(i)
			w.ring[t&(WatchLen-1)] = sh.ring[int(t&sh.mask)*sh.n+w.c]
		}
	}
}
