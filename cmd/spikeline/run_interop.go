package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/intan"
	"github.com/spikeline/spikeline/device/openephys"
	"github.com/spikeline/spikeline/sim"
)

// The inputs and outputs of other acquisition systems in 'spikeline run'
// (docs/intan.md, docs/openephys.md): --device rhx:HOST[:PORT] (the Intan
// RHX software over TCP), file:PATH of an Intan .rhd/.rhs file or an Open
// Ephys binary recording, and --record-format openephys. The device
// kinds are entries of the device registry (device/intan/open.go,
// device/openephys/open.go); here are their flags.

// interopFlags are the flags of these inputs.
type interopFlags struct {
	rhxChannels string
	rhxBand     string
	rhxBlocks   int
	oeStream    string
}

func registerInteropFlags(fs *flag.FlagSet, f *interopFlags) {
	fs.StringVar(&f.rhxChannels, "rhx-channels", "", "rhx: the amplifier channels to stream, e.g. A-000..A-031,B (default: every channel of every port)")
	fs.StringVar(&f.rhxBand, "rhx-band", "wide", "rhx: the band RHX streams: wide (the amplifier signal), low or high (RHX's software filters)")
	fs.IntVar(&f.rhxBlocks, "rhx-blocks-per-write", 1, "rhx: TCPNumberDataBlocksPerWrite, 128-sample blocks per TCP write (1..100; 1 for the lowest latency)")
	fs.StringVar(&f.oeStream, "oe-stream", "", "file: of an Open Ephys recording: the continuous stream to read (folder or stream name; default: the one with electrode channels)")
}

// checkInterop checks the flags above against the device kind, and the
// address of rhx:HOST[:PORT].
func (s *sourceFlags) checkInterop() error {
	f := &s.interop
	if s.kind == "rhx" {
		if s.arg == "" {
			return usageErrorf("--device rhx: want rhx:HOST[:PORT], e.g. rhx:127.0.0.1 (RHX's command port, default 5000)")
		}
		if s.channels > 0 || s.rate > 0 {
			return usageErrorf("--device %s: RHX chooses its channels with --rhx-channels, and its sample rate in RHX itself", s.spec)
		}
		if _, err := intan.Band(f.rhxBand).Parameter(); err != nil {
			return usageErrorf("--rhx-band %q: want wide, low or high", f.rhxBand)
		}
		if f.rhxBlocks < 1 || f.rhxBlocks > 100 {
			return usageErrorf("--rhx-blocks-per-write %d: want 1..100", f.rhxBlocks)
		}
		if f.rhxChannels != "" {
			// The syntax now; the channels against what RHX has when it
			// answers.
			all := map[byte]int{}
			for i := range len(intan.Ports) {
				all[intan.Ports[i]] = intan.MaxPortChannels
			}
			if _, err := intan.ParseChannels(f.rhxChannels, all); err != nil {
				return usageErrorf("--rhx-channels: %v", err)
			}
		}
		return nil
	}
	if f.rhxChannels != "" || f.rhxBand != "wide" || f.rhxBlocks != 1 {
		return usageErrorf("--rhx-channels, --rhx-band and --rhx-blocks-per-write are for --device rhx:HOST")
	}
	if f.oeStream != "" && s.kind != "file" {
		return usageErrorf("--oe-stream is for --device file: of an Open Ephys recording")
	}
	if f.oeStream != "" && !openephys.IsRecording(s.arg) {
		return usageErrorf("--oe-stream: %s is not an Open Ephys recording", s.arg)
	}
	return nil
}

