package sort

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/dsp"
)

// refFilterInt16 is the plain reference loop the optimised kernels must
// reproduce bit for bit: per time step t, channel c and section k, in
// float32 with separate multiplies and adds,
//
//	v = float32(in) * gain
//	y = b0*v + z1;  z1 = b1*v - a1*y + z2;  z2 = b2*v - a2*y;  v = y
//
// with its own state (z[c][k] = {z1, z2}), independent of Filter's layout.
func refFilterInt16(secs []dsp.Section, channels int, settle []float32, in []int16, gain float32) []float32 {
	type s32 struct{ b0, b1, b2, a1, a2 float32 }
	ss := make([]s32, len(secs))
	for k, s := range secs {
		ss[k] = s32{float32(s.B0), float32(s.B1), float32(s.B2), float32(s.A1), float32(s.A2)}
	}
	z := make([][][2]float32, channels)
	for c := range z {
		z[c] = make([][2]float32, len(secs))
		// Steady state for settle[c], as Filter.Settle computes it.
		x := float64(settle[c])
		for k, s := range ss {
			b0, b1, b2, a1, a2 := float64(s.b0), float64(s.b1), float64(s.b2), float64(s.a1), float64(s.a2)
			y := x * (b0 + b1 + b2) / (1 + a1 + a2)
			z[c][k] = [2]float32{float32(y - b0*x), float32(b2*x - a2*y)}
			x = y
		}
	}
	out := make([]float32, len(in))
	for t := 0; t+channels <= len(in); t += channels {
		for c := range channels {
			v := float32(in[t+c]) * gain
			for k, s := range ss {
				st := &z[c][k]
				y := s.b0*v + st[0]
				st[0] = s.b1*v - s.a1*y + st[1]
				st[1] = s.b2*v - s.a2*y
				v = y
			}
			out[t+c] = v
		}
	}
	return out
}

// TestFilterMatchesReferenceLoop: ProcessInt16 (whichever kernel this
// build and CPU run: AVX2 assembly, GOEXPERIMENT=simd vectors, the fused
// three-section loop or the general loop) equals the plain reference loop
// bit for bit, for every order, odd channel counts, settled state and
// input carried across calls of different lengths.
func TestFilterMatchesReferenceLoop(t *testing.T) {
	t.Logf("SIMD %v, AVX2 assembly %v", SIMD(), useAVX2)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, order := range []int{1, 2, 3, 4, 6} {
		secs, err := dsp.Butterworth(order, 250, 7000, 30000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range []int{1, 3, 8, 15, 16, 17, 40, 384} {
			for _, kernels := range []bool{true, false} {
				t.Run(fmt.Sprintf("order=%d/ch=%d/vector=%v", order, ch, kernels), func(t *testing.T) {
					if !kernels {
						// The scalar loops alone, as on a CPU without AVX2.
						defer func(a bool) { useAVX2 = a }(useAVX2)
						useAVX2 = false
					}
					rows := 700
					in := make([]int16, rows*ch)
					for i := range in {
						// Spikes, offsets and full-scale values.
						switch rng.IntN(50) {
						case 0:
							in[i] = int16(rng.IntN(65536) - 32768)
						default:
							in[i] = int16(rng.IntN(801) - 400 + 1000*(i%ch%3))
						}
					}
					gain := float32(0.195)
					settle := make([]float32, ch)
					f := NewFilter(secs, ch)
					for c := range ch {
						settle[c] = float32(in[c]) * gain
						f.Settle(c, settle[c])
					}
					want := refFilterInt16(secs, ch, settle, in, gain)
					got := make([]float32, len(in))
					for off, step := 0, 1; off < rows; off, step = off+step, step+7 {
						end := min(rows, off+step)
						f.ProcessInt16(in[off*ch:end*ch], gain, got[off*ch:end*ch])
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("row %d channel %d: filter %v, reference %v", i/ch, i%ch, got[i], want[i])
						}
					}
				})
			}
		}
	}
}

// TestSorterKernelsMatchScalar: the whole sorter gives the same spikes
// (sample, channel, unit, amplitude) with the assembly kernels (filter
// and the 64-channel threshold scan) as with the scalar loops, for every
// detection sign, at a channel count that leaves a remainder after the
// 64-channel groups. In builds without the assembly kernels both runs
// take the same path.
func TestSorterKernelsMatchScalar(t *testing.T) {
	src := newSynth(synthConfig{channels: 2*64 + 11, seconds: 3, unitsPerChan: []int{1, 2, 0},
		noiseUV: 10, ampMin: 60, ampMax: 160, lfp: 200, hum: 30, dc: 1500, seed: 5})
	for _, sign := range []Sign{Negative, Positive, Both} {
		cfg := Config{Deterministic: true, LearnSeconds: 1, Sign: sign, Workers: 2}
		fast, _ := runSorter(t, src, cfg, 250)
		func() {
			defer func(a bool) { useAVX2 = a }(useAVX2)
			useAVX2 = false
			slow, _ := runSorter(t, src, cfg, 250)
			if len(fast) != len(slow) {
				t.Fatalf("sign %v: %d spikes with kernels, %d scalar", sign, len(fast), len(slow))
			}
			for i := range fast {
				if fast[i] != slow[i] {
					t.Fatalf("sign %v: spike %d: kernels %+v, scalar %+v", sign, i, fast[i], slow[i])
				}
			}
			if len(fast) < 100 {
				t.Fatalf("sign %v: only %d spikes: the test signal does not exercise detection", sign, len(fast))
			}
			t.Logf("sign %v: %d identical spikes", sign, len(fast))
		}()
	}
}

// TestMedianAbs: the radix selection of the noise estimate returns what
// quickselect (median) returns, for sizes around the noise buffer's,
// duplicates, zeros, tiny and huge values, and leaves its input alone.
func TestMedianAbs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	scratch := make([]float32, 1100)
	for trial := range 3000 {
		n := 1 + rng.IntN(1100)
		if trial%3 == 0 {
			n = 1024
		}
		x := make([]float32, n)
		for i := range x {
			switch rng.IntN(8) {
			case 0:
				x[i] = 0
			case 1:
				x[i] = float32(rng.IntN(4)) // many duplicates
			case 2:
				x[i] = float32(rng.ExpFloat64() * 1e-30)
			case 3:
				x[i] = float32(rng.ExpFloat64() * 1e30)
			default:
				x[i] = float32(math.Abs(rng.NormFloat64() * 20))
			}
		}
		if trial%7 == 0 {
			for i := range x {
				x[i] = 12.5 // all equal
			}
		}
		orig := slices.Clone(x)
		got := medianAbs(x, scratch)
		want := median(slices.Clone(x))
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("trial %d, %d values: medianAbs %v, median %v", trial, n, got, want)
		}
		if !slices.Equal(x, orig) {
			t.Fatalf("trial %d: medianAbs changed its input", trial)
		}
	}
	if got := medianAbs(nil, scratch); got != 0 {
		t.Fatalf("medianAbs(nil) = %v, want 0", got)
	}
}
