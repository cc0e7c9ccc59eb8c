package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// WireFile is a Source reading a file of wire-protocol frames (a capture of
// a headstage link, or a file the simulator wrote). It is a WireSource over
// the file: each data frame becomes a Block, anomalies recorded in the file
// ride on the Blocks as Events whose Offset is the byte offset in the file.
type WireFile struct {
	*WireSource
	f    *os.File
	name string

	// Strict makes Next fail on the first anomaly the file contains
	// (CRC failure, skipped bytes, bad frame) with a *FrameError naming
	// the file and its byte offset, instead of reporting it as an Event.
	// Gaps, resets and format changes are data, not damage: they remain
	// Events.
	Strict bool
	// Pace, if > 0, releases Blocks at Pace times real time.
	Pace float64

	pacer Pacer
}

// OpenWireFile opens a wire-protocol file (a regular file: a pipe or a
// device is refused; read a live stream with NewWireSource). Close it when
// done.
func OpenWireFile(path string) (*WireFile, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	w := &WireFile{WireSource: NewWireSource(f), f: f, name: path}
	w.dec.Name = path
	return w, nil
}

// Next returns the next Block, io.EOF at the end of the file, or a
// *FrameError naming the file and offset: a frame cut off by the end of
// the file, or (Strict) the first anomaly.
func (w *WireFile) Next(ctx context.Context) (Block, error) {
	b, err := w.WireSource.Next(ctx)
	if w.Strict {
		var ev []Event
		if err == nil {
			ev = b.Events
		} else {
			ev = w.dec.events
		}
		for _, e := range ev {
			switch e.Kind {
			case EventCRC, EventResync, EventBadFrame:
				return Block{}, &FrameError{Name: w.name, Offset: e.Offset, Reason: anomaly(e)}
			}
		}
	}
	if err != nil {
		var fe *FrameError
		if errors.Is(err, io.EOF) || errors.As(err, &fe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return Block{}, err
		}
		return Block{}, fmt.Errorf("device: %s: byte %d: %w", w.name, w.dec.Offset(), err)
	}
	w.pacer.Speed = w.Pace
	if err := w.pacer.Wait(ctx, &b); err != nil {
		return Block{}, err
	}
	return b, nil
}

func anomaly(e Event) string {
	switch e.Kind {
	case EventCRC:
		return "frame CRC-32C mismatch"
	case EventResync:
		return fmt.Sprintf("%d bytes that are not a valid frame", e.Count)
	case EventBadFrame:
		return "invalid frame: " + e.Detail
	}
	return e.String()
}

// Close closes the file.
func (w *WireFile) Close() error { return w.f.Close() }
