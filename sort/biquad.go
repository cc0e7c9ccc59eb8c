package sort

import "github.com/spikeline/spikeline/dsp"

// This file holds the filter's hot loop: a cascade of biquads (transposed
// direct form II) in float32, run over time-major rows with the channel
// loop inside the time loop so that each section's coefficients stay in
// registers and each channel's state sits next to its neighbours'.

// Filter is a causal multichannel IIR filter made of second-order
// sections, with float32 state per channel and section. It runs over
// time-major (interleaved) samples. The zero value is not usable; use
// NewFilter.
type Filter struct {
	sec      []sec32
	channels int
	// z holds the state: section k's first delay for channel c at
	// z[(2k)*channels+c], its second at z[(2k+1)*channels+c].
	z []float32
}

type sec32 struct{ b0, b1, b2, a1, a2 float32 }

// NewFilter returns a filter running sections over channels channels,
// with zero state.
func NewFilter(sections []dsp.Section, channels int) *Filter {
	f := &Filter{channels: channels, z: make([]float32, 2*len(sections)*channels)}
	for _, s := range sections {
		f.sec = append(f.sec, sec32{float32(s.B0), float32(s.B1), float32(s.B2), float32(s.A1), float32(s.A2)})
	}
	return f
}

// Channels returns the number of channels the filter runs over.
func (f *Filter) Channels() int { return f.channels }

// Settle sets channel c's state to the steady state for a constant input
// x0, so a recording that starts at a DC offset does not ring (scipy's
// sosfilt_zi scaled by x0).
func (f *Filter) Settle(c int, x0 float32) {
	n := f.channels
	x := float64(x0)
	for k, s := range f.sec {
		b0, b1, b2, a1, a2 := float64(s.b0), float64(s.b1), float64(s.b2), float64(s.a1), float64(s.a2)
		y := x * (b0 + b1 + b2) / (1 + a1 + a2)
		f.z[(2*k)*n+c] = float32(y - b0*x)
		f.z[(2*k+1)*n+c] = float32(b2*x - a2*y)
		x = y
	}
}

// Reset zeroes every channel's state.
func (f *Filter) Reset() { clear(f.z) }

// Process filters x in place. x is time-major: sample t of channel c is
// x[t*Channels()+c]; len(x) must be a multiple of Channels().
//
// Reference loop, per sample t, channel c and section k:
//
//	y = b0*x + z1;  z1 = b1*x - a1*y + z2;  z2 = b2*x - a2*y;  x = y
func (f *Filter) Process(x []float32) {
	n := f.channels
	for off := 0; off+n <= len(x); off += n {
		f.row(x[off : off+n])
	}
}

// ProcessInt16 filters one or more time-major rows of int16 counts,
// scaled by gain, into out (same length as in).
func (f *Filter) ProcessInt16(in []int16, gain float32, out []float32) {
	n := f.channels
	for off := 0; off+n <= len(in); off += n {
		f.rowInt16(in[off:off+n], gain, out[off:off+n])
	}
}

// rowInt16 converts one time step of counts to µV and filters it into out.
func (f *Filter) rowInt16(in []int16, gain float32, out []float32) {
	done := 0
	if useAVX2 {
		done = f.rowInt16Asm(in, gain, out)
	} else if useSIMD {
		done = f.rowInt16Vec(in, gain, out)
	}
	if done == len(out) {
		return
	}
	if len(f.sec) == 3 {
		f.rowInt16Three(in, gain, out, done)
		return
	}
	n := len(out)
	in = in[:n]
	for c := done; c < n; c++ {
		out[c] = float32(in[c]) * gain
	}
	f.sections(out, done)
}

// rowInt16Three is rowInt16's scalar loop for the default cascade of three
// sections: conversion and all three sections fused per channel, so the
// sample stays in a register and the coefficients in locals. It computes
// exactly what the conversion loop followed by sections does (the same
// operations in the same order, no fused multiply-add), channel by
// channel from c0.
func (f *Filter) rowInt16Three(in []int16, gain float32, out []float32, c0 int) {
	n := f.channels
	out = out[:n]
	in = in[:n]
	z := f.z[:6*n]
	z10, z20 := z[0*n:1*n], z[1*n:2*n]
	z11, z21 := z[2*n:3*n], z[3*n:4*n]
	z12, z22 := z[4*n:5*n], z[5*n:6*n]
	s0, s1, s2 := f.sec[0], f.sec[1], f.sec[2]
	for c := c0; c < n; c++ {
		v := float32(in[c]) * gain
		y := s0.b0*v + z10[c]
		z10[c] = s0.b1*v - s0.a1*y + z20[c]
		z20[c] = s0.b2*v - s0.a2*y
		v = y
		y = s1.b0*v + z11[c]
		z11[c] = s1.b1*v - s1.a1*y + z21[c]
		z21[c] = s1.b2*v - s1.a2*y
		v = y
		y = s2.b0*v + z12[c]
		z12[c] = s2.b1*v - s2.a1*y + z22[c]
		z22[c] = s2.b2*v - s2.a2*y
		out[c] = y
	}
}

// row filters one time step of all channels in place.
func (f *Filter) row(x []float32) {
	done := 0
	if useSIMD {
		done = f.rowVec(x)
	}
	if done < len(x) {
		f.sections(x, done)
	}
}

// sections runs every section over channels c0.. of one time step in
// place: the scalar reference loop.
func (f *Filter) sections(x []float32, c0 int) {
	n := f.channels
	x = x[:n]
	for k := range f.sec {
		s := f.sec[k]
		z1 := f.z[(2*k)*n : (2*k+1)*n]
		z2 := f.z[(2*k+1)*n : (2*k+2)*n]
		for c := c0; c < n; c++ {
			v := x[c]
			y := s.b0*v + z1[c]
			z1[c] = s.b1*v - s.a1*y + z2[c]
			z2[c] = s.b2*v - s.a2*y
			x[c] = y
		}
	}
}
