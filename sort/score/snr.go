package score

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
	"github.com/spikeline/spikeline/sort"
)

// SNROptions tune MeasureSNR. The zero value is usable.
type SNROptions struct {
	Low, High float64 // band-pass corners in Hz (300, 6000; High clipped to 0.45·rate)
	Order     int     // Butterworth order (3), the sorter's default filter
	Window    float64 // ms either side of the spike sample searched for the extremum (1)
	MaxSpikes int     // spikes averaged per unit, spread over its train (1000)
	// NoiseSamples is the number of filtered samples per channel the MAD is
	// taken over (every third sample from the start; 100000).
	NoiseSamples int
}

// MeasureSNR measures the SNR of each ground-truth unit from the
// recording: the extremum of the unit's mean band-passed waveform on its
// channel (the channel most of its spikes carry) divided by the channel's
// noise, MAD/0.6745 of the band-passed signal. The filter is the sorter's
// causal Butterworth band-pass. Units whose spikes carry no channel are
// left out. src is read to the end (io.EOF).
func MeasureSNR(ctx context.Context, src device.Source, gt []sort.Spike, opts SNROptions) (map[int32]float64, error) {
	if opts.Low <= 0 {
		opts.Low = 300
	}
	if opts.High <= 0 {
		opts.High = 6000
	}
	if opts.Order <= 0 {
		opts.Order = 3
	}
	if opts.Window <= 0 {
		opts.Window = 1
	}
	if opts.MaxSpikes <= 0 {
		opts.MaxSpikes = 1000
	}
	if opts.NoiseSamples <= 0 {
		opts.NoiseSamples = 100000
	}
	const noiseStride = 3

	// Main channel and spike count per unit; pick spikes to average.
	ids, index, count, channel, _ := units(gt)
	type pick struct {
		sample uint64
		unit   int
	}
	var picks []pick
	seen := make([]int, len(ids))
	for _, s := range gt {
		if s.Unit == 0 {
			continue
		}
		u := index[s.Unit]
		if channel[u] < 0 || s.Channel != channel[u] {
			continue
		}
		k := seen[u]
		seen[u]++
		if k%max(1, count[u]/opts.MaxSpikes) == 0 {
			picks = append(picks, pick{s.Sample, u})
		}
	}
	slices.SortFunc(picks, func(a, b pick) int {
		switch {
		case a.sample < b.sample:
			return -1
		case a.sample > b.sample:
			return 1
		}
		return 0
	})

	var (
		secs     []dsp.Section
		nch      int
		rate     float64
		half     int         // window half-width, samples
		state    [][]float64 // per channel, 2 per section
		ring     [][]float32 // per channel
		mask     uint64
		noiseBuf [][]float32
		sum      [][]float64 // per unit, 2*half+1
		got      []int
		next     int
		t        uint64 // device sample index of the next sample
		started  bool
	)
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !started {
			started = true
			nch, rate, t = b.Channels, b.Rate, b.First
			high := math.Min(opts.High, 0.45*rate)
			if secs, err = dsp.Butterworth(opts.Order, opts.Low, high, rate); err != nil {
				return nil, fmt.Errorf("score: %w", err)
			}
			half = max(1, int(math.Round(opts.Window/1000*rate)))
			ringLen := 1
			for ringLen < 4*half+4096 {
				ringLen <<= 1
			}
			mask = uint64(ringLen - 1)
			state = make([][]float64, nch)
			ring = make([][]float32, nch)
			noiseBuf = make([][]float32, nch)
			for c := range nch {
				state[c] = make([]float64, 2*len(secs))
				ring[c] = make([]float32, ringLen)
			}
			sum = make([][]float64, len(ids))
			for u := range sum {
				sum[u] = make([]float64, 2*half+1)
			}
			got = make([]int, len(ids))
			// Spikes before the first sample cannot be measured.
			for next < len(picks) && picks[next].sample < t+uint64(half) {
				next++
			}
		}
		if b.Channels != nch || b.Rate != rate {
			return nil, fmt.Errorf("score: block at sample %d has %d channels at %g Hz, stream started with %d at %g", b.First, b.Channels, b.Rate, nch, rate)
		}
		if b.First != t {
			return nil, fmt.Errorf("score: gap in the recording at sample %d (expected %d)", b.First, t)
		}
		// Filter channel by channel (state in registers) into the ring, in
		// chunks the ring holds with a window to spare.
		chunk := len(ring[0]) - 2*half - 2
		for off := 0; off < b.Len(); off += chunk {
			n := min(chunk, b.Len()-off)
			in := b.Samples[off*nch : (off+n)*nch]
			for c := range nch {
				r := ring[c]
				st := state[c]
				for k := range n {
					r[(t+uint64(k))&mask] = float32(float64(in[k*nch+c]) * b.Gain)
				}
				for si, sec := range secs {
					z1, z2 := st[2*si], st[2*si+1]
					for k := range n {
						i := (t + uint64(k)) & mask
						x := float64(r[i])
						y := sec.B0*x + z1
						z1 = sec.B1*x - sec.A1*y + z2
						z2 = sec.B2*x - sec.A2*y
						r[i] = float32(y)
					}
					st[2*si], st[2*si+1] = z1, z2
				}
				for k := range n {
					if (t+uint64(k))%noiseStride == 0 && len(noiseBuf[c]) < opts.NoiseSamples {
						noiseBuf[c] = append(noiseBuf[c], float32(math.Abs(float64(r[(t+uint64(k))&mask]))))
					}
				}
			}
			t += uint64(n)
			// Add every pick whose window is complete.
			for next < len(picks) && picks[next].sample+uint64(half) < t {
				p := picks[next]
				next++
				c := int(channel[p.unit])
				if c >= nch || t-(p.sample-uint64(half)) > uint64(len(ring[c])) {
					continue
				}
				s := sum[p.unit]
				for i := range s {
					s[i] += float64(ring[c][(p.sample-uint64(half)+uint64(i))&mask])
				}
				got[p.unit]++
			}
		}
	}
	out := map[int32]float64{}
	if !started {
		return out, nil
	}
	noise := make([]float64, nch)
	for c, buf := range noiseBuf {
		if len(buf) == 0 {
			continue
		}
		slices.Sort(buf)
		noise[c] = float64(buf[len(buf)/2]) / 0.6745
	}
	for u, id := range ids {
		c := channel[u]
		if c < 0 || int(c) >= nch || got[u] == 0 || noise[c] == 0 {
			continue
		}
		var peak float64
		for _, v := range sum[u] {
			peak = math.Max(peak, math.Abs(v/float64(got[u])))
		}
		out[id] = peak / noise[c]
	}
	return out, nil
}
