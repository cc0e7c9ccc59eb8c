package device

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestInt16Kernels checks the optimised sample conversions against their
// scalar references for every length up to 67 and every alignment.
func TestInt16Kernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for n := range 68 {
		for off := range 3 {
			src := make([]int16, n)
			for i := range src {
				src[i] = int16(rng.IntN(1 << 16))
			}
			src = append(src, -32768, 32767, -1, 0)[:n]
			p, pRef := make([]byte, off+2*n), make([]byte, off+2*n)
			encodeInt16(p[off:], src)
			encodeInt16Ref(pRef[off:], src)
			if !slices.Equal(p, pRef) {
				t.Fatalf("encode n=%d off=%d differs", n, off)
			}
			s, sRef := make([]int16, n), make([]int16, n)
			decodeInt16(s, p[off:])
			decodeInt16Ref(sRef, p[off:])
			if !slices.Equal(s, sRef) || !slices.Equal(s, src) {
				t.Fatalf("decode n=%d off=%d differs", n, off)
			}
		}
	}
}

func BenchmarkInt16(b *testing.B) {
	s := make([]int16, 2048)
	p := make([]byte, 2*len(s))
	for _, k := range []struct {
		name string
		f    func()
	}{
		{"decode", func() { decodeInt16(s, p) }},
		{"decodeRef", func() { decodeInt16Ref(s, p) }},
		{"encode", func() { encodeInt16(p, s) }},
		{"encodeRef", func() { encodeInt16Ref(p, s) }},
	} {
		b.Run(k.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for i := 0; i < b.N; i++ {
				k.f()
			}
		})
	}
}
