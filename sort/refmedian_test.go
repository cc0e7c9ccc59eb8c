package sort

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRowMiddleMatchesScalar: the fast path of the median reference gives
// the reference loop's three middle order statistics, bit for bit, on rows
// spread over one to three shards of channel counts with and without a
// remainder after the 8-channel groups, odd and even, with duplicates,
// ties at the median, steps in the common mode (the prediction misses) and
// slowly moving rows (it hits); and the fast path does take most rows.
func TestRowMiddleMatchesScalar(t *testing.T) {
	if !useAVX2 {
		t.Skip("no assembly kernels in this build: only the reference loop runs")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ channels, shards int }{
		{16, 1}, {17, 2}, {64, 2}, {139, 3}, {384, 2}, {1023, 2}, {1024, 2}, {4096, 2},
	} {
		s := &Sorter{channels: tc.channels}
		per := (tc.channels + tc.shards - 1) / tc.shards
		const ringLen = 8
		for c0 := 0; c0 < tc.channels; c0 += per {
			n := min(per, tc.channels-c0)
			s.shards = append(s.shards, &shard{s: s, c0: c0, n: n, ring: make([]float32, ringLen*n), mask: ringLen - 1})
		}
		sh := s.shards[0]
		all := make([]float32, tc.channels)
		var common float32
		x := make([]float32, tc.channels)
		for c := range x {
			x[c] = float32(rng.NormFloat64() * 10)
		}
		for row := range 3000 {
			t0 := uint64(row)
			// A smooth random walk per channel plus a common mode that
			// sometimes jumps.
			common += float32(rng.NormFloat64())
			if rng.IntN(50) == 0 {
				common += float32(rng.NormFloat64() * 200)
			}
			kind := rng.IntN(20)
			for c := range x {
				x[c] = 0.7*x[c] + float32(rng.NormFloat64()*7)
				v := x[c] + common
				switch kind {
				case 0:
					v = float32(math.Round(float64(v))) // many duplicates
				case 1:
					v = common // all equal
				case 2:
					if c%3 == 0 {
						v = common // ties at the median
					}
				}
				o := s.shards[c/per]
				o.ring[int(t0&o.mask)*o.n+c-o.c0] = v
			}
			wlo, wmid, whi := rowMiddleScalar(s.shards, t0, all)
			lo, mid, hi := sh.rowMiddle(t0, all)
			same := func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }
			if !same(lo, wlo) || !same(mid, wmid) || (tc.channels%2 == 1 && !same(hi, whi)) {
				t.Fatalf("%d channels in %d shards, row %d: got %v %v %v, want %v %v %v",
					tc.channels, tc.shards, row, lo, mid, hi, wlo, wmid, whi)
			}
		}
		t.Logf("%d channels: %d rows on the fast path, %d on the reference loop", tc.channels, sh.med.rows, sh.med.slows)
		if sh.med.rows < 2000 {
			t.Errorf("%d channels: only %d of 3000 rows on the fast path", tc.channels, sh.med.rows)
		}
	}
}

// TestSubtractMedianMatchesScalar: the vector and the branch-free
// subtraction of the leave-one-out median give refMedian's values, for odd
// and even channel counts and values below, at and above the middle.
func TestSubtractMedianMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	defer func(a bool) { useAVX2 = a }(useAVX2)
	avx := useAVX2
	for j, n := range []int{1, 7, 8, 13, 64, 67, 8, 64} {
		useAVX2 = avx && j < 6 // the last two run the branch-free loops only
		for _, odd := range []bool{false, true} {
			for range 200 {
				r := []float32{float32(rng.IntN(5)) - 2, 0, 0}
				r[1] = r[0] + float32(rng.IntN(3))
				r[2] = r[1] + float32(rng.IntN(3))
				row := make([]float32, n)
				for i := range row {
					row[i] = float32(rng.IntN(9)) - 4 + float32(rng.IntN(2))*0.5
				}
				want := make([]float32, n)
				for i, v := range row {
					want[i] = v - refMedian(v, r, odd)
				}
				subtractMedian(row, r, odd)
				for i := range row {
					if math.Float32bits(row[i]) != math.Float32bits(want[i]) {
						t.Fatalf("n %d odd %v: value %d: %v, want %v", n, odd, i, row[i], want[i])
					}
				}
			}
		}
	}
}

