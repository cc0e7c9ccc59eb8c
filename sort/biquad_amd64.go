//go:build amd64

package sort

import "golang.org/x/sys/cpu"

// useAVX2 reports whether the assembly kernels (biquad_amd64.s) run: on
// an amd64 CPU with AVX2, in the default build and with GOEXPERIMENT=simd
// alike (the assembly filter is faster than the simd/archsimd one, and
// both are bit-identical to the scalar loop). It is a variable so tests
// can compare it with the scalar loops.
var useAVX2 = cpu.X86.HasAVX2

// rowInt16AVX2 is implemented in biquad_amd64.s.
//
//go:noescape
func rowInt16AVX2(in *int16, out *float32, z *float32, sec *sec32, nsec, n8, stride int, gain float32)

// rowInt16Asm filters the first multiple of eight channels of one time
// step with the AVX2 kernel and returns how many channels it did.
func (f *Filter) rowInt16Asm(in []int16, gain float32, out []float32) int {
	n := f.channels
	n8 := n &^ 7
	if !useAVX2 || n8 == 0 || len(f.sec) == 0 || len(in) < n || len(out) < n || len(f.z) < 2*len(f.sec)*n {
		return 0
	}
	rowInt16AVX2(&in[0], &out[0], &f.z[0], &f.sec[0], len(f.sec), n8, 4*n, gain)
	return n8
}

// belowMask64 returns bit i set when row[i] < lim[i], for the 64 channels
// from row and lim (biquad_amd64.s).
//
//go:noescape
func belowMask64(row, lim *float32) uint64

// aboveMask64 returns bit i set when row[i] > lim[i], for 64 channels.
//
//go:noescape
func aboveMask64(row, lim *float32) uint64