// simRecordFlags registers the format and stimulation flags of
// 'spikeline sim' and returns a function that builds its
// sim.RecordOptions once the simulator's configuration is known.
func simRecordFlags(fs *flag.FlagSet) func(cfg sim.Config) (sim.RecordOptions, error) {
	format := fs.String("format", sim.FormatRaw, "output format: raw (recording.dat + recording.json) or openephys (an Open Ephys binary recording with the ground-truth spikes as sorted spikes and stimulation as TTL events; docs/openephys.md)")
	every := fs.Duration("stim-every", 0, "deliver a stimulation train this often (0: never): its artifact is in the data, artifacts.csv lists it, openephys marks it as TTL events")
	channel := fs.Int("stim-channel", 0, "channel of the stimulation trains")
	ua := fs.Float64("stim-ua", 20, "amplitude of the stimulation pulses in µA (5 biphasic, cathodic-first pulses of 200 µs phases at 100 Hz)")
	return func(cfg sim.Config) (sim.RecordOptions, error) {
		o := sim.RecordOptions{Format: *format}
		if o.Format != sim.FormatRaw && o.Format != sim.FormatOpenEphys {
			return o, usageErrorf("--format %q: want raw or openephys", *format)
		}
		switch {
		case *every < 0:
			return o, usageErrorf("--stim-every %v: want >= 0", *every)
		case *every == 0:
			return o, nil
		case *channel < 0 || *channel >= cfg.Channels:
			return o, usageErrorf("--stim-channel %d: want 0..%d", *channel, cfg.Channels-1)
		case !(*ua > 0 && *ua <= 1000):
			return o, usageErrorf("--stim-ua %g: want > 0 and <= 1000 µA", *ua)
		}
		o.StimEvery = uint64(every.Seconds() * cfg.Rate)
		if o.StimEvery == 0 {
			return o, usageErrorf("--stim-every %v is shorter than a sample", *every)
		}
		o.Stim = device.Stim{Channel: uint16(*channel), AmplitudeUA: float32(*ua), PhaseUs: 200, InterphaseUs: 50,
			Pulses: 5, PeriodUs: 10000, Biphasic: true, CathodicFirst: true}
		return o, nil
	}
}

// serveRHX runs 'spikeline sim serve --rhx ADDR': src behind an RHX
// command port on ADDR and its waveform port on the next port, until ctx
// ends.
func serveRHX(ctx context.Context, addr string, src device.Source, pace float64, logf func(string, ...any), faults bool, stdout, stderr io.Writer) error {
	if faults {
		return usageErrorf("--rhx: --corrupt, --drop, --unplug-at, --reset-at and --wait-start are faults of the wire protocol's emulator")
	}
	cmd, wave, err := listenRHX(addr)
	if err != nil {
		return err
	}
	em, err := sim.NewRHX(ctx, src, sim.RHXConfig{Speed: max(pace, 1e-9), Unpaced: pace == 0, Logf: logf})
	if err != nil {
		cmd.Close()
		wave.Close()
		return err
	}
	fmt.Fprintf(stderr, "sim serve: Intan RHX emulator: commands on %s, waveforms on %s (stopped: a host sets it running)\n", cmd.Addr(), wave.Addr())
	fmt.Fprintln(stdout, cmd.Addr().String())
	err = em.Serve(ctx, cmd, wave)
	st := em.Stats()
	fmt.Fprintf(stderr, "sim serve: %d command batches (%d errors), %d data blocks sent in %d writes, %d discarded (no host or no channel), %d waveform connections\n",
		st.Commands, st.Errors, st.BlocksSent, st.Writes, st.BlocksDropped, st.Connections)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// listenRHX listens on addr and on the next port; port 0 finds a free
// pair.
func listenRHX(addr string) (net.Listener, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, usageErrorf("--rhx %q: want HOST:PORT: %v", addr, err)
	}
	for try := 0; try < 50; try++ {
		cmd, err := net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		p := cmd.Addr().(*net.TCPAddr).Port
		wave, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p+1)))
		if err == nil {
			return cmd, wave, nil
		}
		cmd.Close()
		if port != "0" {
			return nil, nil, fmt.Errorf("listening on the waveform port %s: %w", net.JoinHostPort(host, strconv.Itoa(p+1)), err)
		}
	}
	return nil, nil, fmt.Errorf("--rhx %s: no two adjacent free ports", addr)
}
