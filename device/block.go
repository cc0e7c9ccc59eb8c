package device

import (
	"context"
	"fmt"
	"time"

	"github.com/spikeline/spikeline/stream/schema"
)

// Block is a run of contiguous multichannel samples from one device.
//
// Samples are int16 counts in time-major (interleaved) order: sample t of
// channel c is Samples[t*Channels+c]. Multiply by Gain to get microvolts.
// A Block never papers over a gap: if samples were lost, the next Block's
// First says how many, and the Events of that Block report it.
type Block struct {
	First    uint64    // device sample index of the first sample (device clock)
	Rate     float64   // sample rate in Hz
	Channels int       // number of channels
	Gain     float64   // microvolts per count
	Samples  []int16   // len = Channels * Len(), time-major
	Received time.Time // host receive time (monotonic), for latency accounting
	Events   []Event   // anomalies seen since the previous Block, in stream order

	// A headstage in spike-event or feature mode (docs/protocol.md,
	// version 2) sends Spikes or Features instead of samples: the Block
	// then has no Samples (Len() is 0) and covers Span samples per
	// channel from First. Settings, when not nil, are the device's
	// detector settings, new since the previous Block.
	Span     int
	Spikes   *Spikes
	Features *Features
	Settings *Settings
}

// Len returns the number of samples per channel in the block.
func (b *Block) Len() int {
	if b.Channels <= 0 {
		return 0
	}
	return len(b.Samples) / b.Channels
}

// End returns the device sample index one past the block's last sample
// (or the end of the Span it covers).
func (b *Block) End() uint64 {
	if len(b.Samples) == 0 && b.Span > 0 {
		return b.First + uint64(b.Span)
	}
	return b.First + uint64(b.Len())
}

// At returns the count of channel ch at sample t (0-based within the block).
func (b *Block) At(t, ch int) int16 { return b.Samples[t*b.Channels+ch] }

// Source yields checked Blocks in device-sample order. Next blocks until a
// Block is ready, the context ends, or the source is exhausted (io.EOF).
// The returned Block's Samples may be reused by the next call to Next
// unless the source documents otherwise; copy what you keep.
type Source interface {
	Next(ctx context.Context) (Block, error)
}

// EventKind names a kind of link anomaly.
type EventKind uint8

const (
	EventCRC        EventKind = iota + 1 // a frame failed its CRC-32C check
	EventResync                          // bytes skipped while searching for the next sync word
	EventGap                             // samples lost: Count samples missing before Sample
	EventReset                           // the sample counter went backwards (device reset)
	EventFormat                          // channel count or sample rate changed
	EventDisconnect                      // the port went away
	EventReconnect                       // the port came back
	EventBadFrame                        // a frame with a valid CRC but an impossible header
)

// String names k as the event schema does (schema.EventKind: "crc",
// "gap", ...).
func (k EventKind) String() string { return schema.EventKind(k).String() }

// Event is one link anomaly. Sample is the device sample index where it was
// seen (for a gap, the first sample after the gap; for a reset, the new
// counter). Count is the number of samples (gap), bytes (resync) or
// frames (crc) involved. Offset is the byte offset in the input stream
// where it was seen, when known.
type Event struct {
	Kind   EventKind
	Sample uint64
	Count  uint64
	Offset int64
	Detail string
}

func (e Event) String() string {
	s := fmt.Sprintf("%s at sample %d (count %d, byte %d)", e.Kind, e.Sample, e.Count, e.Offset)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Stats counts everything a link has seen. All counters only grow. The
// JSON names are those of the status messages (docs/schemas.md).
type Stats schema.LinkStats

// Add accumulates the effect of e into s.
func (s *Stats) Add(e Event) {
	switch e.Kind {
	case EventCRC:
		s.CRCErrors += max(e.Count, 1)
	case EventResync:
		s.SkippedBytes += e.Count
	case EventGap:
		s.Gaps++
		s.LostSamples += e.Count
	case EventReset:
		s.Resets++
	case EventFormat:
		s.FormatChanges++
	case EventDisconnect:
		s.Disconnects++
	case EventReconnect:
		s.Reconnects++
	case EventBadFrame:
		s.BadFrames++
	}
}
