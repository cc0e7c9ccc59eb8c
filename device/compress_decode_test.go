package device

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkFastMatchesRef decodes payload p as channels × n samples by both
// decoders: where the fast path succeeds, the reference must succeed with
// the same samples; where it declines, decompress must return what the
// reference returns.
func checkFastMatchesRef(t *testing.T, p []byte, channels, n int) (fast bool) {
	t.Helper()
	var sc decodeScratch
	got := make([]int16, channels*n)
	want := make([]int16, channels*n)
	errRef := decompressRef(want, p, channels, n, make([]int32, n))
	fast = decompressFast(got, p, channels, n, &sc)
	if fast {
		if errRef != nil {
			t.Fatalf("%d x %d: fast path decoded a frame the reference rejects: %v", channels, n, errRef)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%d x %d: fast path and reference differ", channels, n)
		}
	}
	err := decompress(got, p, channels, n, &sc)
	if (err == nil) != (errRef == nil) || (err != nil && err.Error() != errRef.Error()) {
		t.Fatalf("%d x %d: decompress: %v, reference: %v", channels, n, err, errRef)
	}
	if err == nil && !slices.Equal(got, want) {
		t.Fatalf("%d x %d: decompress and reference differ", channels, n)
	}
	return fast
}

// TestDecompressFastMatchesRef checks the fast decoder against the
// reference on frames of every predictor, order and shape, with and
// without rails (clamped predictions, escapes), and on damaged copies.
func TestDecompressFastMatchesRef(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	fastFrames, frames := 0, 0
	for _, shape := range []struct{ channels, n int }{{1, 1}, {1, 7}, {3, 5}, {5, 40}, {32, 30}, {16, 240}, {300, 10}, {2, 2000}} {
		for order := -1; order <= maxLPCOrder; order++ {
			for _, extreme := range []bool{false, true} {
				c := NewCompressor(CompressConfig{Order: order})
				for f := range 6 {
					s := testSignal(rng, shape.channels, shape.n, extreme)
					if f == 4 {
						for i := range s {
							s[i] = int16(rng.Uint32())
						}
					}
					frame := c.AppendCompressed(nil, 0, 30000, 0.195, shape.channels, s, 0)
					p := frame[HeaderSize : len(frame)-TrailerSize]
					frames++
					if checkFastMatchesRef(t, p, shape.channels, shape.n) {
						fastFrames++
					} else if !extreme && f != 4 {
						t.Errorf("%d x %d order %d frame %d: a well-formed frame took the slow path", shape.channels, shape.n, order, f)
					}
					for range 20 {
						b := bytes.Clone(p)
						b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
						if rng.IntN(3) == 0 {
							b = b[:rng.IntN(len(b))]
						}
						checkFastMatchesRef(t, b, shape.channels, shape.n)
					}
				}
			}
		}
	}
	t.Logf("%d of %d good frames decoded by the fast path", fastFrames, frames)
}

// FuzzDecompressFast: on arbitrary payloads the fast decoder never
// decodes what the reference does not, or differently.
func FuzzDecompressFast(f *testing.F) {
	c := NewCompressor(CompressConfig{})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3 {
		frame := c.AppendCompressed(nil, 0, 30000, 0.195, 4, testSignal(rng, 4, 20, i == 2), 0)
		f.Add(uint16(4), uint16(20), frame[HeaderSize:len(frame)-TrailerSize])
	}
	f.Add(uint16(2), uint16(8), []byte{2, 4, 14, 1, 0, 2, 0, 3, 0, 4, 0, 0xff, 0xff, 0, 1})
	f.Fuzz(func(t *testing.T, ch, n uint16, payload []byte) {
		checkFastMatchesRef(t, payload, int(ch%64)+1, int(n%300)+1)
	})
}
