package sort

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAutocovMatchesLoop: autocov's four lags at a time give the sums of
// the plain loop, lag by lag over ascending t, bit for bit (learning's
// templates must not change with it), for every length from 1 to 139 and
// values over many orders of magnitude.
func TestAutocovMatchesLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for dim := 1; dim < 140; dim++ {
		for range 20 {
			x := make([]float64, dim)
			for i := range x {
				x[i] = rng.NormFloat64() * math.Exp(3*rng.NormFloat64())
			}
			got := make([]float64, dim)
			want := make([]float64, dim)
			for i := range got {
				got[i] = rng.NormFloat64()
				want[i] = got[i]
			}
			autocov(got, x)
			for lag := range dim {
				var s float64
				for u := lag; u < dim; u++ {
					s += x[u] * x[u-lag]
				}
				want[lag] += s
			}
			for i := range got {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Fatalf("length %d, lag %d: %v, want %v", dim, i, got[i], want[i])
				}
			}
		}
	}
}
