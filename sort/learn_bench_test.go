package sort

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// learnBenchJob returns one channel's learning input as a 30 kHz sorter
// with the default settings collects it: n snippets (dfull samples, µV)
// of three units with amplitude and timing jitter in noise of σ = 10 µV,
// plus a quarter of pure-noise crossings.
func learnBenchJob(n int) (learnJob, learnParams) {
	const rate = 30000.0
	pre, post, tail := ms(0.5, rate), ms(1, rate), ms(1.5, rate)
	d := pre + post + 1
	p := learnParams{d: d, dfull: d + tail, pre: pre, post: post, tail: tail,
		maxUnits: 4, minSpikes: 10, sign: Negative, threshold: 4, burstGap: ms(burstGapMs, rate)}
	rng := rand.New(rand.NewPCG(7, 11))
	shape := func(t, amp, width float64) float64 { // a trough at 0, a slower rebound
		return -amp*math.Exp(-t*t/(2*width*width)) + 0.35*amp*math.Exp(-(t-4*width)*(t-4*width)/(8*width*width))
	}
	units := [][2]float64{{120, 3}, {80, 5}, {60, 2.2}}
	j := learnJob{sigma: 10, w: make([]float32, n*p.dfull)}
	var tau uint64
	for i := range n {
		u := i % 4
		tau += uint64(300 + rng.IntN(3000))
		j.tau = append(j.tau, tau)
		j.gap = append(j.gap, 1000)
		w := j.w[i*p.dfull : (i+1)*p.dfull]
		a := 1 + 0.1*rng.NormFloat64()
		dt := rng.Float64() - 0.5
		for t := range w {
			v := 10 * rng.NormFloat64()
			if u < 3 {
				v += a * shape(float64(t-pre)+dt, units[u][0], units[u][1])
			}
			w[t] = float32(v)
		}
		j.prev = append(j.prev, -w[pre])
	}
	return j, p
}

// BenchmarkLearnChannel times learning one channel's templates from n
// snippets (learnChannel: alignment, PCA, k-means, whitening, the
// ISO-SPLIT-like merging and the templates), on one core.
func BenchmarkLearnChannel(b *testing.B) {
	for _, n := range []int{200, 1000, 3000} {
		b.Run(fmt.Sprintf("snippets=%d", n), func(b *testing.B) {
			j, p := learnBenchJob(n)
			var units int
			b.ReportAllocs()
			for b.Loop() {
				waves, _ := learnChannel(j, p)
				units = len(waves)
			}
			if units == 0 {
				b.Fatal("no unit learned")
			}
			b.ReportMetric(float64(units), "units")
		})
	}
}
