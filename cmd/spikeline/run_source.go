package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/openephys"
	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
)

// runChannels is the simulated headstage's channel count for
// 'spikeline run' (the other sim commands default to 32).
const runChannels = 256

// sourceFlags selects and configures the device of 'spikeline run' from
// --device SPEC:
//
//	sim               the simulator in-process (default)
//	sim:pty           the simulator behind a pseudo-terminal, read through the serial path
//	sim:tcp           the simulator behind a loopback TCP port, read through the network path
//	serial:PATH       a headstage on a serial port (e.g. /dev/ttyACM0), --baud for UART bridges
//	usb:VID:PID[:SN]  a USB headstage found by its ids
//	tcp:HOST:PORT     a network headstage speaking the wire protocol
//	rhx:HOST[:PORT]   the Intan RHX software's TCP command and waveform ports (run_interop.go)
//	file:PATH         a recording: a raw int16 .dat with --meta (or a
//	                  recording directory, or PATH.json / recording.json
//	                  beside it), a wire-protocol capture, an Intan
//	                  .rhd/.rhs file or an Open Ephys binary recording
//
// The simulator is configured by the same flags as 'spikeline sim'.
type sourceFlags struct {
	spec       string // as given
	kind       string // sim, serial, usb, tcp, file
	arg        string // what follows kind:
	via        string // sim: "", "pty" or "tcp"
	baud       int
	meta       string
	skipLayout bool    // --skip-layout-check
	pace       float64 // × real time; 0 as fast as possible
	realtime   bool
	// channels and rate as given explicitly (0: not given): checked
	// against a hardware headstage and sent to it as commands.
	channels int
	rate     float64
	sim      sim.Config
	interop  interopFlags // rhx: and the Intan and Open Ephys files (run_interop.go)
}

func registerSourceFlags(fs *flag.FlagSet, s *sourceFlags) func() error {
	fs.StringVar(&s.spec, "device", "sim", "the headstage: sim, sim:pty, sim:tcp, serial:PATH, usb:VID:PID[:SERIAL], tcp:HOST:PORT, rhx:HOST[:PORT] (Intan RHX) or file:PATH (see docs/run.md)")
	registerInteropFlags(fs, &s.interop)
	fs.IntVar(&s.baud, "baud", 0, "serial line rate for a UART bridge (USB CDC ignores it; default 921600)")
	fs.StringVar(&s.meta, "meta", "", "recording.json sidecar of a raw file:PATH (default: PATH.json or recording.json beside it)")
	fs.BoolVar(&s.skipLayout, "skip-layout-check", false, "replay a raw file:PATH with its channel count even if its samples contradict it (see docs/formats.md)")
	fs.BoolVar(&s.realtime, "realtime", false, "replay file:PATH at the recorded rate (default: as fast as possible)")
	pace := fs.Float64("pace", -1, "speed of the simulator and of file replay, × real time; 0: as fast as possible (default 1 for sim, 0 for files, 1 with --realtime)")
	simCfg := simFlags(fs, runChannels)
	return func() error {
		kind, arg, _ := strings.Cut(s.spec, ":")
		s.kind, s.arg = kind, arg
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		var err error
		if s.sim, err = simCfg(); err != nil {
			return err
		}
		if given["channels"] {
			s.channels = s.sim.Channels
		}
		if given["rate"] {
			s.rate = s.sim.Rate
		}
		bad := func(format string, a ...any) error {
			return usageErrorf("--device %q: %s", s.spec, fmt.Sprintf(format, a...))
		}
		switch kind {
		case "sim":
			switch arg {
			case "", "pty", "tcp":
				s.via = arg
			default:
				return bad("want sim, sim:pty or sim:tcp")
			}
		case "usb":
			if _, _, err := splitUSB(arg); err != nil {
				return bad("%v", err)
			}
		case "tcp":
			arg = strings.TrimPrefix(arg, "//")
			if _, _, err := net.SplitHostPort(arg); err != nil {
				return bad("want tcp:HOST:PORT: %v", err)
			}
			s.arg = arg
		case "file":
			if arg == "" {
				return bad("want file:PATH")
			}
			fi, err := os.Stat(arg)
			if err != nil {
				return bad("%v", err)
			}
			if !fi.Mode().IsRegular() && !fi.IsDir() {
				// A pipe or a device would block or never end: a live
				// stream comes through serial:, tcp: or sim serve.
				return bad("%s is %s: want a recording file or directory (a live stream: serial:, usb: or tcp:)", arg, device.FileKind(fi.Mode()))
			}
		case "rhx": // checked by checkInterop
		case "serial":
			if arg == "" {
				return bad("want serial:PATH, e.g. serial:/dev/ttyACM0")
			}
			// A missing port is reported when it is opened; one that
			// exists must be a character device, not a file or a pipe.
			if fi, err := os.Stat(arg); err == nil && fi.Mode()&os.ModeCharDevice == 0 {
				return bad("%s is %s, not a serial port (a recording: file:%s)", arg, device.FileKind(fi.Mode()), arg)
			}
		default:
			return bad("unknown device kind %q: want sim, serial, usb, tcp, rhx or file", kind)
		}
		hardware := kind == "serial" || kind == "usb" || kind == "tcp" || kind == "rhx"
		if s.baud != 0 && kind != "serial" && kind != "usb" {
			return usageErrorf("--baud is for serial: and usb: devices")
		}
		if s.baud < 0 {
			return usageErrorf("--baud %d: want > 0", s.baud)
		}
		if s.meta != "" && kind != "file" {
			return usageErrorf("--meta is for file: devices")
		}
		if s.skipLayout && kind != "file" {
			return usageErrorf("--skip-layout-check is for file: devices")
		}
		if s.realtime && kind != "file" {
			return usageErrorf("--realtime is for file: devices (the simulator runs in real time unless --pace says otherwise)")
		}
		switch {
		case *pace == -1:
			s.pace = 1
			if kind == "file" && !s.realtime {
				s.pace = 0
			}
		case !(*pace >= 0) || *pace > 1000:
			return usageErrorf("--pace %g: want 0 (as fast as possible) to 1000 × real time", *pace)
		case hardware:
			return usageErrorf("--pace: a hardware headstage sets its own pace")
		case s.realtime && *pace != 1:
			return usageErrorf("--pace %g contradicts --realtime", *pace)
		default:
			s.pace = *pace
		}
		return s.checkInterop()
	}
}

