package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

func init() { simServe = runSimServe }

// runSimServe runs "spikeline sim serve": the simulator (or a test
// pattern) served as a headstage speaking the wire protocol on a
// pseudo-terminal, a TCP port or into a file, with fault injection.
func runSimServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim serve", stderr)
	usePTY := fs.Bool("pty", false, "serve on a pseudo-terminal (Linux), published at --link")
	link := fs.String("link", "", "with --pty: stable path of the device, a symlink to the current pty (default: a new temporary directory's \"headstage\")")
	tcpAddr := fs.String("tcp", "", "serve on this TCP address, e.g. 127.0.0.1:7000 (port 0: any free port)")
	file := fs.String("file", "", "write a wire-protocol capture to this file instead of serving a host")
	rhxAddr := fs.String("rhx", "", "serve as the Intan RHX software: its command port on this address (e.g. 127.0.0.1:5000; port 0: any free pair) and its waveform port on the next port (docs/intan.md)")
	dur := fs.String("duration", "", "stop after this much device time (a Go duration or seconds); default: until interrupted, 10s with --file")
	frame := fs.Int("frame", 0, "samples per channel in each data frame (default: 1 ms of samples)")
	pace := fs.Float64("pace", -1, "pacing as a multiple of real time; 0 = as fast as the host reads (default 1, 0 with --file)")
	waitStart := fs.Bool("wait-start", false, "stay silent until the host sends a start command")
	pattern := fs.Bool("pattern", false, "send a test pattern (sim.PatternValue of sample and channel) instead of simulated neural data")
	corrupt := fs.Float64("corrupt", 0, "probability that each byte sent is damaged (one bit flipped), e.g. 0.0001")
	drop := fs.Float64("drop", 0, "probability that each data frame is lost")
	unplugAt := fs.Duration("unplug-at", 0, "unplug the device at this device time (0 = never)")
	unplugEvery := fs.Duration("unplug-every", 0, "and again at this period")
	unplugFor := fs.Duration("unplug-for", time.Second, "how long the device stays unplugged")
	resetAt := fs.Duration("reset-at", 0, "reset the device's sample counter to 0 at this device time (0 = never)")
	maxLag := fs.Duration("max-lag", time.Second, "device buffer: when the host falls this far behind, frames are dropped as an overflow")
	verbose := fs.Bool("v", false, "log connections, commands refused, unplugs and resets to stderr")
	build := simFlags(fs, 32)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline sim serve (--pty [--link PATH] | --tcp ADDR | --rhx ADDR | --file PATH) [flags]")
		fmt.Fprintln(stderr, "\nEmulates a headstage: streams simulated data as wire-protocol frames, obeys host")
		fmt.Fprintln(stderr, "commands (start, stop, set rate, set channels, ping, stimulate, info) and injects")
		fmt.Fprintln(stderr, "faults. Prints the device path (or TCP address) to open on stdout. While it runs,")
		fmt.Fprintln(stderr, "SIGUSR1 unplugs the device for --unplug-for and SIGUSR2 resets its counter.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	modes := 0
	for _, on := range []bool{*usePTY, *tcpAddr != "", *file != "", *rhxAddr != ""} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return usageErrorf("give exactly one of --pty, --tcp ADDR, --rhx ADDR or --file PATH")
	}
	if *link != "" && !*usePTY {
		return usageErrorf("--link needs --pty")
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"--corrupt", *corrupt}, {"--drop", *drop}} {
		if p.v < 0 || p.v > 1 || math.IsNaN(p.v) {
			return usageErrorf("%s %g: want a probability in [0, 1]", p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--unplug-at", *unplugAt}, {"--unplug-every", *unplugEvery}, {"--reset-at", *resetAt}} {
		if d.v < 0 {
			return usageErrorf("%s %v: want >= 0", d.name, d.v)
		}
	}
	if *unplugFor <= 0 {
		return usageErrorf("--unplug-for %v: want > 0", *unplugFor)
	}
	if *unplugEvery > 0 && *unplugAt == 0 {
		return usageErrorf("--unplug-every needs --unplug-at")
	}
	if *frame < 0 || *frame > math.MaxUint16 {
		return usageErrorf("--frame %d: want 1..65535 samples", *frame)
	}
	if *pace < 0 && *pace != -1 || math.IsNaN(*pace) || math.IsInf(*pace, 0) {
		return usageErrorf("--pace %g: want >= 0", *pace)
	}
	if *maxLag <= 0 {
		return usageErrorf("--max-lag %v: want > 0", *maxLag)
	}
	var seconds float64
	if *dur != "" {
		s, err := parseSeconds(*dur)
		if err != nil || s <= 0 {
			return usageErrorf("--duration %q: want a positive duration", *dur)
		}
		seconds = s
	} else if *file != "" {
		seconds = 10
	}
	cfg, err := build()
	if err != nil {
		return err
	}
	if *frame == 0 {
		*frame = max(1, int(math.Round(cfg.Rate/1000)))
	}
	if cfg.Channels*(*frame)*2 > device.MaxPayload {
		return usageErrorf("--frame %d with %d channels exceeds the protocol's %d-byte payload", *frame, cfg.Channels, device.MaxPayload)
	}
	if *pace == -1 {
		*pace = 1
		if *file != "" {
			*pace = 0
		}
	}

	var src device.Source
	if *pattern {
		src = &sim.TestPattern{Channels: cfg.Channels, Rate: cfg.Rate, Gain: cfg.Gain, BlockSamples: *frame}
	} else {
		s, err := sim.New(cfg)
		if err != nil {
			return err
		}
		src = s
	}
	ecfg := sim.EmulatorConfig{
		FrameSamples: *frame,
		Speed:        *pace,
		Unpaced:      *pace == 0,
		WaitForStart: *waitStart,
		MaxLag:       *maxLag,
		Seed:         uint64(cfg.Seed),
		Faults: sim.Faults{CorruptRate: *corrupt, DropRate: *drop, UnplugAt: *unplugAt,
			UnplugEvery: *unplugEvery, UnplugFor: *unplugFor, ResetAt: *resetAt},
	}
	if *verbose {
		ecfg.Logf = func(format string, args ...any) {
			fmt.Fprintf(stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
	}
	em := sim.NewEmulator(src, ecfg)

	if seconds > 0 && *file == "" {
		var cancel context.CancelFunc
		wall := time.Duration(seconds * float64(time.Second))
		if *pace > 0 {
			wall = time.Duration(float64(wall) / *pace)
		}
		ctx, cancel = context.WithTimeout(ctx, wall)
		defer cancel()
	}
	if *rhxAddr != "" { // run_interop.go
		return serveRHX(ctx, *rhxAddr, src, *pace, ecfg.Logf, *corrupt > 0 || *drop > 0 || *unplugAt > 0 || *resetAt > 0 || *waitStart, stdout, stderr)
	}
	stopSignals := faultSignals(em)
	defer stopSignals()

	describe := fmt.Sprintf("%d channels at %g Hz, %d-sample frames", cfg.Channels, cfg.Rate, *frame)
	var serveErr error
	switch {
	case *usePTY:
		first := true
		serveErr = em.ServePTY(ctx, *link, func(tty string) {
			path := *link
			if path == "" {
				path = tty
			}
			if first {
				first = false
				fmt.Fprintf(stderr, "sim serve: headstage (%s) on pseudo-terminal %s\n", describe, tty)
				if *link != "" {
					fmt.Fprintf(stderr, "sim serve: open %s (a link that survives unplugs); SIGUSR1 (kill -USR1 %d) unplugs\n", *link, os.Getpid())
				}
				fmt.Fprintln(stdout, path)
			} else if *verbose {
				fmt.Fprintf(stderr, "sim serve: plugged back in on %s\n", tty)
			}
		})
	case *tcpAddr != "":
		ln, err := net.Listen("tcp", *tcpAddr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", *tcpAddr, err)
		}
		fmt.Fprintf(stderr, "sim serve: headstage (%s) on tcp %s\n", describe, ln.Addr())
		fmt.Fprintln(stdout, ln.Addr().String())
		serveErr = em.ServeTCP(ctx, ln)
	default:
		f, err := os.Create(*file)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		serveErr = em.WriteStream(ctx, w, time.Duration(seconds*float64(time.Second)))
		if err := w.Flush(); err != nil && serveErr == nil {
			serveErr = err
		}
		if err := f.Close(); err != nil && serveErr == nil {
			serveErr = err
		}
		if serveErr == nil {
			fmt.Fprintln(stdout, *file)
		}
	}
	st := em.Stats()
	fmt.Fprintf(stderr, "sim serve: %d frames sent (%d corrupted), %d dropped, %d overflowed; %d samples not sent (stopped or unplugged); %d commands, %d unplugs, %d resets\n",
		st.FramesSent+st.FramesCorrupted, st.FramesCorrupted, st.FramesDropped, st.FramesOverflowed, st.SamplesIdle, st.Commands, st.Unplugs, st.Resets)
	if errors.Is(serveErr, context.DeadlineExceeded) {
		return nil // --duration reached
	}
	return serveErr
}
