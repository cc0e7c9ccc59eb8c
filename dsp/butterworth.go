package dsp

import (
	"fmt"
	"math"
	"math/cmplx"
	"slices"
)

// Section is one second-order section (biquad) of an IIR filter:
//
//	H(z) = (B0 + B1 z⁻¹ + B2 z⁻²) / (1 + A1 z⁻¹ + A2 z⁻²)
//
// in the row layout of scipy's sos arrays [b0 b1 b2 1 a1 a2].
type Section struct {
	B0, B1, B2 float64
	A1, A2     float64
}

// Butterworth designs a digital Butterworth band-pass filter of the given
// order (of the low-pass prototype, so the band-pass has 2·order poles)
// between low and high Hz at sample rate rate, as second-order sections.
//
// It follows scipy.signal.butter(order, [low, high], btype="band",
// output="sos", fs=rate) step by step: analog prototype poles, band-pass
// transform, bilinear transform with prewarping, and zpk2sos with
// "nearest" pairing, so the sections match scipy's to rounding.
func Butterworth(order int, low, high, rate float64) ([]Section, error) {
	if order < 1 || order > 20 {
		return nil, fmt.Errorf("dsp: Butterworth order %d (want 1–20)", order)
	}
	nyq := rate / 2
	if !(low > 0 && high > low && high < nyq) {
		return nil, fmt.Errorf("dsp: Butterworth band %v–%v Hz at %v Hz: need 0 < low < high < Nyquist", low, high, rate)
	}
	// Prewarp (scipy: fs=2 after normalising by Nyquist).
	const fs = 2.0
	w1 := 2 * fs * math.Tan(math.Pi*(low/nyq)/fs)
	w2 := 2 * fs * math.Tan(math.Pi*(high/nyq)/fs)
	// buttap: poles on the left unit half circle.
	p := make([]complex128, order)
	for i := range p {
		m := float64(-order + 1 + 2*i)
		p[i] = -cmplx.Exp(complex(0, math.Pi*m/float64(2*order)))
	}
	k := 1.0
	// lp2bp_zpk.
	wo := math.Sqrt(w1 * w2)
	bw := w2 - w1
	pbp := make([]complex128, 0, 2*order)
	for _, pi := range p {
		pl := pi * complex(bw/2, 0)
		pbp = append(pbp, pl+cmplx.Sqrt(pl*pl-complex(wo*wo, 0)))
	}
	for _, pi := range p {
		pl := pi * complex(bw/2, 0)
		pbp = append(pbp, pl-cmplx.Sqrt(pl*pl-complex(wo*wo, 0)))
	}
	zbp := make([]complex128, order) // order zeros at s = 0
	k *= math.Pow(bw, float64(order))
	// bilinear_zpk with fs = 2.
	const fs2 = 2 * fs
	zz := make([]complex128, 0, 2*order)
	for _, z := range zbp {
		zz = append(zz, (fs2+z)/(fs2-z))
	}
	pz := make([]complex128, len(pbp))
	for i, pi := range pbp {
		pz[i] = (fs2 + pi) / (fs2 - pi)
	}
	for range len(pbp) - len(zbp) {
		zz = append(zz, -1)
	}
	num, den := complex(1, 0), complex(1, 0)
	for _, z := range zbp {
		num *= fs2 - z
	}
	for _, pi := range pbp {
		den *= fs2 - pi
	}
	k *= real(num / den)
	return zpk2sos(zz, pz, k), nil
}

// cplxreal splits z into one of each complex-conjugate pair (positive
// imaginary part) and the real values, each sorted as scipy's _cplxreal.
func cplxreal(z []complex128) []complex128 {
	const tol = 100 * 2.220446049250313e-16
	z = slices.Clone(z)
	slices.SortStableFunc(z, func(a, b complex128) int {
		if real(a) != real(b) {
			if real(a) < real(b) {
				return -1
			}
			return 1
		}
		ia, ib := math.Abs(imag(a)), math.Abs(imag(b))
		if ia < ib {
			return -1
		}
		if ia > ib {
			return 1
		}
		return 0
	})
	var zr, zc []complex128
	for _, v := range z {
		if math.Abs(imag(v)) <= tol*cmplx.Abs(v) {
			zr = append(zr, complex(real(v), 0))
		} else if imag(v) > 0 {
			zc = append(zc, v)
		}
	}
	return append(zc, zr...)
}

