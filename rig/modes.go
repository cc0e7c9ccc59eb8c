package rig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

// The rig in the modes of protocol version 2 (docs/telemetry.md): a
// headstage that sends spike events has them sorted from their snippets
// (sort.SnippetSorter) in place of the sorter; one that sends features
// has them decoded directly (featureSorter: feature records, no spikes).
// Everything downstream (publishing, calibration, online decoding,
// status) is the samples' code. A device the host commands is put into
// its mode by configureMode, after a calibration of its thresholds.

// eventSorter is what the loop needs of whatever turns Blocks into spikes.
type eventSorter interface {
	Process(device.Block, []sort.Spike) ([]sort.Spike, error)
	Flush([]sort.Spike) []sort.Spike
	Templates() []sort.Template
	Noise([]float32) []float32
	Stats() sort.Stats
	Lag() int
}

// sorting returns what sorts the stream: the sorter, or in a version-2
// mode the events' sorter.
func (p *Rig) sorting() eventSorter {
	if p.events != nil {
		return p.events
	}
	return p.sorter
}

// realSpikes returns the spikes of a batch that are spikes (in feature
// mode, none: the batch holds feature records for the decoder).
func (p *Rig) realSpikes(spikes []sort.Spike) []sort.Spike {
	if p.featureMode {
		return nil
	}
	return spikes
}

// setupEvents chooses what sorts a stream whose first Block is first.
func (p *Rig) setupEvents(first *device.Block) error {
	switch {
	case first.Spikes != nil:
		sp := first.Spikes
		if !sp.Snippets {
			return fmt.Errorf("%s sends spike events without snippets: nothing to sort them by (set_snippet)", p.src.name)
		}
		ss, err := sort.NewSnippetSorter(p.cfg.Sort, first.Channels, first.Rate, sp.Pre, sp.Post, first.Gain)
		if err != nil {
			return err
		}
		p.events = ss
		p.log.Info("the device sends spike events: sorting from their snippets", "pre", sp.Pre, "post", sp.Post)
	case first.Features != nil:
		p.events = &featureSorter{}
		p.featureMode = true
		switch p.cfg.Grouping {
		case decode.ByFeatures, decode.ByCrossings, decode.ByPower:
		default:
			p.log.Info("the device sends features: the decoder takes them as its inputs", "grouping", decode.ByFeatures)
			p.cfg.Grouping = decode.ByFeatures
		}
	}
	return nil
}

// featureSorter turns feature Blocks into feature records
// (decode.FeatureSpikes) for the decoder; it sorts nothing. Its Stats
// report one learning pass from the first Block, so the pipeline starts
// calibrating the decoder at once.
type featureSorter struct {
	st    sort.Stats
	noise []float32
}

func (f *featureSorter) Process(b device.Block, dst []sort.Spike) ([]sort.Spike, error) {
	if b.Settings != nil && len(b.Settings.Thresholds) > 0 {
		f.noise = f.noise[:0]
		for _, t := range b.Settings.Thresholds[0] {
			f.noise = append(f.noise, float32(math.Abs(float64(t))*b.Gain)) // level 0's threshold, µV
		}
	}
	f.st.Learned = 1
	f.st.Samples += b.End() - b.First
	if b.Features == nil {
		return dst, nil
	}
	return decode.FeatureSpikes(dst, b.First, b.Features, b.Gain), nil
}

func (f *featureSorter) Flush(dst []sort.Spike) []sort.Spike { return dst }
func (f *featureSorter) Templates() []sort.Template          { return nil }
func (f *featureSorter) Noise(dst []float32) []float32       { return append(dst, f.noise...) }
func (f *featureSorter) Stats() sort.Stats                   { return f.st }
func (f *featureSorter) Lag() int                            { return 0 }

// sigmaTenths returns |sigmas| in tenths, as a settings frame says it.
func sigmaTenths(sigmas float64) uint8 {
	return uint8(min(math.Round(math.Abs(sigmas)*10), math.MaxUint8))
}

// modeOptions are what configureMode asks of a headstage.
type modeOptions struct {
	mode          device.Mode
	calibrate     time.Duration
	threshold     float64   // spikes: σ
	featureLevels []float64 // features: σ of each level
	countBits     int
}

