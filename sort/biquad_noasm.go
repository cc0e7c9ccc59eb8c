//go:build !amd64 || goexperiment.simd

package sort

// Without the assembly kernel (other architectures, or a
// GOEXPERIMENT=simd build, which has its own vector kernels) the scalar
// loop and the simd/archsimd kernels do the work.

var useAVX2 = false

func (f *Filter) rowInt16Asm(in []int16, gain float32, out []float32) int { return 0 }

func belowMask64(row, lim *float32) uint64 { return 0 }

func aboveMask64(row, lim *float32) uint64 { return 0 }
