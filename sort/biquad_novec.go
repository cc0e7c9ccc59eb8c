//go:build !(goexperiment.simd && amd64)

package sort

// Without GOEXPERIMENT=simd on amd64 the scalar loops do all the work;
// these fallbacks do none of it (they report zero channels done).

const useSIMD = false

// SIMD reports whether this build filters and detects with AVX2 vectors.
func SIMD() bool { return false }

func (f *Filter) rowInt16Vec(in []int16, gain float32, out []float32) int { return 0 }

func (f *Filter) rowVec(x []float32) int { return 0 }

func belowMask(row, lim []float32, c int) uint8 { return 0 }

func aboveMask(row, lim []float32, c int) uint8 { return 0 }