// modeOptions returns the options of Config's Mode: a device in spike
// mode detects at the sorter's threshold. (Detecting lower, at the
// template threshold, and letting the snippet sorter keep what a
// template explains was measured worse: on 32 simulated channels, seeds
// 1 and 2, 3.6 σ gave 0.870 and 0.809 mean accuracy over SNR >= 5
// against 0.873 and 0.825 at 4 σ; the device's cheaper filter lets more
// noise events through.)
func (c *Config) modeOptions() modeOptions {
	th := c.Sort.Threshold
	if th <= 0 {
		th = sort.Default().Threshold
	}
	return modeOptions{mode: c.Mode, calibrate: c.ModeCalibrate, threshold: th, featureLevels: c.FeatureLevels, countBits: 2}
}

// Next returns the Block configureMode waited for, then the device's.
func (s *openSource) Next(ctx context.Context) (device.Block, error) {
	if b := s.pending; b != nil {
		s.pending = nil
		return *b, nil
	}
	return s.Source.Next(ctx)
}

// modeSource is a headstage that takes commands.
type modeSource interface {
	device.Source
	device.Commander
}

// configureMode puts a headstage the host commands into mode: it reads
// raw samples for the calibration time, sets each channel's thresholds
// from their noise on the device's filter (device.Thresholds), sends the
// feature bins, the thresholds and the mode, and waits for the first
// Block of the new mode, which it returns for the pipeline. In lossless
// mode it only sends the mode.
func configureMode(ctx context.Context, ss modeSource, m modeOptions, log *slog.Logger) (*device.Block, error) {
	cctx, cancel := context.WithTimeout(ctx, m.calibrate+30*time.Second)
	defer cancel()
	cmd := func(c device.Command) error {
		r, err := ss.Command(cctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Op, err)
		}
		if r.Status != device.StatusOK {
			return fmt.Errorf("%s: the device says %s: %s", c.Op, r.Status, r.Message)
		}
		return nil
	}
	var x []int16
	var channels int
	var rate float64
	if m.mode == device.ModeSpikes || m.mode == device.ModeFeatures {
		for {
			b, err := ss.Next(cctx)
			if err != nil {
				return nil, fmt.Errorf("calibrating the thresholds: %w", err)
			}
			if len(b.Samples) == 0 {
				continue
			}
			if channels != 0 && b.Channels != channels {
				x = x[:0] // the format changed: start over
			}
			channels, rate = b.Channels, b.Rate
			x = append(x, b.Samples...)
			if float64(len(x)/channels) >= m.calibrate.Seconds()*rate {
				break
			}
		}
		levels := []float64{m.threshold}
		if m.mode == device.ModeFeatures {
			levels = m.featureLevels
			if err := cmd(device.Command{Op: device.OpSetFeatures, BinSamples: uint16(min(max(math.Round(rate*decode.DefaultBinSeconds), 1), math.MaxUint16)),
				Levels: uint8(len(levels)), CountBits: uint8(m.countBits)}); err != nil {
				return nil, err
			}
		}
		for l, sg := range levels {
			th := device.Thresholds(x, channels, uint32(math.Round(rate)), -sg)
			if err := cmd(device.Command{Op: device.OpSetThresholds, Level: uint8(l), Tenths: sigmaTenths(sg), Thresholds: th}); err != nil {
				return nil, err
			}
		}
		log.Info("thresholds set from the noise on the device's filter", "seconds", m.calibrate.Seconds(), "sigmas", levels)
	}
	if err := cmd(device.Command{Op: device.OpSetMode, Mode: m.mode}); err != nil {
		return nil, err
	}
	for {
		b, err := ss.Next(cctx)
		if err != nil {
			return nil, fmt.Errorf("waiting for the device's %s frames: %w", m.mode, err)
		}
		kind := device.ModeRaw
		switch {
		case b.Spikes != nil:
			kind = device.ModeSpikes
		case b.Features != nil:
			kind = device.ModeFeatures
		case len(b.Samples) > 0 && m.mode == device.ModeCompressed:
			kind = device.ModeCompressed // indistinguishable from raw once decoded
		}
		if kind == m.mode {
			return &b, nil
		}
		if errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("the device did not switch to %s", m.mode)
		}
	}
}
