package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// The kinds this package opens; sim (package sim) and rhx (package
// device/intan) register themselves, as do the file formats of
// device/intan and device/openephys.
//
//	serial:PATH       a headstage on a serial port (e.g. /dev/ttyACM0)
//	usb:VID:PID[:SN]  a USB headstage found by its ids
//	tcp:HOST:PORT     a network headstage speaking the wire protocol
//	file:PATH         a recording: a registered format, a wire-protocol
//	                  capture, or a raw int16 .dat (with its sidecar, or
//	                  Options.Channels, Rate and Gain)
func init() {
	Register("serial", func(ctx context.Context, arg string, o Options) (Source, error) {
		if arg == "" {
			return nil, SpecErrorf("device serial: want serial:PATH, e.g. serial:/dev/ttyACM0")
		}
		return OpenHeadstage(ctx, SerialConfig{Path: arg, Baud: o.Baud}, "serial:"+arg, o)
	})
	Register("usb", func(ctx context.Context, arg string, o Options) (Source, error) {
		vidpid, serial, err := SplitUSB(arg)
		if err != nil {
			return nil, SpecErrorf("device usb:%s: %v", arg, err)
		}
		cfg := SerialConfig{Baud: o.Baud, SerialNumber: serial}
		cfg.VID, cfg.PID, _ = ParseUSBID(vidpid)
		return OpenHeadstage(ctx, cfg, "usb:"+arg, o)
	})
	Register("tcp", func(ctx context.Context, arg string, o Options) (Source, error) {
		arg = strings.TrimPrefix(arg, "//")
		return OpenHeadstage(ctx, SerialConfig{Path: "tcp://" + arg}, "tcp:"+arg, o)
	})
	Register("file", openFile)
}

// SpecErrorf returns an error in a device specification or its Options
// (nothing was opened): its message is the formatted text, and it is
// [ErrSpec].
func SpecErrorf(format string, a ...any) error {
	return &specError{fmt.Errorf(format, a...)}
}

// ErrSpec is the error a bad device specification or Options is: a
// caller tests errors.Is(err, ErrSpec) to tell it from a device that
// failed.
var ErrSpec = errors.New("device: bad specification")

type specError struct{ err error }

func (e *specError) Error() string        { return e.err.Error() }
func (e *specError) Unwrap() error        { return e.err }
func (e *specError) Is(target error) bool { return target == ErrSpec }

// SplitUSB splits VID:PID[:SERIAL] and checks the ids.
func SplitUSB(s string) (vidpid, serial string, err error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 2 {
		return "", "", fmt.Errorf("%q: want VID:PID[:SERIAL]", s)
	}
	vidpid = parts[0] + ":" + parts[1]
	if _, _, err := ParseUSBID(vidpid); err != nil {
		return "", "", err
	}
	if len(parts) == 3 {
		serial = parts[2]
	}
	return vidpid, serial, nil
}

// Headstage is a headstage on a serial port, USB or TCP, opened with
// reconnection by [OpenHeadstage]: a [SerialSource] with a name.
type Headstage struct {
	*SerialSource
	name string
}

func (h *Headstage) String() string { return h.name }

// OpenHeadstage opens a headstage with reconnection, logging to
// o.Logger, and asks it for o.Rate and o.Channels when they are not 0.
func OpenHeadstage(ctx context.Context, cfg SerialConfig, name string, o Options) (*Headstage, error) {
	cfg.Reconnect = true
	cfg.Logf = o.Logf()
	ss, err := OpenSerial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if o.Rate > 0 {
		if _, err := ss.Command(cctx, Command{Op: OpSetRate, Rate: uint32(o.Rate)}); err != nil {
			ss.Close()
			return nil, fmt.Errorf("%s: setting --rate %g: %w", name, o.Rate, err)
		}
	}
	if o.Channels > 0 {
		chans := make([]uint16, o.Channels)
		for i := range chans {
			chans[i] = uint16(i)
		}
		if _, err := ss.Command(cctx, Command{Op: OpSetChannels, Channels: chans}); err != nil {
			ss.Close()
			return nil, fmt.Errorf("%s: setting --channels %d: %w", name, o.Channels, err)
		}
	}
	return &Headstage{ss, name}, nil
}

