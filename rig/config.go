package rig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spikeline/spikeline/decode"
	// The default device, "sim", is the simulator's kind.
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/shard"
	_ "github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/view"
)

// Config is everything a Rig does, checked by New before anything
// starts. The zero Config runs the simulator with its defaults, sorts,
// calibrates a Wiener decoder live and publishes on an embedded NATS
// server, with no live page.
type Config struct {
	// Device is the device specification ("sim", "serial:/dev/ttyACM0",
	// "file:rec.dat", ...; device.Open), opened with DeviceOptions.
	// Source, if set, is used instead: a device the caller opened (or
	// wrote); it is not closed by the Rig. Default: "sim".
	Device        string
	DeviceOptions device.Options
	Source        device.Source

	// Mode is what a headstage that takes commands is asked to send
	// (protocol version 2, docs/telemetry.md): device.ModeRaw (the zero
	// value) leaves it as it is; for lossless, spikes or features the rig
	// reads ModeCalibrate (default 10 s) of raw samples, sets each
	// channel's thresholds from its noise on the device's filter — at
	// Sort.Threshold σ for spike events, at FeatureLevels σ (default 3.5,
	// 5, 7, 10; 2-bit counts) for features — and switches the device.
	// Spike events are sorted from their snippets; features are decoded
	// directly (Grouping features). Device "sim" is then served by the
	// emulator over loopback TCP. A file of frames is read in its own
	// mode whatever Mode says.
	Mode          device.Mode
	ModeCalibrate time.Duration
	FeatureLevels []float64

	// Sort configures the sorter (one per segment of the session).
	Sort sort.Config

	// Shards, if set, sorts on shards over NATS (package shard,
	// `spikeline shard`; docs/scale-out.md) instead of in this process:
	// the raw stream is published in channel groups, shards sort them
	// and the rig merges their spikes into the stream it publishes and
	// decodes. The rig fills in Conn, Rig, Sort, Events and Logger. With
	// the embedded server the rig makes a shard credential (shard.nk).
	Shards *shard.Options

	// NATS says where to publish (Config.URLs empty: an embedded server).
	NATS stream.Config

	// Model is a fitted decoder to run from the start; nil calibrates one
	// live from the behaviour: Decoder (Wiener by default) on Grouping
	// (sorted units by default) after Calibrate seconds (default 60).
	Model     *decode.Model
	Decoder   decode.Kind
	Grouping  decode.Grouping
	Calibrate float64

	// Outputs name the behaviour's values (default vx, vy).
	Outputs []string

	// The behaviour the live decoder learns from comes from the device
	// itself when it is a BehaviourSource (the simulator), from Behaviour
	// when set, and from the NATS subject BehaviourSubject (estimate
	// schema) when set.
	Behaviour        BehaviourSource
	BehaviourSubject string

	// StatusEvery is the period of the status message (default 1 s);
	// Queue the blocks buffered between the device and the sorter
	// (default 1,000, and at most device.MaxQueueBytes of samples);
	// Duration, if > 0, stops the rig after that much device time.
	StatusEvery time.Duration
	Queue       int
	Duration    time.Duration

	// Record, if set, records the raw stream, the sorted spikes and the
	// templates into this directory (never overwritten), crash-safe, one
	// recording per segment; RecordFormat is RecordRaw (default) or
	// RecordOpenEphys.
	Record       string
	RecordFormat string

	// HTTP, if set, is the HOST:PORT of the live page and /metrics (port
	// 0: any free port; a taken port falls back to a free one). View and
	// Live configure the page (zero fields: the view package's defaults);
	// MaxBrowsers bounds its event streams (default 64); Pprof also
	// serves the Go profiler under /debug/pprof/.
	HTTP        string
	View        view.Config
	Live        view.LiveConfig
	MaxBrowsers int
	Pprof       bool

	// StimLimits, if set, arms stimulation: the control service's
	// stimulate command is checked against them (device.StimGuard) and
	// sent to the headstage, which must take commands. StimLimitsFile
	// names where they came from, for messages.
	StimLimits     *device.StimLimits
	StimLimitsFile string

	// NoAnonymous makes readers of the embedded server use the reader
	// credential (default: anonymous readers on loopback).
	NoAnonymous bool

	// Version is reported by the control service's info.
	Version string

	// Logger receives the log (nil: discarded); Stdout the lines for the
	// person at the bench: what runs where, a status line, a summary
	// (nil: discarded).
	Logger *slog.Logger
	Stdout io.Writer

	// OnBatch, if set, is called by the sorter loop right after each spike
	// batch is handed to the publisher, with the batch's end sample and
	// the time the device block that completed it was received (for
	// latency measurements). It must return quickly.
	OnBatch func(end uint64, received time.Time)
}

