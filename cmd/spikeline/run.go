package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/view"
)

func init() {
	register(command{
		name:    "run",
		summary: "the live pipeline: headstage → sorter → decoder → NATS (default: simulated headstage, embedded NATS)",
		run:     runPipeline,
	})
}

// runOptions is everything `spikeline run` was asked to do, checked before
// anything starts.
type runOptions struct {
	src      sourceFlags
	sort     sort.Config
	nats     stream.Config
	model    string      // decoder model file; "" = calibrate live
	behSubj  string      // NATS subject carrying behaviour for calibration (real devices)
	outputs  []string    // names of the behaviour values
	kind     decode.Kind // decoder fitted by live calibration
	calib    float64     // seconds of calibration
	grouping decode.Grouping
	status   time.Duration // status period
	queue    int           // blocks buffered between source and sorter
	duration time.Duration // 0 = until interrupted
	record   string        // directory to record the raw stream into
	recFmt   string        // --record-format: raw or openephys
	http     string        // listen address of the live page and /metrics; "" = none
	view     runViewOptions
	sec      securityOptions // stimulation arming, access (run_security.go)
}

func runPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runRig(ctx, args, stdout, stderr, nil)
}

// runRig is runPipeline; tune, if set, changes the rig.Config the flags
// made before the rig starts (tests and benchmarks set its hooks).
func runRig(ctx context.Context, args []string, stdout, stderr io.Writer, tune func(*rig.Config)) error {
	fs := newFlagSet("run", stderr)
	var o runOptions
	srcFlags := registerSourceFlags(fs, &o.src)
	modeFlags := registerModeFlags(fs)     // run_modes.go
	remoteFlags := registerRemoteFlags(fs) // run_remote.go
	sortFlags := registerSortFlags(fs)
	probeFlags := registerProbeFlags(fs) // run_probe.go
	natsCfg := natsFlags(fs)
	fs.StringVar(&o.model, "model", "", "decoder model file (from 'spikeline decode fit'); default: calibrate a decoder live from the behaviour stream")
	kind := fs.String("decoder", "wiener", "decoder fitted by live calibration: wiener or kalman")
	fs.Float64Var(&o.calib, "calibrate", 60, "seconds of sorted spikes and behaviour collected before the live decoder is fitted")
	fs.StringVar(&o.behSubj, "behaviour-subject", "", "NATS subject on which behaviour arrives (estimate schema, binary or .json) to calibrate the decoder of a real device; the simulator brings its own")
	outputs := fs.String("outputs", "vx,vy", "names of the behaviour values the decoder learns, in order")
	group := fs.String("grouping", "unit", "decoder inputs: unit (sorted units) or channel (threshold crossings); a device in feature mode: features (its default), crossings or power")
	fs.DurationVar(&o.status, "status-every", time.Second, "period of the status message")
	fs.IntVar(&o.queue, "queue", 1000, "blocks buffered between the device and the sorter")
	fs.StringVar(&o.record, "record", "", "also record the raw stream into this directory (recording.dat + recording.json, crash-safe; gaps zero-filled and listed)")
	fs.StringVar(&o.recFmt, "record-format", rig.RecordRaw, "format of --record: raw (recording.dat + recording.json) or openephys (an Open Ephys binary recording, docs/openephys.md); spikes.csv and templates.json either way")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this much device time (0: run until interrupted)")
	fs.StringVar(&o.http, "http", "127.0.0.1:8080", "listen address of the live page and the Prometheus /metrics endpoint (port 0: any free port; if the port is taken, a free one is used; \"off\": none)")
	viewFlags := registerRunViewFlags(fs)
	secFlags := registerSecurityFlags(fs)
	logCfg := logFlags(fs)
	applyConfig := configFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline run [--device sim|sim:pty|sim:tcp|serial:PATH|usb:VID:PID|tcp:HOST:PORT|file:PATH] [--config FILE] [flags]")
		fmt.Fprintln(stderr, "\nThe live pipeline: headstage → sorter → decoder → NATS, with a live page and Prometheus")
		fmt.Fprintln(stderr, "metrics on --http. With no flags: a simulated 256-channel headstage and an embedded NATS")
		fmt.Fprintln(stderr, "server. SIGINT/SIGTERM stop it cleanly (exit 130/143). docs/run.md describes it all.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if err := applyConfig(); err != nil {
		return err
	}
	log, err := logCfg(stderr)
	if err != nil {
		return err
	}
	if err = srcFlags(); err != nil {
		return err
	}
	if o.sort, err = sortFlags(); err != nil {
		return err
	}
	channels := o.src.channels
	if o.src.isSim() {
		channels = o.src.sim.Channels
	}
	if err = probeFlags(&o.sort, channels); err != nil {
		return err
	}
	if o.nats, err = natsCfg(); err != nil {
		return err
	}
	if o.view, err = viewFlags(); err != nil {
		return err
	}
	if o.sec, err = secFlags(); err != nil {
		return err
	}
	warnSecretFlags(fs, stderr)
	o.nats.ReadersNeedCredentials = o.sec.noAnonymous && o.nats.Embedded()
	if o.sec.noAnonymous && !o.nats.Embedded() {
		return usageErrorf("--nats-no-anonymous is for the embedded server; an external server's configuration says who reads")
	}
	if o.http == "off" {
		o.http = ""
	}
	if o.http != "" {
		if _, _, err := net.SplitHostPort(o.http); err != nil {
			return usageErrorf("--http %q: want HOST:PORT or off: %v", o.http, err)
		}
	}
	switch decode.Kind(*kind) {
	case decode.Wiener, decode.Kalman:
		o.kind = decode.Kind(*kind)
	default:
		return usageErrorf("--decoder %q: want wiener or kalman", *kind)
	}
	switch decode.Grouping(*group) {
	case decode.ByUnit, decode.ByChannel, decode.ByFeatures, decode.ByCrossings, decode.ByPower:
		o.grouping = decode.Grouping(*group)
	default:
		return usageErrorf("--grouping %q: want unit or channel, or for a device in feature mode features, crossings or power", *group)
	}
	if o.calib <= 0 {
		return usageErrorf("--calibrate %g: want > 0 seconds", o.calib)
	}
	for _, n := range strings.Split(*outputs, ",") {
		if n = strings.TrimSpace(n); n == "" {
			return usageErrorf("--outputs %q: empty name", *outputs)
		}
		o.outputs = append(o.outputs, n)
	}
	if o.src.isSim() && o.behSubj == "" && len(o.outputs) != 2 {
		return usageErrorf("--outputs %q: the simulator's behaviour has two values (vx, vy)", *outputs)
	}
	if strings.ContainsAny(o.behSubj, " \t\r\n") {
		return usageErrorf("--behaviour-subject %q: not a NATS subject", o.behSubj)
	}
	if o.status <= 0 || o.duration < 0 {
		return usageErrorf("--status-every must be > 0 and --duration >= 0")
	}
	if err := device.CheckInt("", "--queue", int64(o.queue), 1, device.MaxQueueBlocks, "blocks"); err != nil {
		return usageErrorf("%v", err)
	}
	var model *decode.Model
	if o.model != "" {
		if model, err = decode.Load(o.model); err != nil {
			return usageErrorf("--model: %v", err)
		}
	}

	spec, devOpts := o.src.options(log)
	cfg := rig.Config{
		Device: spec, DeviceOptions: devOpts, Sort: o.sort, NATS: o.nats,
		Model: model, Decoder: o.kind, Grouping: o.grouping, Calibrate: o.calib, Outputs: o.outputs,
		BehaviourSubject: o.behSubj, StatusEvery: o.status, Queue: o.queue, Duration: o.duration,
		Record: o.record, RecordFormat: o.recFmt,
		HTTP: o.http, View: o.view.cfg, Live: o.view.live, MaxBrowsers: o.sec.maxStreams, Pprof: o.sec.pprof,
		NoAnonymous: o.sec.noAnonymous, Version: version, Logger: log, Stdout: stdout,
	}
	if o.sec.allowStim {
		cfg.StimLimits, cfg.StimLimitsFile = &o.sec.limits, o.sec.limitsFile
	}
	if err := modeFlags(&cfg, o.src.kind); err != nil {
		return err
	}
	if err := remoteFlags(&cfg); err != nil {
		return err
	}
	if tune != nil {
		tune(&cfg)
	}
	// New is the pre-flight: the output directory is checked and its
	// files created before any server or device starts.
	r, err := rig.New(cfg)
	if err == nil {
		err = r.Run(ctx)
	}
	if errors.Is(err, rig.ErrConfig) || errors.Is(err, device.ErrSpec) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return err
}

