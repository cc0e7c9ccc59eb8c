package shard

import "time"

// entry is one message kept to be sent again.
type entry struct {
	seq        uint64
	at         time.Time
	data       []byte
	first, end uint64 // device samples of a raw block
	final      bool   // the end-of-stream marker
	lost       string // HeaderLost of a spike batch
}

// ring keeps the messages of the last Retain, oldest first, recycling
// their buffers.
type ring struct {
	es   []*entry
	head int // index of the oldest
	n    int
}

// put returns the entry to fill for message seq sent at now, dropping
// messages older than retain (their buffers are reused).
func (r *ring) put(seq uint64, now time.Time, retain time.Duration) *entry {
	for r.n > 0 && now.Sub(r.es[r.head].at) > retain {
		r.head = (r.head + 1) % len(r.es)
		r.n--
	}
	if r.n == len(r.es) {
		// Grow: unroll into a bigger slice.
		es := make([]*entry, max(16, 2*len(r.es)))
		for i := range r.n {
			es[i] = r.es[(r.head+i)%len(r.es)]
		}
		r.es, r.head = es, 0
	}
	i := (r.head + r.n) % len(r.es)
	e := r.es[i]
	if e == nil {
		e = &entry{}
		r.es[i] = e
	}
	r.n++
	*e = entry{seq: seq, at: now, data: e.data[:0]}
	return e
}

// each calls f for the kept messages with from <= seq < to, in order.
func (r *ring) each(from, to uint64, f func(*entry)) {
	for i := range r.n {
		e := r.es[(r.head+i)%len(r.es)]
		if e.seq >= from && e.seq < to {
			f(e)
		}
	}
}
