package device

import (
	"context"
	"io"
	"time"
)

// IntanGain is the gain of Intan RHD2000-series amplifiers, 0.195 µV per
// count: the default for devices that do not send their gain.
const IntanGain = 0.195

// WireSource is a Source reading the wire protocol from any io.Reader: a
// serial port, a pseudo-terminal, a TCP connection or a file.
//
// Each good data frame becomes one Block whose Samples are a fresh slice
// (the Block may be kept). The Events the Decoder queued before and at
// that frame (CRC failures, skipped bytes, gaps, resets, format changes)
// ride on the Block. Gap, reset and format detection live in the Decoder
// alone; WireSource only converts frames. Reply frames are passed to
// OnReply, command frames to OnCommand, if set; both are called from Next.
//
// Next checks ctx between reads but cannot interrupt a Read that blocks:
// give it a reader with a read timeout (serial ports) or one that is
// closed on cancellation (sockets).
type WireSource struct {
	dec *Decoder

	// OnReply, if set, receives every reply frame.
	OnReply func(Reply)
	// OnCommand, if set, receives every command frame.
	OnCommand func(Command)
	// DefaultGain is the Block Gain used for frames whose Gain is 0 (the
	// device does not say). NewWireSource sets it to IntanGain.
	DefaultGain float64

	settings *Settings // from a settings frame, for the next Block
}

// NewWireSource returns a WireSource decoding r.
func NewWireSource(r io.Reader) *WireSource {
	d := NewDecoder(r)
	d.fresh = true // the Blocks keep the decoded samples: no copy
	return &WireSource{dec: d, DefaultGain: IntanGain}
}

// Decoder returns the source's Decoder, e.g. to set its Name.
func (s *WireSource) Decoder() *Decoder { return s.dec }

// Stats returns the link statistics so far.
func (s *WireSource) Stats() Stats { return s.dec.Stats() }

// TakeEvents appends events not yet attached to a Block (e.g. trailing
// garbage seen at the end of the input) to dst and clears them.
func (s *WireSource) TakeEvents(dst []Event) []Event { return s.dec.TakeEvents(dst) }

// Next returns the next Block. It returns io.EOF at the end of the input,
// a *FrameError wrapping io.ErrUnexpectedEOF if the input ends inside a
// frame, ctx.Err() if ctx ends, and read errors as they come; a read
// error other than io.EOF leaves the source usable.
func (s *WireSource) Next(ctx context.Context) (Block, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Block{}, err
		}
		f, err := s.dec.Next()
		if err != nil {
			return Block{}, err
		}
		switch f.Type {
		case FrameData, FrameCompressed, FrameSpikes, FrameFeatures:
			b := Block{
				First:    f.Counter,
				Rate:     float64(f.Rate),
				Channels: f.Channels,
				Gain:     float64(f.Gain),
				Samples:  f.Samples, // a fresh slice per frame
				Received: time.Now(),
				Span:     f.Span,
				Spikes:   f.Spikes,
				Features: f.Features,
				Settings: s.settings,
			}
			s.settings = nil
			if b.Gain == 0 {
				b.Gain = s.DefaultGain
			}
			b.Events = s.dec.TakeEvents(nil)
			return b, nil
		case FrameSettings:
			s.settings = f.Settings
		case FrameReply:
			if s.OnReply != nil {
				s.OnReply(f.Reply)
			}
		case FrameCommand:
			if s.OnCommand != nil {
				s.OnCommand(f.Command)
			}
		}
	}
}
