package sort

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
)

// synth is a small synthetic recording for the sorter's own tests:
// per-channel units with distinct extracellular waveforms (a sharp trough
// and a slower repolarisation bump, before filtering), Poisson firing with
// a refractory period, white and slow background noise, LFP, mains hum and
// a DC offset. It knows the ground truth.
type synth struct {
	rate     float64
	channels int
	gain     float64
	samples  []int16 // time-major counts
	truth    []truthSpike
	units    []synthUnit
}

type truthSpike struct {
	sample uint64 // sample of the raw trough
	unit   int    // index into units
}

type synthUnit struct {
	channel int
	amp     float64 // raw trough µV (positive number)
	peak    float64 // |trough| after the default band-pass, µV
	width   float64 // trough width, ms
	rate    float64 // Hz
}

type synthConfig struct {
	channels     int
	seconds      float64
	unitsPerChan []int   // cycled over channels
	noiseUV      float64 // white noise σ, µV
	ampMin       float64 // raw trough µV
	ampMax       float64
	lfp, hum, dc float64 // µV
	seed         uint64
	drift        float64 // relative amplitude change from start to end (0.3 = +30%)
	artifactUV   float64 // common-mode transients on every channel, µV
	artifactRate float64 // Hz
	fixedWidth   float64 // ms; if set, every unit's trough width
	// overlap: with this probability a spike of a channel's first unit is
	// followed 0.4–0.9 ms later by one of its second unit.
	overlap float64
	// spread: a unit's spike also shows on the channels k = 1, 2, … away
	// from its own, at spread[k-1] of its amplitude and k samples later
	// (a dense probe; nil: on its channel only).
	spread []float64
}

func newSynth(cfg synthConfig) *synth {
	const rate = 30000.0
	rng := rand.New(rand.NewPCG(cfg.seed, 7))
	n := int(cfg.seconds * rate)
	C := cfg.channels
	s := &synth{rate: rate, channels: C, gain: 0.195}
	x := make([]float64, n*C)
	for c := range C {
		k := cfg.unitsPerChan[c%len(cfg.unitsPerChan)]
		for u := range k {
			// Spread amplitudes and widths so units on a channel differ.
			frac := 0.0
			if k > 1 {
				frac = float64(u) / float64(k-1)
			}
			amp := cfg.ampMin + (cfg.ampMax-cfg.ampMin)*frac*(0.9+0.2*rng.Float64())
			width := 0.08 + 0.04*float64((u+c)%3)
			if cfg.fixedWidth > 0 {
				width = cfg.fixedWidth
			}
			s.units = append(s.units, synthUnit{channel: c, amp: amp, width: width, rate: 4 + 8*rng.Float64()})
		}
	}
	// Waveforms and spike trains.
	waves := make([][]float64, len(s.units))
	for ui, u := range s.units {
		wlen := int(3e-3 * rate)
		w := make([]float64, wlen)
		t0 := 0.6e-3 * rate
		for i := range w {
			t := (float64(i) - t0) / rate * 1000 // ms from trough
			w[i] = -u.amp*math.Exp(-0.5*t*t/(u.width*u.width)) +
				0.35*u.amp*math.Exp(-0.5*(t-0.45-u.width)*(t-0.45-u.width)/0.09)
		}
		waves[ui] = w
		_ = waves
		// Peak after the default band-pass, for the SNR.
		secs, _ := dsp.Butterworth(3, 300, 6000, rate)
		f := NewFilter(secs, 1)
		buf := make([]float32, 3*wlen)
		for i, v := range w {
			buf[wlen+i] = float32(v)
		}
		f.Process(buf)
		for _, v := range buf {
			s.units[ui].peak = max(s.units[ui].peak, math.Abs(float64(v)))
		}
		t := 0.05 + rng.ExpFloat64()/u.rate
		for t < cfg.seconds-0.01 {
			i0 := int(t * rate)
			g := 1 + cfg.drift*t/cfg.seconds
			for i, v := range w {
				if j := i0 + i; j < n {
					x[j*C+u.channel] += g * v
				}
			}
			for k, f := range cfg.spread {
				for _, c := range []int{u.channel - k - 1, u.channel + k + 1} {
					if c < 0 || c >= C {
						continue
					}
					for i, v := range w {
						if j := i0 + i + k + 1; j < n {
							x[j*C+c] += f * g * v
						}
					}
				}
			}
			s.truth = append(s.truth, truthSpike{sample: uint64(i0) + uint64(t0), unit: ui})
			if cfg.overlap > 0 && ui+1 < len(s.units) && s.units[ui+1].channel == u.channel &&
				(ui == 0 || s.units[ui-1].channel != u.channel) && rng.Float64() < cfg.overlap {
				// The channel's second unit fires 0.4–0.9 ms later.
				j0 := i0 + int((0.4+0.5*rng.Float64())*1e-3*rate)
				g2 := 1 + cfg.drift*t/cfg.seconds
				w2 := overlapWave(s.units[ui+1], rate)
				for i, v := range w2 {
					if j := j0 + i; j < n {
						x[j*C+u.channel] += g2 * v
					}
				}
				s.truth = append(s.truth, truthSpike{sample: uint64(j0) + uint64(t0), unit: ui + 1})
			}
			t += 0.003 + rng.ExpFloat64()/u.rate
		}
	}
	// Background: white noise, a slow random walk (low-frequency noise),
	// LFP, hum and DC.
	for c := range C {
		phase := rng.Float64() * 2 * math.Pi
		walk := 0.0
		for i := range n {
			t := float64(i) / rate
			walk = 0.999*walk + rng.NormFloat64()*cfg.noiseUV*0.3
			x[i*C+c] += cfg.noiseUV*rng.NormFloat64() + walk*0.2 +
				cfg.lfp*math.Sin(2*math.Pi*6*t+phase) + cfg.hum*math.Sin(2*math.Pi*60*t) + cfg.dc*float64(c%3-1)
		}
	}
	// Common-mode artifacts: a fast biphasic transient on all channels.
	if cfg.artifactRate > 0 {
		for t := 0.1; t < cfg.seconds-0.01; t += 1 / cfg.artifactRate {
			i0 := int(t * rate)
			for i := range 30 {
				v := cfg.artifactUV * math.Sin(2*math.Pi*float64(i)/30) * math.Exp(-float64(i)/10)
				for c := range C {
					x[(i0+i)*C+c] -= v
				}
			}
		}
	}
	s.samples = make([]int16, len(x))
	for i, v := range x {
		s.samples[i] = int16(max(-32768, min(32767, math.Round(v/s.gain))))
	}
	// Truth in time order.
	sortTruth(s.truth)
	return s
}