// isSim reports whether the device is the simulator (in-process or
// behind a pty or TCP port); its behaviour is known.
func (s *sourceFlags) isSim() bool { return s.kind == "sim" }

// splitUSB splits VID:PID[:SERIAL].
func splitUSB(s string) (vidpid, serial string, err error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 2 {
		return "", "", fmt.Errorf("%q: want VID:PID[:SERIAL]", s)
	}
	vidpid = parts[0] + ":" + parts[1]
	if _, _, err := device.ParseUSBID(vidpid); err != nil {
		return "", "", err
	}
	if len(parts) == 3 {
		serial = parts[2]
	}
	return vidpid, serial, nil
}

// openSource is an opened device with what the pipeline needs beyond
// device.Source: a name, link statistics, behaviour (simulator) and
// headstage commands (serial).
type openSource struct {
	device.Source
	name         string
	gain         float64
	sim          *sim.Sim
	serial       *device.SerialSource
	statsFn      func() device.Stats
	eventsFn     func([]device.Event) []device.Event // events not attached to a Block (wire files)
	closeFn      func() error
	hasBehaviour bool
	stim         *device.StimGuard         // nil: stimulation not armed (run_security.go)
	names        []string                  // channel names, when the device has them (run_interop.go)
	oe           *openephys.Continuous     // the stream of an Open Ephys recording read
	onStim       func(device.Stim, uint64) // a stimulation train delivered at a device sample (--record-format openephys)

	scratch []sort.Spike // ground-truth spikes drained from the simulator
}

// firstError explains why the source gave no first Block: a source that
// ends at once says what its link saw instead (a file of nothing but bad
// frames names the first one's problem).
func (s *openSource) firstError(err error) error {
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading %s: %w", s.name, err)
	}
	st := s.stats()
	msg := fmt.Sprintf("%s ended before its first sample (%d bytes, %d bad frames, %d CRC errors, %d bytes skipped)",
		s.name, st.Bytes, st.BadFrames, st.CRCErrors, st.SkippedBytes)
	if s.eventsFn != nil {
		for _, e := range s.eventsFn(nil) {
			if e.Kind == device.EventBadFrame {
				msg += fmt.Sprintf("; the first bad frame, at byte %d: %s", e.Offset, e.Detail)
				break
			}
		}
	}
	return errors.New(msg)
}

func (s *openSource) Close() error {
	if s.closeFn != nil {
		return s.closeFn()
	}
	return nil
}

func (s *openSource) stats() device.Stats {
	if s.statsFn != nil {
		return s.statsFn()
	}
	return device.Stats{}
}

// takeBehaviour returns the simulator's behaviour samples since the last
// call (nil for real devices); it also drains the ground-truth spikes,
// which the live pipeline does not use.
func (s *openSource) takeBehaviour() []sim.BehaviourSample {
	if s.sim == nil {
		return nil
	}
	s.scratch = s.sim.TakeSpikes(s.scratch[:0])
	return s.sim.TakeBehaviour(nil)
}

