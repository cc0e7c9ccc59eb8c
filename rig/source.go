package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/stream"
)

// A BehaviourSource gives the behaviour (e.g. hand velocity) the live
// decoder learns from and is scored against: the simulator's true
// behaviour, a tracker's, or any Go code's. TakeBehaviour calls add with
// each sample (device sample index and one value per Config.Outputs) that
// arrived since the last call, in time order; add copies what it keeps.
// The rig calls it from the goroutine that reads the device, after each
// block, so a device that knows its behaviour (a Source that is also a
// BehaviourSource) hands it over in step with its samples.
type BehaviourSource interface {
	TakeBehaviour(add func(sample uint64, values []float64))
}

// openSource is an opened device with what the pipeline needs beyond
// device.Source: a name, behaviour, and the stimulation guard.
type openSource struct {
	device.Source
	name         string
	hasBehaviour bool
	behaviour    BehaviourSource           // Config.Behaviour
	stim         *device.StimGuard         // nil: stimulation not armed (run_security.go)
	onStim       func(device.Stim, uint64) // a stimulation train delivered at a device sample (--record-format openephys)
	pending      *device.Block             // the first Block of a Config.Mode, read by configureMode
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
	if et, ok := s.Source.(device.EventTaker); ok {
		for _, e := range et.TakeEvents(nil) {
			if e.Kind == device.EventBadFrame {
				msg += fmt.Sprintf("; the first bad frame, at byte %d: %s", e.Offset, e.Detail)
				break
			}
		}
	}
	return errors.New(msg)
}

func (s *openSource) Close() error { return device.Close(s.Source) }

func (s *openSource) stats() device.Stats {
	if r, ok := s.Source.(device.StatsReporter); ok {
		return r.Stats()
	}
	return device.Stats{}
}

// takeBehaviour returns the device's behaviour samples since the last
// call (nil for devices that know none).
func (s *openSource) takeBehaviour() []behaviourSample {
	var out []behaviourSample
	add := func(sample uint64, values []float64) {
		out = append(out, behaviourSample{sample, slices.Clone(values)})
	}
	if bs, ok := s.Source.(BehaviourSource); ok {
		bs.TakeBehaviour(add)
	}
	if s.behaviour != nil {
		s.behaviour.TakeBehaviour(add)
	}
	return out
}

// command sends a headstage command named op with JSON arguments.
func (s *openSource) command(ctx context.Context, op string, args json.RawMessage) (any, error) {
	cmd, ok := s.Source.(device.Commander)
	if !ok {
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
		p, ok := s.Source.(device.Pinger)
		if !ok {
			return nil, stream.BadRequest(fmt.Errorf("device %s does not answer ping", s.name))
		}
		rtt, err := p.Ping(ctx)
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
	r, err := cmd.Command(ctx, c)
	if err != nil {
		return nil, err
	}
	return r, nil
}