// runViewOptions configures the live page that 'spikeline run' serves on
// its --http address.
type runViewOptions struct {
	cfg  view.Config
	live view.LiveConfig // Channels, Rate, Sign, Threshold and R2 are filled in by startView
}

// registerRunViewFlags registers the page's flags on run's flag set and
// returns the function that checks them after parsing.
func registerRunViewFlags(fs *flag.FlagSet) func() (runViewOptions, error) {
	frameRate := fs.Float64("view-frame-rate", view.DefaultFrameRate, "frames per second sent to each browser by the live page (1-120)")
	window := fs.Duration("view-window", view.DefaultWindow, "device time shown by the live page's raster and decoder traces (1s-10m)")
	trace := fs.Duration("view-trace", view.DefaultTraceSpan, "device time of the band-passed trace of the selected channels on the live page (10ms up to 65536 samples)")
	waveforms := fs.Int("view-waveforms", view.DefaultWaveforms, "recent waveforms drawn per selected channel on the live page (1-5000)")
	maxWatch := fs.Int("view-max-channels", view.DefaultMaxWatch, "channels whose trace and waveforms the live page follows at once, over all browsers (1-64)")
	detailRate := fs.Float64("view-detail-rate", view.DefaultDetailRate, "updates per second of the live page's trace and waveforms (1-60)")
	return func() (runViewOptions, error) {
		o := runViewOptions{cfg: view.Config{FrameRate: *frameRate, Window: *window, Rig: stream.DefaultRig}}
		if err := (view.Config{Rig: stream.DefaultRig, FrameRate: *frameRate}).Validate(); err != nil {
			return o, usageErrorf("--view-frame-rate: %v", err)
		}
		if err := (view.Config{Rig: stream.DefaultRig, Window: *window}).Validate(); err != nil {
			return o, usageErrorf("--view-window: %v", err)
		}
		if err := o.cfg.Validate(); err != nil {
			return o, usageErrorf("%v", err)
		}
		switch {
		case *trace < 10*time.Millisecond:
			return o, usageErrorf("--view-trace %v: want at least 10ms", *trace)
		case *waveforms < 1 || *waveforms > 5000:
			return o, usageErrorf("--view-waveforms %d: want 1 to 5000", *waveforms)
		case *maxWatch < 1 || *maxWatch > 64:
			return o, usageErrorf("--view-max-channels %d: want 1 to 64", *maxWatch)
		case !(*detailRate >= 1 && *detailRate <= 60):
			return o, usageErrorf("--view-detail-rate %g: want 1 to 60", *detailRate)
		}
		// The longest trace the sorter keeps depends on the sample rate,
		// known once the device speaks: startView shortens a longer one.
		o.live = view.LiveConfig{TraceSpan: *trace, Waveforms: *waveforms, MaxWatch: *maxWatch,
			MaxSelect: min(view.DefaultMaxSelect, *maxWatch), DetailRate: *detailRate}
		return o, nil
	}
}
