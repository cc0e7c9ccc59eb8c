//go:build !amd64

package sort

// Other architectures have no assembly kernels: the scalar loops do the
// work.

var useAVX2 = false

func (f *Filter) rowInt16Asm(in []int16, gain float32, out []float32) int { return 0 }

func belowMask64(row, lim *float32) uint64 { return 0 }

func aboveMask64(row, lim *float32) uint64 { return 0 }