// TestSorterMedianKernelsMatchScalar: the whole sorter with the median
// reference gives the same spikes with the kernels as with the scalar
// loops, at an odd and an even channel count.
func TestSorterMedianKernelsMatchScalar(t *testing.T) {
	for _, ch := range []int{64 + 3, 96} {
		src := newSynth(synthConfig{channels: ch, seconds: 3, unitsPerChan: []int{1, 2, 0},
			noiseUV: 10, ampMin: 60, ampMax: 160, lfp: 200, hum: 30, dc: 1500, seed: 6})
		cfg := Config{Deterministic: true, LearnSeconds: 1, Reference: RefMedian, Workers: 2}
		fast, so := runSorter(t, src, cfg, 250)
		rows, slows := uint64(0), uint64(0)
		for _, sh := range so.shards {
			rows, slows = rows+sh.med.rows, slows+sh.med.slows
		}
		so.Close()
		defer func(a bool) { useAVX2 = a }(useAVX2)
		useAVX2 = false
		slow, so := runSorter(t, src, cfg, 250)
		so.Close()
		useAVX2 = true
		if len(fast) != len(slow) {
			t.Fatalf("%d channels: %d spikes with kernels, %d scalar", ch, len(fast), len(slow))
		}
		for i := range fast {
			if fast[i] != slow[i] {
				t.Fatalf("%d channels: spike %d: kernels %+v, scalar %+v", ch, i, fast[i], slow[i])
			}
		}
		if len(fast) < 100 {
			t.Fatalf("only %d spikes", len(fast))
		}
		t.Logf("%d channels: %d identical spikes; %d rows on the fast path, %d on the reference loop", ch, len(fast), rows, slows)
	}
}

// BenchmarkMedianReference times finding the middle order statistics of
// rows across all channels (referenceRows with the median reference) on
// one core, over the filtered rows of a warm sorter: the fast path and
// the reference loop.
func BenchmarkMedianReference(b *testing.B) {
	for _, ch := range benchChannels {
		for _, kernels := range []bool{true, false} {
			name := fmt.Sprintf("ch=%d/fast", ch)
			if !kernels {
				name = fmt.Sprintf("ch=%d/scalar", ch)
			}
			b.Run(name, func(b *testing.B) {
				if kernels && !useAVX2 {
					b.Skip("no assembly kernels in this build")
				}
				defer func(a bool) { useAVX2 = a }(useAVX2)
				useAVX2 = kernels
				d := getBenchData(b, ch)
				so, _ := warmSorter(b, d, Config{Reference: RefMedian, Workers: 1}, 300)
				defer so.Close()
				sh := so.shards[0]
				rows := so.chunk
				from := so.tau - uint64(rows)
				ref := make([]float32, 3*rows)
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				for range b.N {
					sh.referenceRows(from, 0, rows, ref)
				}
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(rows*ch)*float64(b.N)/cpu.Seconds(), "samples/cpu-s")
			})
		}
	}
}

// oldReferenceRows is referenceRows's median branch as it was before the
// fast path (commit db212cc), kept verbatim as the oracle.
func oldReferenceRows(s *Sorter, from uint64, i0, i1 int, ref []float32) {
	all := make([]float32, 0, s.channels)
	for i := i0; i < i1; i++ {
		t := from + uint64(i)
		all = all[:0]
		for _, o := range s.shards {
			all = append(all, o.ring[int(t&o.mask)*o.n:][:o.n]...)
		}
		n := len(all)
		if n == 1 {
			ref[3*i], ref[3*i+1], ref[3*i+2] = 0, 0, 0
			continue
		}
		k := n / 2
		m := median(all) // all[:k] <= all[k] <= all[k+1:]
		lo := all[0]
		for _, v := range all[1:k] {
			lo = max(lo, v)
		}
		hi := float32(math.Inf(1))
		for _, v := range all[k+1:] {
			hi = min(hi, v)
		}
		if n%2 == 0 {
			ref[3*i], ref[3*i+1], ref[3*i+2] = lo, m, m
		} else {
			ref[3*i], ref[3*i+1], ref[3*i+2] = lo, m, hi
		}
	}
}

// TestReferenceRowsMatchesOld: referenceRows with the median reference
// gives the old implementation's values bit for bit, then the detect step
// subtracts the same leave-one-out medians, on adversarial rows: one
// channel, two to fifteen (below the fast path), odd and even counts over
// one to three shards, rows of extremes (±Inf, ±MaxFloat32, the smallest
// subnormals, zeros, huge steps between rows), a single outlier, two
// values only, all equal, and slow drifts. The rows are NaN-free: the
// ring holds filtered int16 samples.
func TestReferenceRowsMatchesOld(t *testing.T) {
	for _, kernels := range []bool{true, false} {
		if kernels && !useAVX2 {
			continue // no assembly kernels in this build
		}
		t.Run(fmt.Sprintf("kernels=%v", kernels), func(t *testing.T) {
			defer func(a bool) { useAVX2 = a }(useAVX2)
			useAVX2 = kernels
			referenceRowsMatchesOld(t)
		})
	}
}