// openFile opens file:PATH: a registered format, a wire-protocol capture
// (recognised by its sync word) or a raw int16 recording described by
// o.Meta, by a sidecar found beside it, or by o.Channels, Rate and Gain.
func openFile(ctx context.Context, path string, o Options) (Source, error) {
	if path == "" {
		return nil, SpecErrorf("device file: want file:PATH")
	}
	registry.RLock()
	formats := registry.formats
	registry.RUnlock()
	for _, f := range formats {
		if f.match(path, o) {
			return f.open(ctx, path, o)
		}
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		if o.Meta == "" {
			o.Meta = filepath.Join(path, RecordingMeta)
		}
	} else if IsWireFile(path) {
		if o.Meta != "" {
			return nil, SpecErrorf("--meta: %s is a wire-protocol capture, which describes itself", path)
		}
		wf, err := OpenWireFile(path)
		if err != nil {
			return nil, err
		}
		return &wireFileSource{Source: Paced(wf, o.Pace), wf: wf, name: "file:" + path}, nil
	}
	meta := o.Meta
	if meta == "" {
		for _, m := range []string{strings.TrimSuffix(path, filepath.Ext(path)) + ".json", filepath.Join(filepath.Dir(path), RecordingMeta)} {
			if _, err := os.Stat(m); err == nil {
				meta = m
				break
			}
		}
	}
	var rs *RawSource
	var err error
	if meta != "" {
		rs, _, err = OpenRecording(meta, RawConfig{SkipLayoutCheck: o.SkipLayoutCheck})
	} else {
		if o.Channels == 0 {
			return nil, SpecErrorf("--device file:%s: a raw file needs --meta (recording.json) or --channels, --rate and --gain", path)
		}
		rs, err = OpenRaw(path, RawConfig{Channels: o.Channels, Rate: o.Rate, Gain: o.Gain, SkipLayoutCheck: o.SkipLayoutCheck})
	}
	if err != nil {
		return nil, err
	}
	if rs.Config().Unfinished {
		o.Log().Warn("the recording was not closed (still being written, or cut by a crash): replaying the samples synced; 'spikeline recover' makes this final",
			"recording", meta, "samples", rs.Samples(), "seconds", float64(rs.Samples())/rs.Config().Rate, "ignored_bytes", rs.Ignored())
	}
	return &rawFileSource{PacedSource: Paced(rs, o.Pace), rs: rs, name: "file:" + path}, nil
}

// rawFileSource is a raw recording opened as file:PATH.
type rawFileSource struct {
	*PacedSource
	rs   *RawSource
	name string
}

func (s *rawFileSource) Close() error   { return s.rs.Close() }
func (s *rawFileSource) String() string { return s.name }

// wireFileSource is a wire-protocol capture opened as file:PATH. Its
// decoder is not safe for concurrent use: the link counters cross to
// other goroutines through an atomic snapshot taken after every Next.
type wireFileSource struct {
	Source
	wf   *WireFile
	name string
	snap atomic.Pointer[Stats]
}

func (s *wireFileSource) Next(ctx context.Context) (Block, error) {
	b, err := s.Source.Next(ctx)
	st := s.wf.Stats()
	s.snap.Store(&st)
	return b, err
}

// Stats returns the link counters as of the last Next.
func (s *wireFileSource) Stats() Stats {
	if st := s.snap.Load(); st != nil {
		return *st
	}
	return Stats{}
}

// TakeEvents hands over the file's events not attached to a Block. Call
// it from the goroutine that calls Next.
func (s *wireFileSource) TakeEvents(dst []Event) []Event { return s.wf.TakeEvents(dst) }
func (s *wireFileSource) Close() error                   { return s.wf.Close() }
func (s *wireFileSource) String() string                 { return s.name }

// IsWireFile reports whether path starts with the wire protocol's sync
// word.
func IsWireFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.Read(b[:]); err != nil {
		return false
	}
	return bytes.Equal(b[:], Sync[:])
}
