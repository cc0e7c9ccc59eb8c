//go:build goexperiment.simd && amd64

package sort

import "simd/archsimd"

// The vector kernels: built with GOEXPERIMENT=simd on amd64 and used when
// the CPU has AVX2. They run eight channels per instruction and, using
// separate multiplies and adds in the scalar order (no FMA), give results
// bit-identical to the scalar reference loops in biquad.go and shard.go.

// useSIMD reports whether the vector kernels run.
var useSIMD = archsimd.X86.AVX2()

// SIMD reports whether this build filters and detects with AVX2 vectors.
func SIMD() bool { return useSIMD }

// rowInt16Vec filters the first multiple of eight channels of one time
// step, all sections fused so each sample stays in a register, and
// returns how many channels it did.
func (f *Filter) rowInt16Vec(in []int16, gain float32, out []float32) int {
	n := len(out) &^ 7
	if n == 0 || len(f.sec) == 0 {
		return 0
	}
	in = in[:len(out)]
	g := archsimd.BroadcastFloat32x8(gain)
	for c := 0; c < n; c += 8 {
		x := archsimd.LoadInt16x8Slice(in[c : c+8]).ExtendToInt32().ConvertToFloat32().Mul(g)
		x = f.sectionsVec(x, c)
		x.StoreSlice(out[c : c+8])
	}
	return n
}

// rowVec filters the first multiple of eight channels of x in place.
func (f *Filter) rowVec(x []float32) int {
	n := len(x) &^ 7
	if n == 0 || len(f.sec) == 0 {
		return 0
	}
	for c := 0; c < n; c += 8 {
		v := archsimd.LoadFloat32x8Slice(x[c : c+8])
		f.sectionsVec(v, c).StoreSlice(x[c : c+8])
	}
	return n
}

// sectionsVec runs every section over channels c..c+7.
func (f *Filter) sectionsVec(x archsimd.Float32x8, c int) archsimd.Float32x8 {
	n := f.channels
	for k := range f.sec {
		s := &f.sec[k]
		z1 := f.z[(2*k)*n+c : (2*k)*n+c+8]
		z2 := f.z[(2*k+1)*n+c : (2*k+1)*n+c+8]
		z1v := archsimd.LoadFloat32x8Slice(z1)
		z2v := archsimd.LoadFloat32x8Slice(z2)
		b0 := archsimd.BroadcastFloat32x8(s.b0)
		b1 := archsimd.BroadcastFloat32x8(s.b1)
		b2 := archsimd.BroadcastFloat32x8(s.b2)
		a1 := archsimd.BroadcastFloat32x8(s.a1)
		a2 := archsimd.BroadcastFloat32x8(s.a2)
		y := b0.Mul(x).Add(z1v)
		b1.Mul(x).Sub(a1.Mul(y)).Add(z2v).StoreSlice(z1)
		b2.Mul(x).Sub(a2.Mul(y)).StoreSlice(z2)
		x = y
	}
	return x
}

// belowMask returns a bit per channel c..c+7 whose value in row is below
// lim (bit i for channel c+i).
func belowMask(row, lim []float32, c int) uint8 {
	return archsimd.LoadFloat32x8Slice(row[c : c+8]).Less(archsimd.LoadFloat32x8Slice(lim[c : c+8])).ToBits()
}

// aboveMask returns a bit per channel c..c+7 whose value in row is above
// lim.
func aboveMask(row, lim []float32, c int) uint8 {
	return archsimd.LoadFloat32x8Slice(row[c : c+8]).Greater(archsimd.LoadFloat32x8Slice(lim[c : c+8])).ToBits()
}