func referenceRowsMatchesOld(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	extremes := []float32{float32(math.Inf(-1)), float32(math.Inf(1)), math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 0, 1, -1, 1e30, -1e30, 1e-30}
	for _, tc := range []struct{ channels, shards int }{
		{1, 1}, {2, 1}, {3, 2}, {8, 1}, {15, 2}, {16, 1}, {17, 3}, {31, 2}, {33, 3}, {64, 1}, {385, 2}, {1024, 2},
	} {
		s := &Sorter{channels: tc.channels, cfg: Config{Reference: RefMedian}}
		per := (tc.channels + tc.shards - 1) / tc.shards
		const ringLen = 64
		for c0 := 0; c0 < tc.channels; c0 += per {
			n := min(per, tc.channels-c0)
			s.shards = append(s.shards, &shard{s: s, c0: c0, n: n, ring: make([]float32, ringLen*n), mask: ringLen - 1})
		}
		set := func(t uint64, c int, v float32) {
			o := s.shards[c/per]
			o.ring[int(t&o.mask)*o.n+c-o.c0] = v
		}
		base := float32(0)
		for block := range 200 {
			from := uint64(block) * ringLen
			for i := range ringLen {
				t := from + uint64(i)
				kind := rng.IntN(12)
				base += float32(rng.NormFloat64())
				if rng.IntN(100) == 0 {
					base = float32(rng.NormFloat64() * 1e6)
				}
				for c := range tc.channels {
					v := base + float32(rng.NormFloat64()*20)
					switch kind {
					case 0:
						v = extremes[rng.IntN(len(extremes))]
					case 1:
						if rng.IntN(4) == 0 {
							v = extremes[rng.IntN(len(extremes))]
						}
					case 2:
						v = base // all equal
					case 3:
						if c == 0 {
							v = 1e38 // one outlier
						}
					case 4:
						v = base + float32(rng.IntN(2)) // two values
					case 5:
						v = float32(math.Round(float64(v))) // duplicates
					case 6:
						v = base + float32(c%5) // ties everywhere
					}
					set(t, c, v)
				}
			}
			got := make([]float32, 3*ringLen)
			want := make([]float32, 3*ringLen)
			oldReferenceRows(s, from, 0, ringLen, want)
			// Rows split between shards as the sorter's reference phase does.
			for j, sh := range s.shards {
				i0 := j * ringLen / len(s.shards)
				i1 := (j + 1) * ringLen / len(s.shards)
				sh.referenceRows(from, i0, i1, got)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%d channels: row %d, value %d: %v, want %v (row %v)", tc.channels, from+uint64(i/3), i%3,
						got[i], want[i], got[3*(i/3):3*(i/3)+3])
				}
			}
			// The subtraction with those values, as detect does it.
			odd := tc.channels%2 == 1
			for i := range ringLen {
				row := s.shards[0].ring[i*s.shards[0].n:][:s.shards[0].n]
				wantRow := make([]float32, len(row))
				for c, v := range row {
					wantRow[c] = v - refMedian(v, want[3*i:3*i+3], odd)
				}
				subtractMedian(row, got[3*i:3*i+3], odd)
				for c := range row {
					if math.Float32bits(row[c]) != math.Float32bits(wantRow[c]) && !(row[c] != row[c] && wantRow[c] != wantRow[c]) {
						t.Fatalf("%d channels: row %d, channel %d: referenced %v, want %v", tc.channels, i, c, row[c], wantRow[c])
					}
				}
			}
		}
		rows, slows := uint64(0), uint64(0)
		for _, sh := range s.shards {
			rows, slows = rows+sh.med.rows, slows+sh.med.slows
		}
		t.Logf("%d channels: %d rows on the fast path, %d on the reference loop", tc.channels, rows, slows)
	}
}

// TestReferencerLeaveOneOut: Referencer subtracts from each value the
// median of the other channels (the middle one, or the mean of the middle
// pair) or the row's mean, bit for bit as computed here by sorting, on
// slowly moving rows (the median's fast path takes them: checked) and on
// jumps, for odd and even channel counts.
func TestReferencerLeaveOneOut(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 16, 17, 64, 139, 384} {
		for _, ref := range []Reference{RefNone, RefAverage, RefMedian} {
			r := NewReferencer(ref)
			common := float32(0)
			for row := range 200 {
				common += float32(rng.NormFloat64())
				if row%50 == 49 {
					common += 500 // a jump: the prediction misses
				}
				x := make([]float32, n)
				for c := range x {
					x[c] = common + float32(20*rng.NormFloat64())
				}
				want := make([]float32, n)
				switch ref {
				case RefNone:
					copy(want, x)
				case RefAverage:
					var sum float32
					for _, v := range x {
						sum += v
					}
					for c, v := range x {
						want[c] = v - sum/float32(n)
					}
				case RefMedian:
					for c, v := range x {
						if n == 1 {
							want[c] = v
							continue
						}
						others := append(append([]float32{}, x[:c]...), x[c+1:]...)
						slices.Sort(others)
						m := len(others)
						med := others[m/2]
						if m%2 == 0 {
							med = 0.5 * (others[m/2-1] + others[m/2])
						}
						want[c] = v - med
					}
				}
				r.Row(x)
				for c := range x {
					if math.Float32bits(x[c]) != math.Float32bits(want[c]) {
						t.Fatalf("%d channels, %v, row %d, channel %d: %v, want %v", n, ref, row, c, x[c], want[c])
					}
				}
			}
			if useAVX2 && ref == RefMedian && n >= medianSmallest && r.med.rows < 100 {
				t.Errorf("%d channels: the fast path took %d of 200 rows", n, r.med.rows)
			}
		}
	}
}