func isReal(v complex128) bool { return imag(v) == 0 }

// nearestIdx returns the index in fro of the value nearest to to, among
// real values only when realOnly.
func nearestIdx(fro []complex128, to complex128, realOnly bool) int {
	best, bi := math.Inf(1), -1
	for i, v := range fro {
		if realOnly && !isReal(v) {
			continue
		}
		if d := cmplx.Abs(v - to); d < best {
			best, bi = d, i
		}
	}
	return bi
}

func remove(s []complex128, i int) []complex128 { return append(s[:i:i], s[i+1:]...) }

// zpk2sos converts zeros, poles and gain to sections with scipy's
// "nearest" pairing: the pole nearest the unit circle first, paired with
// its nearest zeros, and the sections emitted in reverse order.
func zpk2sos(z, p []complex128, k float64) []Section {
	n := (max(len(p), len(z)) + 1) / 2
	if len(p)%2 == 1 {
		p = append(slices.Clone(p), 0)
		z = append(slices.Clone(z), 0)
	}
	z = cplxreal(z)
	p = cplxreal(p)
	type pair struct{ z1, z2, p1, p2 complex128 }
	secs := make([]pair, 0, n)
	countReal := func(s []complex128) int {
		c := 0
		for _, v := range s {
			if isReal(v) {
				c++
			}
		}
		return c
	}
	for range n {
		pi := 0
		for i := range p {
			if math.Abs(1-cmplx.Abs(p[i])) < math.Abs(1-cmplx.Abs(p[pi])) {
				pi = i
			}
		}
		p1 := p[pi]
		p = remove(p, pi)
		var p2, z1, z2 complex128
		switch {
		case isReal(p1) && countReal(p) == 0:
			// The last real pole: pair it with the nearest real zero.
			zi := nearestIdx(z, p1, true)
			if zi >= 0 {
				z1 = z[zi]
				z = remove(z, zi)
			}
		case len(p)+1 == len(z) && !isReal(p1) && countReal(p) == 1 && countReal(z) == 1:
			// A complex pole with a lone real pole and zero left: use a
			// complex zero so the real pair stays together.
			zi, best := -1, math.Inf(1)
			for i, v := range z {
				if !isReal(v) {
					if d := cmplx.Abs(v - p1); d < best {
						best, zi = d, i
					}
				}
			}
			z1 = z[zi]
			z = remove(z, zi)
			p2, z2 = cmplx.Conj(p1), cmplx.Conj(z1)
		default:
			if isReal(p1) {
				best, bi := math.Inf(1), -1
				for i, v := range p {
					if isReal(v) {
						if d := math.Abs(cmplx.Abs(v) - 1); d < best {
							best, bi = d, i
						}
					}
				}
				p2 = p[bi]
				p = remove(p, bi)
			} else {
				p2 = cmplx.Conj(p1)
			}
			if len(z) > 0 {
				zi := nearestIdx(z, p1, false)
				z1 = z[zi]
				z = remove(z, zi)
				if !isReal(z1) {
					z2 = cmplx.Conj(z1)
				} else if len(z) > 0 {
					zi := nearestIdx(z, p1, true)
					z2 = z[zi]
					z = remove(z, zi)
				}
			}
		}
		secs = append(secs, pair{z1, z2, p1, p2})
	}
	slices.Reverse(secs)
	out := make([]Section, n)
	for i, s := range secs {
		g := 1.0
		if i == 0 {
			g = k
		}
		// (+ 0 turns a negative zero into zero, as numpy prints it.)
		out[i] = Section{
			B0: g,
			B1: -g*real(s.z1+s.z2) + 0,
			B2: g*real(s.z1*s.z2) + 0,
			A1: -real(s.p1+s.p2) + 0,
			A2: real(s.p1*s.p2) + 0,
		}
	}
	return out
}

// Response returns the complex frequency response of the cascade at f Hz.
func Response(sections []Section, f, rate float64) complex128 {
	z1 := cmplx.Exp(complex(0, -2*math.Pi*f/rate))
	z2 := z1 * z1
	h := complex(1, 0)
	for _, s := range sections {
		h *= (complex(s.B0, 0) + complex(s.B1, 0)*z1 + complex(s.B2, 0)*z2) /
			(1 + complex(s.A1, 0)*z1 + complex(s.A2, 0)*z2)
	}
	return h
}
