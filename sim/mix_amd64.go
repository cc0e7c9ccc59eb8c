//go:build !purego

package sim

// haveMix4x8 says whether mix4 may use the SSE2 kernel mix4x8.
const haveMix4x8 = true

// mix4x8 is the SSE2 form of mix4's unsaturated loop over four channels
// sharing one slow signal, for samples i in [from/2, to/2) (to−from a
// multiple of 16), out pointing at sample from/2's row:
//
//	for i := from / 2; i < to/2; i++ {
//		for k := range 4 {
//			out[(i-from/2)*stride/2+k] = int16(a[k][i] + b[k][i] + slow[i] + dc[8*k])
//		}
//	}
//
// with 16-bit wrapping arithmetic (exact when the caller guarantees the sum
// fits in int16). stride is the distance in bytes between samples of out;
// dc holds each channel's DC offset repeated in 8 lanes.
//
//go:noescape
func mix4x8(out *int16, stride int, a, b *[4]*int16, slow *int32, dc *[32]int16, from, to int)

// mixRows8 is mix4x8 with the loops swapped: samples i0 … i0+7 (i0 =
// from/2) of each of the nq quads in order, out pointing at sample i0's
// row (quads[k].c0 gives each quad's column):
//
//	for _, q := range quads[:nq] {
//		mix4x8(out+2*q.c0, stride, &q.a, &q.b, q.slow, &q.dc, from, from+16)
//	}
//
//go:noescape
func mixRows8(out *int16, stride int, quads *kernelQuad, nq int, from int)
