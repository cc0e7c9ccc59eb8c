package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// MaxPendingEvents bounds the events a Decoder holds between calls to
// TakeEvents. Further events are still counted in Stats but not queued.
const MaxPendingEvents = 4096

const initialBufferSize = 64 << 10

// Decoder reads wire-protocol frames from an io.Reader.
//
// The Decoder is the one place where a byte stream is checked: it finds
// sync words, verifies both CRCs, rejects impossible headers, and follows
// the 64-bit sample counter and the format of data frames. Every anomaly
// is counted in Stats and queued as an Event (see TakeEvents), in stream
// order:
//
//   - EventResync: bytes skipped because they were not part of a frame
//     whose CRCs check (garbage, a false sync word, a frame whose header
//     CRC fails, the remains of a frame whose frame CRC fails). One event
//     per run of skipped bytes, Count = bytes, Offset = first skipped byte.
//   - EventCRC: a frame whose header CRC checked but whose frame CRC failed.
//     The scan restarts one byte after its sync word, so sync words inside
//     its payload are examined, but they yield a frame only if their own
//     header and frame CRCs check.
//   - EventBadFrame: a frame whose CRCs check but whose header or payload
//     is impossible (unknown version or type, zero channels, length
//     mismatch...) or beyond the limits of limits.go (more than
//     MaxChannels channels, a rate above MaxRate, a gain above MaxGain).
//     It is skipped whole.
//   - EventGap: a data frame's counter is ahead of the previous frame's
//     end: Count samples per channel were lost, Sample is the new counter.
//   - EventReset: a data frame's counter is behind the previous frame's
//     end (the device restarted): Sample is the new counter.
//   - EventFormat: a data frame's channel count, sample rate or gain
//     differs from the previous data frame's.
//
// Events other than gap, reset and format carry as Sample the device
// sample index the Decoder expected next (0 before the first data frame).
//
// Read errors are returned as they come. An error other than io.EOF
// leaves the Decoder intact: calling Next again retries the read, so a
// reader with timeouts (a serial port) can be polled. A reader that
// returns no bytes and no error 100 times in a row (a serial port whose
// read timed out) makes Next return io.ErrNoProgress, likewise
// retryable. At io.EOF, bytes
// left over are counted as skipped; if they were a frame whose header
// checked but whose payload was cut off, Next returns a *FrameError
// wrapping io.ErrUnexpectedEOF, naming its offset, else io.EOF.
//
// A Decoder holds at most one frame (MaxFrameSize bytes) in memory
// whatever its input. It is not safe for concurrent use.
type Decoder struct {
	rd   io.Reader
	buf  []byte
	r, w int   // unread bytes are buf[r:w]
	pos  int64 // stream offset of buf[0]
	err  error // read error held back until buffered bytes are used
	zero int   // consecutive empty reads

	// Name, if set, names the input in FrameErrors (e.g. a file name).
	Name string

	samples []int16 // decoded samples of the last data frame
	fresh   bool    // decode each data frame into a new slice (WireSource keeps them)

	skip      uint64 // bytes in the current run of skipped bytes
	skipStart int64  // stream offset of the first byte of that run

	haveFormat bool
	channels   int
	rate       uint32
	gain       float32
	next       uint64 // expected counter of the next data frame

	v2 v2state // version 2 frames (wire_v2.go)

	stats   Stats
	events  []Event
	dropped uint64 // events not queued because MaxPendingEvents were pending
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{rd: r}
}

// Reset discards the Decoder's state and makes it read from r, keeping
// its buffers and Name. Stats and pending events are cleared.
func (d *Decoder) Reset(r io.Reader) {
	*d = Decoder{rd: r, buf: d.buf, samples: d.samples, fresh: d.fresh, events: d.events[:0], Name: d.Name, v2: d.v2}
}

// Reconnect makes the Decoder read from r, a new connection to the same
// device (e.g. a serial port reopened after it went away). Unlike Reset it
// keeps Stats, pending events and the tracking of the sample counter and
// format, so the first data frame from r is checked for a gap, reset or
// format change against the last one before. Bytes still buffered from
// the old reader are dropped and counted as skipped.
func (d *Decoder) Reconnect(r io.Reader) {
	d.skipBytes(d.w - d.r)
	d.flushSkip()
	d.pos += int64(d.r)
	d.r, d.w = 0, 0
	d.err, d.zero = nil, 0
	d.rd = r
}

// Offset returns the number of input bytes consumed so far: the stream
// offset just past the last frame returned or byte skipped.
func (d *Decoder) Offset() int64 { return d.pos + int64(d.r) }

// Stats returns the counts of everything seen so far.
func (d *Decoder) Stats() Stats { return d.stats }

// TakeEvents appends the pending events to dst, in stream order, clears
// them and returns the extended slice.
func (d *Decoder) TakeEvents(dst []Event) []Event {
	dst = append(dst, d.events...)
	clear(d.events)
	d.events = d.events[:0]
	return dst
}