// Record formats of Config.RecordFormat.
const (
	RecordRaw       = "raw"       // recording.dat + recording.json (docs/formats.md)
	RecordOpenEphys = "openephys" // an Open Ephys binary recording (docs/openephys.md)
)

// ErrConfig is the error a Config that New refuses is: nothing was
// started.
var ErrConfig = errors.New("rig: bad configuration")

type configError struct{ err error }

func (e *configError) Error() string        { return e.err.Error() }
func (e *configError) Unwrap() error        { return e.err }
func (e *configError) Is(target error) bool { return target == ErrConfig }

func configErrorf(format string, a ...any) error { return &configError{fmt.Errorf(format, a...)} }

// withDefaults fills the zero fields of c and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Device == "" && c.Source == nil {
		c.Device = "sim"
	}
	if c.Decoder == "" {
		c.Decoder = decode.Wiener
	}
	if c.Grouping == "" {
		c.Grouping = decode.ByUnit
	}
	if c.ModeCalibrate == 0 {
		c.ModeCalibrate = 10 * time.Second
	}
	if len(c.FeatureLevels) == 0 {
		c.FeatureLevels = []float64{3.5, 5, 7, 10}
	}
	if c.Calibrate == 0 {
		c.Calibrate = 60
	}
	if c.Outputs == nil {
		c.Outputs = []string{"vx", "vy"}
	}
	if c.StatusEvery == 0 {
		c.StatusEvery = time.Second
	}
	if c.Queue == 0 {
		c.Queue = 1000
	}
	if c.RecordFormat == "" {
		c.RecordFormat = RecordRaw
	}
	if c.MaxBrowsers == 0 {
		c.MaxBrowsers = 64
	}
	if c.NATS.Rig == "" {
		c.NATS.Rig = stream.DefaultRig
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	c.View, c.Live = viewDefaults(c.View, c.Live)
	switch {
	case c.Decoder != decode.Wiener && c.Decoder != decode.Kalman:
		return c, configErrorf("rig: Decoder %q: want wiener or kalman", c.Decoder)
	case c.Grouping != decode.ByUnit && c.Grouping != decode.ByChannel && c.Grouping != decode.ByFeatures &&
		c.Grouping != decode.ByCrossings && c.Grouping != decode.ByPower:
		return c, configErrorf("rig: Grouping %q: want unit or channel, or for a device in feature mode features, crossings or power", c.Grouping)
	case c.Mode > device.ModeFeatures:
		return c, configErrorf("rig: Mode %d: want raw, lossless, spikes or features", c.Mode)
	case len(c.FeatureLevels) > device.MaxLevels || c.ModeCalibrate < 0:
		return c, configErrorf("rig: %d FeatureLevels (at most %d), ModeCalibrate %v", len(c.FeatureLevels), device.MaxLevels, c.ModeCalibrate)
	case !(c.Calibrate > 0):
		return c, configErrorf("rig: Calibrate %g: want > 0 seconds", c.Calibrate)
	case c.StatusEvery < 0 || c.Duration < 0:
		return c, configErrorf("rig: StatusEvery must be > 0 and Duration >= 0")
	case strings.ContainsAny(c.BehaviourSubject, " \t\r\n"):
		return c, configErrorf("rig: BehaviourSubject %q: not a NATS subject", c.BehaviourSubject)
	case c.NoAnonymous && !c.NATS.Embedded():
		return c, configErrorf("--nats-no-anonymous is for the embedded server; an external server's configuration says who reads")
	}
	for _, n := range c.Outputs {
		if strings.TrimSpace(n) == "" {
			return c, configErrorf("rig: Outputs %q: empty name", c.Outputs)
		}
	}
	if err := device.CheckInt("", "--queue", int64(c.Queue), 1, device.MaxQueueBlocks, "blocks"); err != nil {
		return c, configErrorf("%v", err)
	}
	if c.HTTP != "" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			return c, configErrorf("--http %q: want HOST:PORT or off: %v", c.HTTP, err)
		}
	}
	if err := c.shardDefaults(); err != nil {
		return c, err
	}
	c.NATS.ReadersNeedCredentials = c.NoAnonymous && c.NATS.Embedded()
	c.NATS.Logger = c.Logger
	if c.NATS.Embedded() {
		c.NATS.BehaviourSubject = c.BehaviourSubject
	}
	return c, nil
}

