package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/intan"
	"github.com/spikeline/spikeline/device/openephys"
	"github.com/spikeline/spikeline/sim"
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
			if _, _, err := device.SplitUSB(arg); err != nil {
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

// options returns the device specification and the Options of
// device.Open for the flags.
func (o *sourceFlags) options(log *slog.Logger) (string, device.Options) {
	opts := device.Options{Pace: o.pace, Baud: o.baud, Meta: o.meta, SkipLayoutCheck: o.skipLayout, Logger: log}
	spec := o.kind
	if o.arg != "" {
		spec += ":" + o.arg
	}
	switch o.kind {
	case "sim":
		opts.Config = o.sim
	case "file":
		// A raw file without a sidecar: --channels, and --rate and --gain
		// or the simulator's defaults.
		opts.Channels, opts.Rate, opts.Gain = o.channels, o.sim.Rate, o.sim.Gain
		if o.interop.oeStream != "" {
			opts.Config = openephys.Config{Stream: o.interop.oeStream}
		}
	case "rhx":
		f := o.interop
		opts.Config = intan.RHXConfig{Channels: f.rhxChannels, Band: intan.Band(f.rhxBand), BlocksPerWrite: f.rhxBlocks}
	default:
		// A hardware headstage is asked for what was given explicitly.
		opts.Channels, opts.Rate = o.channels, o.rate
	}
	return spec, opts
}