func sortTruth(t []truthSpike) {
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && t[j].sample < t[j-1].sample; j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
}

// blocks cuts the recording into blocks of n samples.
func (s *synth) blocks(n int) []device.Block {
	var out []device.Block
	total := len(s.samples) / s.channels
	for off := 0; off < total; off += n {
		m := min(n, total-off)
		out = append(out, device.Block{
			First: uint64(off), Rate: s.rate, Channels: s.channels, Gain: s.gain,
			Samples: s.samples[off*s.channels : (off+m)*s.channels],
		})
	}
	return out
}

// runSorter feeds the recording through a new sorter and returns all spikes.
func runSorter(t testing.TB, s *synth, cfg Config, block int) ([]Spike, *Sorter) {
	t.Helper()
	so, err := New(cfg, s.channels, s.rate, s.gain)
	if err != nil {
		t.Fatal(err)
	}
	var out []Spike
	for _, b := range s.blocks(block) {
		out, err = so.Process(b, out)
		if err != nil {
			t.Fatal(err)
		}
	}
	out = so.Flush(out)
	return out, so
}

// unitScore is a ground-truth unit's best agreement with one sorted unit.
type unitScore struct {
	unit     int
	snr      float64
	accuracy float64
	recall   float64 // fraction detected (any unit)
}

// score compares sorted spikes after sample from with the truth: a sorted
// spike matches a true one on the same channel within 0.4 ms; each true
// unit is paired with the sorted unit it agrees with most.
func (s *synth) score(spikes []Spike, from uint64, sigma []float32) []unitScore {
	delta := uint64(0.4e-3 * s.rate)
	type key struct{ gt, so int32 }
	matches := map[key]int{}
	nSorted := map[int32]int{}
	nTrue := make([]int, len(s.units))
	detected := make([]int, len(s.units))
	for _, sp := range spikes {
		if sp.Sample >= from && sp.Unit != 0 {
			nSorted[sp.Unit]++
		}
	}
	// Index spikes per channel.
	byCh := make([][]Spike, s.channels)
	for _, sp := range spikes {
		if sp.Sample >= from {
			byCh[sp.Channel] = append(byCh[sp.Channel], sp)
		}
	}
	for _, tr := range s.truth {
		if tr.sample < from+delta {
			continue
		}
		u := s.units[tr.unit]
		nTrue[tr.unit]++
		list := byCh[u.channel]
		// binary search for the first spike >= tr.sample-delta
		lo, hi := 0, len(list)
		for lo < hi {
			m := (lo + hi) / 2
			if list[m].Sample+delta < tr.sample {
				lo = m + 1
			} else {
				hi = m
			}
		}
		seen := map[int32]bool{}
		any := false
		for i := lo; i < len(list) && list[i].Sample <= tr.sample+delta; i++ {
			any = true
			if id := list[i].Unit; id != 0 && !seen[id] {
				seen[id] = true
				matches[key{int32(tr.unit), id}]++
			}
		}
		if any {
			detected[tr.unit]++
		}
	}
	out := make([]unitScore, len(s.units))
	for ui, u := range s.units {
		best := 0.0
		for k, m := range matches {
			if k.gt != int32(ui) {
				continue
			}
			acc := float64(m) / float64(nTrue[ui]+nSorted[k.so]-m)
			best = max(best, acc)
		}
		snr := 0.0
		if sigma != nil && sigma[u.channel] > 0 {
			snr = u.peak / float64(sigma[u.channel])
		}
		out[ui] = unitScore{unit: ui, snr: snr, accuracy: best, recall: float64(detected[ui]) / float64(max(1, nTrue[ui]))}
	}
	return out
}

// overlapWave is unit u's raw waveform (the same formula as newSynth).
func overlapWave(u synthUnit, rate float64) []float64 {
	w := make([]float64, int(3e-3*rate))
	t0 := 0.6e-3 * rate
	for i := range w {
		t := (float64(i) - t0) / rate * 1000
		w[i] = -u.amp*math.Exp(-0.5*t*t/(u.width*u.width)) +
			0.35*u.amp*math.Exp(-0.5*(t-0.45-u.width)*(t-0.45-u.width)/0.09)
	}
	return w
}