// New checks cfg and prepares a Rig: with Config.Record, the recording
// directory is checked and its first files created, so that a directory
// that cannot be written is refused before any server or device starts.
// A Config it refuses gives an ErrConfig error. Run the Rig once.
func New(cfg Config) (*Rig, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Rig{cfg: cfg, log: cfg.Logger, model: cfg.Model, stdout: cfg.Stdout, line: newStatusLine(cfg.Stdout)}
	if cfg.Record != "" {
		if p.rec, p.spikeRec, err = openRecordAs(cfg.Record, cfg.RecordFormat); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Run opens the device (unless Config.Source was given), runs the
// pipeline until the device ends, Config.Duration of device time has
// passed or ctx ends, and shuts down cleanly: the sorter is flushed, the
// last batch published, NATS drained and the recording closed. A
// cancelled ctx is a clean stop (Run returns nil).
func (p *Rig) Run(ctx context.Context) (rerr error) {
	if p.rec != nil {
		defer func() {
			if err := p.closeRecord(); err != nil && rerr == nil {
				rerr = err
			}
		}()
	}
	src := p.cfg.Source
	name := "source"
	if src == nil {
		o := p.cfg.DeviceOptions
		if o.Logger == nil {
			o.Logger = p.log
		}
		spec := p.cfg.Device
		if p.cfg.Mode != device.ModeRaw && spec == "sim" {
			spec = "sim:tcp" // the emulator runs the device's modes (modes.go)
		}
		var err error
		if src, err = device.Open(ctx, spec, o); err != nil {
			return err
		}
		name = device.Name(src, spec)
		defer device.Close(src)
	} else {
		name = device.Name(src, name)
	}
	_, beh := src.(BehaviourSource)
	p.src = &openSource{Source: src, name: name, hasBehaviour: beh || p.cfg.Behaviour != nil, behaviour: p.cfg.Behaviour}
	if p.cfg.Mode != device.ModeRaw {
		ms, ok := src.(modeSource)
		if !ok {
			return fmt.Errorf("%s takes no commands: Mode %s needs a headstage the host commands", name, p.cfg.Mode)
		}
		var err error
		if p.src.pending, err = configureMode(ctx, ms, p.cfg.modeOptions(), p.log); err != nil {
			return fmt.Errorf("%s: mode %s: %w", name, p.cfg.Mode, err)
		}
	}
	p.interopOpened()
	return p.run(ctx)
}

// viewDefaults fills the zero fields of the live page's configuration.
func viewDefaults(c view.Config, l view.LiveConfig) (view.Config, view.LiveConfig) {
	if c.FrameRate == 0 {
		c.FrameRate = view.DefaultFrameRate
	}
	if c.Window == 0 {
		c.Window = view.DefaultWindow
	}
	if l.TraceSpan == 0 {
		l.TraceSpan = view.DefaultTraceSpan
	}
	if l.Waveforms == 0 {
		l.Waveforms = view.DefaultWaveforms
	}
	if l.MaxWatch == 0 {
		l.MaxWatch = view.DefaultMaxWatch
	}
	if l.MaxSelect == 0 {
		l.MaxSelect = min(view.DefaultMaxSelect, l.MaxWatch)
	}
	if l.DetailRate == 0 {
		l.DetailRate = view.DefaultDetailRate
	}
	return c, l
}