func (o *sourceFlags) open(ctx context.Context, log *slog.Logger) (*openSource, error) {
	switch o.kind {
	case "serial", "usb", "tcp":
		// A network headstage goes through the serial source too: the
		// same reconnection, gap accounting and commands.
		cfg := device.SerialConfig{Path: o.arg, Baud: o.baud}
		switch o.kind {
		case "tcp":
			cfg.Path = "tcp://" + o.arg
		case "usb":
			vidpid, serial, _ := splitUSB(o.arg)
			cfg.VID, cfg.PID, _ = device.ParseUSBID(vidpid)
			cfg.Path, cfg.SerialNumber = "", serial
		}
		return o.openSerial(ctx, cfg, o.kind+":"+o.arg, log)
	case "rhx":
		return o.openRHX(ctx, log)
	case "file":
		return o.openFile(log)
	}
	sm, err := sim.New(o.sim)
	if err != nil {
		return nil, usageErrorf("simulator: %v", err)
	}
	name := fmt.Sprintf("sim(seed %d)", o.sim.Seed)
	if o.via == "" {
		return &openSource{Source: device.Paced(sm, o.pace), name: name, gain: sm.Config().Gain, sim: sm, hasBehaviour: true}, nil
	}
	// The simulator as a headstage: an emulator serves it on a pty or a
	// loopback port and the pipeline reads it like hardware.
	em := sim.NewEmulator(sm, sim.EmulatorConfig{Speed: max(o.pace, 0), Unpaced: o.pace == 0, Seed: uint64(o.sim.Seed)})
	ectx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	where := make(chan string, 1)
	if o.via == "pty" {
		go func() {
			served <- em.ServePTY(ectx, "", func(tty string) {
				select {
				case where <- tty:
				default:
				}
			})
		}()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, err
		}
		where <- "tcp://" + ln.Addr().String()
		go func() { served <- em.ServeTCP(ectx, ln) }()
	}
	var path string
	select {
	case path = <-where:
	case err := <-served:
		stop()
		return nil, fmt.Errorf("simulated headstage on %s: %w", o.via, err)
	case <-time.After(10 * time.Second):
		stop()
		return nil, fmt.Errorf("simulated headstage on %s did not start", o.via)
	}
	src, err := o.openSerial(ctx, device.SerialConfig{Path: path}, fmt.Sprintf("%s via %s %s", name, o.via, strings.TrimPrefix(path, "tcp://")), log)
	if err != nil {
		stop()
		return nil, err
	}
	src.sim, src.hasBehaviour, src.gain = sm, true, sm.Config().Gain
	closeSerial := src.closeFn
	src.closeFn = func() error {
		err := closeSerial()
		stop()
		if serr := <-served; serr != nil && !errors.Is(serr, context.Canceled) && err == nil {
			err = serr
		}
		return err
	}
	return src, nil
}

// openSerial opens a headstage on a serial port, USB or TCP with
// reconnection, and asks it for --channels and --rate when they were
// given.
func (o *sourceFlags) openSerial(ctx context.Context, cfg device.SerialConfig, name string, log *slog.Logger) (*openSource, error) {
	cfg.Reconnect = true
	cfg.Logf = func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }
	ss, err := device.OpenSerial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	src := &openSource{Source: ss, name: name, serial: ss, statsFn: ss.Stats, closeFn: ss.Close}
	if o.kind == "sim" {
		return src, nil // the simulator's channels and rate are its own flags
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if o.rate > 0 {
		if _, err := ss.Command(cctx, device.Command{Op: device.OpSetRate, Rate: uint32(o.rate)}); err != nil {
			ss.Close()
			return nil, fmt.Errorf("%s: setting --rate %g: %w", name, o.rate, err)
		}
	}
	if o.channels > 0 {
		chans := make([]uint16, o.channels)
		for i := range chans {
			chans[i] = uint16(i)
		}
		if _, err := ss.Command(cctx, device.Command{Op: device.OpSetChannels, Channels: chans}); err != nil {
			ss.Close()
			return nil, fmt.Errorf("%s: setting --channels %d: %w", name, o.channels, err)
		}
	}
	return src, nil
}

