//go:build amd64

package sort

// The common median reference's AVX2 kernels (refmedian_amd64.s), used
// when useAVX2; refmedian.go holds the scalar loops they replace.

//go:noescape
func countBelow8(x *float32, n8 int, thr *float32, acc *int32, dst *float32) int

//go:noescape
func collectRange(x *float32, n8 int, lo, hi float32, dst *float32) int

//go:noescape
func subMedianOdd(row *float32, n8 int, mid, below, above, at float32)

//go:noescape
func subMedianEven(row *float32, n8 int, lo, mid float32)
