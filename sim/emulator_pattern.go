package sim

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/spikeline/spikeline/device"
)

// TestPattern is a device.Source of a test pattern, like the ramp a
// headstage sends in test mode: sample t of channel c is
// PatternValue(t, c), so a host can check every sample it receives, and
// where it belongs, without knowing what was sent. It implements
// RateSetter. The zero value is not usable: set Channels and Rate.
type TestPattern struct {
	Channels     int     // channels per sample (> 0)
	Rate         float64 // sample rate, Hz (> 0)
	Gain         float64 // µV per count (default 0.195, an Intan RHD's)
	BlockSamples int     // samples per channel per Block (default 256)
	Samples      uint64  // samples per channel before io.EOF (0: endless)

	next uint64
	buf  []int16
}

// PatternValue is the test pattern's count for sample t of channel c: a
// mix of both that changes with every sample and every channel.
func PatternValue(t uint64, c int) int16 {
	x := t*0x9E3779B1 + uint64(c)*0x85EBCA77
	x ^= x >> 15
	return int16(uint16(x))
}

// Next returns the next Block of the pattern. Samples are reused by the
// next call.
func (p *TestPattern) Next(ctx context.Context) (device.Block, error) {
	if err := ctx.Err(); err != nil {
		return device.Block{}, err
	}
	if p.Channels <= 0 || p.Rate <= 0 {
		return device.Block{}, fmt.Errorf("sim: test pattern with %d channels at %g Hz", p.Channels, p.Rate)
	}
	n := p.BlockSamples
	if n <= 0 {
		n = 256
	}
	if p.Samples > 0 {
		if p.next >= p.Samples {
			return device.Block{}, io.EOF
		}
		n = int(min(uint64(n), p.Samples-p.next))
	}
	if cap(p.buf) < n*p.Channels {
		p.buf = make([]int16, n*p.Channels)
	}
	s := p.buf[:n*p.Channels]
	for t := range n {
		row := s[t*p.Channels : (t+1)*p.Channels]
		for c := range row {
			row[c] = PatternValue(p.next+uint64(t), c)
		}
	}
	gain := p.Gain
	if gain == 0 {
		gain = 0.195
	}
	b := device.Block{First: p.next, Rate: p.Rate, Channels: p.Channels, Gain: gain, Samples: s}
	p.next += uint64(n)
	return b, nil
}

// SetRate changes the sample rate from the next Block on.
func (p *TestPattern) SetRate(hz float64) error {
	if hz <= 0 || math.IsNaN(hz) || math.IsInf(hz, 0) || hz > 1e6 {
		return fmt.Errorf("sim: sample rate %g Hz out of range (0, 1 MHz]", hz)
	}
	p.Rate = hz
	return nil
}