// DroppedEvents returns how many events were counted in Stats but not
// queued because MaxPendingEvents events were waiting for TakeEvents.
func (d *Decoder) DroppedEvents() uint64 { return d.dropped }

func (d *Decoder) event(e Event) {
	d.stats.Add(e)
	if len(d.events) >= MaxPendingEvents {
		d.dropped++
		return
	}
	d.events = append(d.events, e)
}

// skipBytes consumes n unread bytes as skipped.
func (d *Decoder) skipBytes(n int) {
	if n <= 0 {
		return
	}
	if d.skip == 0 {
		d.skipStart = d.Offset()
	}
	d.skip += uint64(n)
	d.r += n
}

// flushSkip reports the current run of skipped bytes, if any.
func (d *Decoder) flushSkip() {
	if d.skip == 0 {
		return
	}
	d.event(Event{Kind: EventResync, Sample: d.next, Count: d.skip, Offset: d.skipStart})
	d.skip = 0
}

// fill reads more input so that at least need bytes can be buffered from
// buf[r]. It returns nil after any read that added bytes.
func (d *Decoder) fill(need int) error {
	if len(d.buf)-d.r < need || d.w == len(d.buf) {
		if d.r > 0 {
			copy(d.buf, d.buf[d.r:d.w])
			d.pos += int64(d.r)
			d.w -= d.r
			d.r = 0
		}
		if len(d.buf) < need || d.w == len(d.buf) {
			size := max(need, initialBufferSize, min(2*len(d.buf), MaxFrameSize))
			nb := make([]byte, size)
			copy(nb, d.buf[:d.w])
			d.buf = nb
		}
	}
	if d.err != nil {
		err := d.err
		d.err = nil
		return err
	}
	n, err := d.rd.Read(d.buf[d.w:])
	if n < 0 || n > len(d.buf)-d.w {
		return fmt.Errorf("device: reader returned %d bytes for a %d-byte buffer", n, len(d.buf)-d.w)
	}
	d.w += n
	d.stats.Bytes += uint64(n)
	if n > 0 {
		d.zero = 0
		d.err = err
		return nil
	}
	if err != nil {
		return err
	}
	d.zero++
	if d.zero >= 100 {
		d.zero = 0
		return io.ErrNoProgress
	}
	return nil
}

// Next returns the next good frame. For data frames, Samples is valid
// until the next call to Next. See Decoder for the errors it returns.
func (d *Decoder) Next() (Frame, error) {
	for {
		avail := d.buf[d.r:d.w]
		i := bytes.Index(avail, Sync[:])
		if i < 0 {
			// Keep a tail that could be the start of a sync word.
			d.skipBytes(len(avail) - min(len(avail), len(Sync)-1))
			if err := d.fill(HeaderSize); err != nil {
				return Frame{}, d.readError(err)
			}
			continue
		}
		d.skipBytes(i)
		if d.w-d.r < HeaderSize {
			if err := d.fill(HeaderSize); err != nil {
				return Frame{}, d.readError(err)
			}
			continue
		}
		h := d.buf[d.r : d.r+HeaderSize]
		le := binary.LittleEndian
		hcrc := crc32.Checksum(h[:32], castagnoli)
		if hcrc != le.Uint32(h[32:]) {
			d.skipBytes(1) // a false sync word or a damaged header
			continue
		}
		length := le.Uint32(h[8:])
		if length > MaxPayload {
			d.flushSkip()
			d.event(Event{Kind: EventBadFrame, Sample: d.next, Count: 1, Offset: d.Offset(),
				Detail: fmt.Sprintf("payload length %d exceeds %d", length, MaxPayload)})
			d.skipBytes(1)
			continue
		}
		total := HeaderSize + int(length) + TrailerSize
		if d.w-d.r < total {
			if err := d.fill(total); err != nil {
				return Frame{}, d.readError(err)
			}
			continue
		}
		fb := d.buf[d.r : d.r+total]
		body := fb[:HeaderSize+int(length)]
		if crc32.Update(hcrc, castagnoli, body[32:]) != le.Uint32(fb[len(body):]) {
			d.flushSkip()
			d.event(Event{Kind: EventCRC, Sample: d.next, Count: 1, Offset: d.Offset()})
			d.skipBytes(1)
			continue
		}
		// A frame whose CRCs check: from here on it is consumed whole.
		d.flushSkip()
		f, err := d.parse(fb[:HeaderSize], body[HeaderSize:])
		off := d.Offset()
		d.r += total
		if err != nil {
			d.event(Event{Kind: EventBadFrame, Sample: d.next, Count: 1, Offset: off, Detail: err.Error()})
			continue
		}
		if f.Type.isStream() {
			d.follow(&f, off)
		}
		return f, nil
	}
}

