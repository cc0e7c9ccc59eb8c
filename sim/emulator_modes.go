package sim

import (
	"context"
	"fmt"

	"github.com/spikeline/spikeline/device"
)

// The emulator's modes of protocol version 2 (docs/protocol.md): the host
// selects raw, lossless, spike-event or feature frames by command and
// sets the detector's thresholds; the emulator runs device.Detector, the
// algorithm of the C reference headstage, and device.Compressor on the
// samples it would have sent.

// modeState is the emulator's version-2 state. settings, dirty and
// v2host are guarded by Emulator.mu; the rest belongs to the pump.
type modeState struct {
	settings *device.Settings // nil: not yet made (raw mode, defaults)
	dirty    bool             // settings changed: the pump rebuilds its detector and sends a settings frame
	announce bool             // a settings frame is due (streaming started, a host connected)
	v2host   bool             // the host spoke version 2: settings frames may be sent

	det      *device.Detector // detector of the current settings (spikes, features)
	comp     *device.Compressor
	run      device.Settings // the settings det runs
	events   []device.SpikeEvent
	channels int // channels det was made for
}

// mode returns the current mode (guarded by Emulator.mu).
func (m *modeState) mode() device.Mode {
	if m.settings == nil {
		return device.ModeRaw
	}
	return m.settings.Mode
}

// channelsChanged forgets the thresholds, which were per channel (called
// with Emulator.mu held).
func (m *modeState) channelsChanged() {
	if m.settings != nil {
		for l := range m.settings.Thresholds {
			m.settings.Thresholds[l] = nil // remade for the new channel count
		}
		m.dirty = true
	}
}

// settingsFor returns the settings for a device of channels enabled
// channels at rate, making them (or remaking the thresholds) as needed
// (called with Emulator.mu held).
func (m *modeState) settingsFor(channels int, rate float64) *device.Settings {
	if m.settings == nil {
		m.settings = device.DefaultSettings(uint32(rate+0.5), channels)
	}
	for l, t := range m.settings.Thresholds {
		if len(t) != channels {
			m.settings.Thresholds[l] = make([]int16, channels)
		}
	}
	return m.settings
}

// setMode applies a version-2 command and returns why it failed ("" if
// it did not).
func (e *Emulator) setMode(ctx context.Context, c device.Command) string {
	e.mu.Lock()
	n := e.srcCh
	e.mu.Unlock()
	if n == 0 {
		// The Source has not said how many channels it has yet.
		if err := e.onPump(ctx, func() error { _, err := e.nextFrame(ctx); return err }); err != nil {
			return fmt.Sprintf("source: %v", err)
		}
	}
	e.wmu.Lock() // applies from the first frame after the reply
	defer e.wmu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	channels := e.srcCh
	if e.enabled != nil {
		channels = len(e.enabled)
	}
	s := e.modes.settingsFor(channels, e.rate)
	if err := s.Apply(c, channels); err != nil {
		return err.Error()
	}
	e.modes.dirty, e.modes.v2host = true, true
	return ""
}

// appendFrame appends what the device sends for one frame of samples
// (enabled channels, time-major) in its current mode: a data, compressed
// or spike frame, or the feature frames of the bins that closed, preceded
// by a settings frame when the settings changed.
func (e *Emulator) appendFrame(dst []byte, counter uint64, rate uint32, gain float32, channels int, samples []int16, flags uint16) []byte {
	m := &e.modes
	mode, settings := e.refreshModes(counter, channels, float64(rate))
	if settings {
		dst = device.AppendSettings(dst, counter, rate, gain, channels, &m.run)
	}
	switch mode {
	case device.ModeCompressed:
		if m.comp == nil {
			m.comp = device.NewCompressor(device.CompressConfig{})
		}
		return m.comp.AppendCompressed(dst, counter, rate, gain, channels, samples, flags)
	case device.ModeSpikes:
		m.det.Push(counter, samples)
		m.events = m.det.TakeEvents(m.events[:0])
		n := len(samples) / channels
		return device.AppendSpikes(dst, counter, n, rate, gain, channels,
			&device.Spikes{Pre: m.run.Pre, Post: m.run.Post, Snippets: m.run.Snippets, Events: m.events}, flags)
	case device.ModeFeatures:
		m.det.Push(counter, samples)
		for m.det.Bins() > 0 {
			start, f := m.det.TakeBins(1)
			dst = device.AppendFeatures(dst, start, rate, gain, &f, flags)
		}
		return dst
	}
	return device.AppendData(dst, counter, rate, gain, channels, samples, flags)
}

// detectOnly runs the detector over a frame the link lost: the device
// detected on it all the same.
func (e *Emulator) detectOnly(counter uint64, samples []int16, channels int, rate float64) {
	mode, _ := e.refreshModes(counter, channels, rate)
	if mode == device.ModeSpikes || mode == device.ModeFeatures {
		e.modes.det.Push(counter, samples)
		e.modes.events = e.modes.det.TakeEvents(e.modes.events[:0])
		for e.modes.det.Bins() > 0 {
			e.modes.det.TakeBins(1)
		}
	}
}

// refreshModes takes new settings (on the pump) and returns the mode and
// whether a settings frame is due.
func (e *Emulator) refreshModes(counter uint64, channels int, rate float64) (device.Mode, bool) {
	m := &e.modes
	e.mu.Lock()
	dirty := m.dirty && m.settings != nil
	var s *device.Settings
	if dirty {
		s = m.settingsFor(channels, rate).Clone()
		m.dirty = false
	}
	send := (dirty || m.announce) && m.v2host && m.settings != nil
	if send {
		m.announce = false
	}
	mode := m.mode()
	e.mu.Unlock()
	if dirty || (m.det != nil && m.channels != channels) {
		if s == nil {
			e.mu.Lock()
			s = m.settingsFor(channels, rate).Clone()
			e.mu.Unlock()
		}
		m.run = *s
		m.channels = channels
		m.det = nil
		if s.Mode == device.ModeSpikes || s.Mode == device.ModeFeatures {
			det, err := device.NewDetector(s, channels)
			if err != nil {
				// Settings.Apply checked them: only a channel change
				// between the command and this frame can land here.
				e.logf("sim: detector: %v (raw mode)", err)
				return device.ModeRaw, false
			}
			m.det = det
		}
		if s.Mode != device.ModeCompressed {
			m.comp = nil
		}
	}
	if (mode == device.ModeSpikes || mode == device.ModeFeatures) && m.det == nil {
		return device.ModeRaw, send
	}
	return mode, send
}
