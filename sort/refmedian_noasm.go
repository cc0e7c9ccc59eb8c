//go:build !amd64

package sort

// Without the assembly kernels (useAVX2 is false) these are never called:
// the common median reference runs the scalar loops of refmedian.go.

func countBelow8(x *float32, n8 int, thr *float32, acc *int32, dst *float32) int { return 0 }

func collectRange(x *float32, n8 int, lo, hi float32, dst *float32) int { return 0 }

func subMedianOdd(row *float32, n8 int, mid, below, above, at float32) {}

func subMedianEven(row *float32, n8 int, lo, mid float32) {}
