package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestLayoutStructureFunction checks the FFT computation against the sum.
func TestLayoutStructureFunction(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, 1000)
	for i := range x {
		x[i] = rng.NormFloat64()*10 + float64(i%7)
	}
	d, _ := structureFunction(x, 20)
	for p := 1; p <= 20; p++ {
		var s float64
		for i := 0; i+p < len(x); i++ {
			s += (x[i+p] - x[i]) * (x[i+p] - x[i])
		}
		if want := s / float64(len(x)-p); math.Abs(d[p]-want) > 1e-9*want {
			t.Fatalf("D(%d) = %g, want %g", p, d[p], want)
		}
	}
}

// TestLayoutCheck: a channel count the samples contradict is refused;
// the right one, and data without structure, pass.
func TestLayoutCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	raw := func(ch, n int, gen func(i, c int) float64) []byte {
		b := make([]byte, 2*ch*n)
		for i := range n {
			for c := range ch {
				binary.LittleEndian.PutUint16(b[2*(i*ch+c):], uint16(int16(gen(i, c))))
			}
		}
		return b
	}
	// 16 channels: a per-channel offset, a slow common wave, noise.
	offs := make([]float64, 16)
	for c := range offs {
		offs[c] = rng.NormFloat64() * 300
	}
	neural := raw(16, 30000, func(i, c int) float64 {
		return offs[c] + 100*math.Sin(float64(i)/300) + rng.NormFloat64()*20
	})
	white := raw(16, 30000, func(i, c int) float64 { return rng.NormFloat64() * 500 })
	for _, c := range []struct {
		data   []byte
		claim  int
		refuse bool
	}{
		{neural, 16, false}, {neural, 3, true}, {neural, 15, true}, {neural, 8, true}, {neural, 1, true},
		{white, 16, false}, {white, 3, false}, {make([]byte, len(white)), 3, false},
	} {
		err := checkLayout(bytes.NewReader(c.data), "x.dat", 0, int64(len(c.data)), c.claim)
		if c.refuse != (err != nil) || (err != nil && !errors.Is(err, ErrLayout)) {
			t.Errorf("%d channels claimed: %v, want refused %v", c.claim, err, c.refuse)
		}
	}
}