// openFile opens file:PATH: a wire-protocol capture (recognised by its
// sync word) or a raw int16 recording described by --meta, by a sidecar
// found beside it, or by --channels, --rate and --gain.
func (o *sourceFlags) openFile(log *slog.Logger) (*openSource, error) {
	if src, ok, err := o.openInteropFile(log); ok {
		return src, err
	}
	path := o.arg
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		if o.meta == "" {
			o.meta = filepath.Join(path, "recording.json")
		}
	} else if isWireFile(path) {
		if o.meta != "" {
			return nil, usageErrorf("--meta: %s is a wire-protocol capture, which describes itself", path)
		}
		wf, err := device.OpenWireFile(path)
		if err != nil {
			return nil, err
		}
		// The reader goroutine decodes; the loop reads the link counters
		// for its status: they cross through an atomic snapshot.
		ss := &statsSource{Source: device.Paced(wf, o.pace), stats: wf.Stats}
		return &openSource{Source: ss, name: "file:" + path, statsFn: ss.snapshot, eventsFn: wf.TakeEvents, closeFn: wf.Close}, nil
	}
	meta := o.meta
	if meta == "" {
		for _, m := range []string{strings.TrimSuffix(path, filepath.Ext(path)) + ".json", filepath.Join(filepath.Dir(path), "recording.json")} {
			if _, err := os.Stat(m); err == nil {
				meta = m
				break
			}
		}
	}
	var rs *device.RawSource
	var err error
	gain := o.sim.Gain
	if meta != "" {
		var m device.Meta
		rs, m, err = device.OpenRecording(meta, device.RawConfig{SkipLayoutCheck: o.skipLayout})
		gain = m.Gain
	} else {
		if o.channels == 0 {
			return nil, usageErrorf("--device %s: a raw file needs --meta (recording.json) or --channels, --rate and --gain", o.spec)
		}
		rs, err = device.OpenRaw(path, device.RawConfig{Channels: o.sim.Channels, Rate: o.sim.Rate, Gain: o.sim.Gain, SkipLayoutCheck: o.skipLayout})
	}
	if err != nil {
		return nil, err
	}
	if rs.Config().Unfinished {
		log.Warn("the recording was not closed (still being written, or cut by a crash): replaying the samples synced; 'spikeline recover' makes this final",
			"recording", meta, "samples", rs.Samples(), "seconds", float64(rs.Samples())/rs.Config().Rate, "ignored_bytes", rs.Ignored())
	}
	return &openSource{Source: device.Paced(rs, o.pace), name: "file:" + path, gain: gain, closeFn: rs.Close}, nil
}

// statsSource publishes the link counters of a source that is not safe
// for concurrent use (a wire file) after every Next, for other goroutines.
type statsSource struct {
	device.Source
	stats func() device.Stats
	snap  atomic.Pointer[device.Stats]
}

func (s *statsSource) Next(ctx context.Context) (device.Block, error) {
	b, err := s.Source.Next(ctx)
	st := s.stats()
	s.snap.Store(&st)
	return b, err
}

func (s *statsSource) snapshot() device.Stats {
	if st := s.snap.Load(); st != nil {
		return *st
	}
	return device.Stats{}
}

// isWireFile reports whether path starts with the wire protocol's sync
// word.
func isWireFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.Read(b[:]); err != nil {
		return false
	}
	return bytes.Equal(b[:], device.Sync[:])
}

// command sends a headstage command named op with JSON arguments.
func (s *openSource) command(ctx context.Context, op string, args json.RawMessage) (any, error) {
	if s.serial == nil {
		return nil, fmt.Errorf("device %s takes no commands (only serial, USB and TCP headstages do)", s.name)
	}
	if err := checkCommandArgs(op, args); err != nil {
		return nil, err
	}
	var c device.Command
	switch op {
	case "start":
		c.Op = device.OpStart
	case "stop":
		c.Op = device.OpStop
	case "info":
		c.Op = device.OpInfo
	case "ping":
		rtt, err := s.serial.Ping(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"rtt_us": rtt.Microseconds()}, nil
	case "set_rate":
		c.Op = device.OpSetRate
		var a struct {
			Rate uint32 `json:"rate"`
		}
		if err := strictArgs(args, &a); err != nil || a.Rate == 0 {
			return nil, stream.BadRequest(fmt.Errorf("set_rate needs {\"rate\": HZ}"))
		}
		c.Rate = a.Rate
	case "set_channels":
		c.Op = device.OpSetChannels
		var a struct {
			Channels []uint16 `json:"channels"`
		}
		if err := strictArgs(args, &a); err != nil || len(a.Channels) == 0 {
			return nil, stream.BadRequest(fmt.Errorf("set_channels needs {\"channels\": [0, 1, ...]}"))
		}
		c.Channels = a.Channels
	case "stimulate":
		return s.stimulate(ctx, args)
	default:
		return nil, stream.BadRequest(fmt.Errorf("unknown device command %q (start, stop, info, ping, set_rate, set_channels, stimulate)", op))
	}
	r, err := s.serial.Command(ctx, c)
	if err != nil {
		return nil, err
	}
	return r, nil
}
