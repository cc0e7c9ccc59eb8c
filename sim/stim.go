package sim

import (
	"fmt"
	"math"

	"github.com/spikeline/spikeline/device"
)

// Stimulation artifact model: while a phase of current flows the
// stimulated electrode's amplifier sees stimUVPerUA µV per µA (so trains
// above ~13 µA saturate it, as real headstages do), and after each phase
// the electrode relaxes with a stimTailMs exponential of a quarter of the
// phase's level (half, slower, for monophasic pulses that leave charge
// behind). Other channels of the same group pick up the same waveform
// scaled by 0.3/(1+|distance in channels|).
const (
	stimUVPerUA     = 500.0
	stimTailMs      = 0.4
	stimMonoTailMs  = 2.0
	stimMaxSeconds  = 5.0
	stimMaxUA       = 1000.0
	stimCouplingMax = 0.3
)

// Stimulate adds the artifact of an electrical stimulation train (see
// device.Stim) to the signal, starting with the next sample Next returns,
// and records it in Artifacts. It implements the emulator's Stimulator.
func (s *Sim) Stimulate(st device.Stim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case int(st.Channel) >= s.cfg.Channels:
		return fmt.Errorf("sim: stimulation on channel %d of %d", st.Channel, s.cfg.Channels)
	case st.Pulses == 0:
		return fmt.Errorf("sim: stimulation train of 0 pulses")
	case st.PhaseUs == 0:
		return fmt.Errorf("sim: stimulation phase of 0 µs")
	case !(st.AmplitudeUA > 0 && st.AmplitudeUA <= stimMaxUA):
		return fmt.Errorf("sim: stimulation amplitude %v µA, want 0 < amplitude <= %v", st.AmplitudeUA, stimMaxUA)
	}
	pulseUs := float64(st.PhaseUs)
	if st.Biphasic {
		pulseUs = 2*float64(st.PhaseUs) + float64(st.InterphaseUs)
	}
	if st.Pulses > 1 && float64(st.PeriodUs) < pulseUs {
		return fmt.Errorf("sim: stimulation period %d µs shorter than a pulse (%.0f µs)", st.PeriodUs, pulseUs)
	}
	rate := s.cfg.Rate
	trainUs := float64(st.Pulses-1)*float64(st.PeriodUs) + pulseUs
	if trainUs > stimMaxSeconds*1e6 {
		return fmt.Errorf("sim: stimulation train of %.1f s, want <= %v s", trainUs/1e6, stimMaxSeconds)
	}
	tail := stimTailMs
	if !st.Biphasic {
		tail = stimMonoTailMs
	}
	n := int(math.Ceil((trainUs/1000 + 8*tail) * rate / 1000))
	wave := make([]float64, n)
	level := float64(st.AmplitudeUA) * stimUVPerUA
	sign := 1.0
	if st.CathodicFirst {
		sign = -1
	}
	// phase adds a box of v µV from us0 for dur µs plus its relaxation.
	phase := func(us0, dur, v float64) {
		i0 := int(math.Round(us0 * rate / 1e6))
		i1 := max(i0+1, int(math.Round((us0+dur)*rate/1e6)))
		for i := i0; i < min(i1, n); i++ {
			wave[i] += v
		}
		amp, tau := 0.25*v, tail*rate/1000
		if !st.Biphasic {
			amp = 0.5 * v
		}
		for i := i1; i < n; i++ {
			x := amp * math.Exp(-float64(i-i1)/tau)
			if math.Abs(x) < 0.05 {
				break
			}
			wave[i] += x
		}
	}
	for p := 0; p < int(st.Pulses); p++ {
		t := float64(p) * float64(st.PeriodUs)
		phase(t, float64(st.PhaseUs), sign*level)
		if st.Biphasic {
			phase(t+float64(st.PhaseUs+st.InterphaseUs), float64(st.PhaseUs), -sign*level)
		}
	}
	C := s.cfg.Channels
	g := s.chans[st.Channel].group
	for ch := 0; ch < C; ch++ {
		if s.chans[ch].group != g {
			continue
		}
		k := 1.0
		if d := ch - int(st.Channel); d != 0 {
			k = stimCouplingMax / (1 + math.Abs(float64(d)))
		}
		tm := make([]float32, n)
		for i, v := range wave {
			tm[i] = float32(k * v / s.cfg.Gain)
		}
		// Draw into the part of the current chunk not yet delivered; the
		// rest continues with the spikes of the following chunks.
		job := []render{{start: s.pos, tmpl: tm, scale: 1}}
		s.pend[ch] = append(s.pend[ch], drawSpikes(s.out, C, ch, s.chunkLen, job)...)
	}
	s.artifacts = append(s.artifacts, Artifact{Sample: s.emitted, Samples: n, PeakUV: sign * level, Channel: int(st.Channel)})
	return nil
}