// readError turns a read error into Next's result, accounting for the
// buffered bytes at io.EOF.
func (d *Decoder) readError(err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	rest := d.buf[d.r:d.w]
	if len(rest) == 0 {
		d.flushSkip()
		return err
	}
	// Is the rest the beginning of a frame whose header checks?
	var ferr error
	if len(rest) >= HeaderSize && bytes.Equal(rest[:4], Sync[:]) &&
		crc32.Checksum(rest[:32], castagnoli) == binary.LittleEndian.Uint32(rest[32:]) {
		total := HeaderSize + int(binary.LittleEndian.Uint32(rest[8:])) + TrailerSize
		ferr = &FrameError{Name: d.Name, Offset: d.Offset(),
			Reason: fmt.Sprintf("truncated frame: %d of %d bytes", len(rest), total),
			Err:    io.ErrUnexpectedEOF}
	}
	d.skipBytes(len(rest))
	d.flushSkip()
	if ferr != nil {
		return ferr
	}
	return err
}

// parse checks and decodes a frame whose CRCs are good.
func (d *Decoder) parse(h, p []byte) (Frame, error) {
	le := binary.LittleEndian
	var f Frame
	if h[4] != ProtocolVersion && h[4] != ProtocolVersion2 {
		return f, fmt.Errorf("protocol version %d, want %d or %d", h[4], ProtocolVersion, ProtocolVersion2)
	}
	f.Type = FrameType(h[5])
	f.Flags = le.Uint16(h[6:])
	switch f.Type {
	case FrameData:
		ch := int(le.Uint16(h[12:]))
		n := int(le.Uint16(h[14:]))
		f.Channels = ch
		f.Rate = le.Uint32(h[16:])
		f.Gain = math.Float32frombits(le.Uint32(h[20:]))
		f.Counter = le.Uint64(h[24:])
		switch g := float64(f.Gain); {
		case ch == 0 || n == 0:
			return f, fmt.Errorf("data frame with %d channels x %d samples", ch, n)
		case 2*ch*n != len(p):
			return f, fmt.Errorf("data frame of %d channels x %d samples with a %d-byte payload, want %d", ch, n, len(p), 2*ch*n)
		case ch > MaxChannels:
			return f, CheckChannels("data frame", "channels", ch)
		case f.Rate < MinRate || f.Rate > MaxRate:
			return f, CheckRate("data frame", "sample rate", float64(f.Rate))
		case math.IsNaN(g) || math.IsInf(g, 0) || g < 0:
			return f, fmt.Errorf("data frame with gain %g", g)
		case g > MaxGain:
			return f, CheckGain("data frame", "gain", g)
		}
		m := ch * n
		var s []int16
		if d.fresh {
			s = make([]int16, m)
		} else {
			if cap(d.samples) < m {
				d.samples = make([]int16, m, max(m, min(2*cap(d.samples), MaxPayload/2)))
			}
			s = d.samples[:m]
		}
		decodeInt16(s, p)
		f.Samples = s
	case FrameCommand:
		c, err := parseCommand(p)
		if err != nil {
			return f, err
		}
		f.Command = c
	case FrameReply:
		r, err := parseReply(p)
		if err != nil {
			return f, err
		}
		f.Reply = r
	case FrameCompressed, FrameSpikes, FrameFeatures, FrameSettings:
		return d.parseV2(f, h, p)
	default:
		return f, fmt.Errorf("unknown frame type %d", h[5])
	}
	return f, nil
}

// follow checks a data frame's counter and format against the previous
// data frame and queues gap, reset and format events.
func (d *Decoder) follow(f *Frame, off int64) {
	n := uint64(f.covered())
	if d.haveFormat {
		if f.Channels != d.channels || f.Rate != d.rate || f.Gain != d.gain {
			d.event(Event{Kind: EventFormat, Sample: f.Counter, Offset: off,
				Detail: fmt.Sprintf("%d channels at %d Hz, %g µV/count -> %d channels at %d Hz, %g µV/count",
					d.channels, d.rate, d.gain, f.Channels, f.Rate, f.Gain)})
		}
		switch {
		case f.Counter > d.next:
			e := Event{Kind: EventGap, Sample: f.Counter, Count: f.Counter - d.next, Offset: off}
			if f.Flags&FlagOverflow != 0 {
				e.Detail = "the device's buffer overflowed"
			}
			d.event(e)
		case f.Counter < d.next:
			d.event(Event{Kind: EventReset, Sample: f.Counter, Offset: off,
				Detail: fmt.Sprintf("counter went back from %d to %d", d.next, f.Counter)})
		}
	}
	d.haveFormat = true
	d.channels, d.rate, d.gain = f.Channels, f.Rate, f.Gain
	d.next = f.Counter + n
	d.stats.Frames++
	d.stats.Samples += n
}
