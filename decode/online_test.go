package decode

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	gosort "sort"
	"testing"
	"time"

	"github.com/spikeline/spikeline/sort"
)

// dropGaps removes the spikes inside gaps (data the link lost).
func dropGaps(spikes []sort.Spike, gaps []Gap) []sort.Spike {
	var out []sort.Spike
	for _, s := range spikes {
		in := false
		for _, g := range gaps {
			if s.Sample >= g.Start && s.Sample < g.End {
				in = true
			}
		}
		if !in {
			out = append(out, s)
		}
	}
	return out
}

// TestOnlineMatchesPredict streams spikes through Online in irregular
// chunks, with gaps, and checks every Estimate against Predict on the
// binned data: the live path and the offline path are the same decoder.
func TestOnlineMatchesPredict(t *testing.T) {
	p := &population{Units: 30, Base: 30, Mod: 8, Rate: 30000, Width: 600, Bins: 4000, Rho: 0.9, Seed: 11, FirstID: 5}
	spikes, beh := p.generate()
	gaps := []Gap{{100000, 100001}, {700123, 731000}, {1500000, 1500600}}
	spikes = dropGaps(spikes, gaps)
	ds, err := NewDataset(spikes, beh, ByUnit, nil, p.Rate, p.Width, gaps)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []FitConfig{{Kind: Wiener, Lags: 5}, {Kind: Kalman}, {Kind: Kalman, Steady: true}, {Kind: Kalman, State: StatePositionVelocity}} {
		m, err := Fit(ds, ds.SplitRow(0.7), cfg)
		if err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		want, wantDeg, err := m.Predict(ds.Bins)
		if err != nil {
			t.Fatal(err)
		}
		o, err := NewOnline(m, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gaps {
			o.MarkGap(g)
		}
		r := rand.New(rand.NewPCG(3, 4))
		var got []Estimate
		var dst []Estimate
		i := 0
		end := uint64(ds.Len()) * p.Width
		for upTo := uint64(0); upTo < end; {
			upTo = min(end, upTo+uint64(r.IntN(3000)))
			j := i
			for j < len(spikes) && spikes[j].Sample < upTo {
				j++
			}
			chunk := slices.Clone(spikes[i:j])
			r.Shuffle(len(chunk), func(a, b int) { chunk[a], chunk[b] = chunk[b], chunk[a] })
			o.Add(chunk)
			i = j
			dst = o.Advance(upTo, dst[:0])
			for _, e := range dst {
				e.Values = slices.Clone(e.Values)
				got = append(got, e)
			}
		}
		if len(got) != ds.Len() {
			t.Fatalf("%s: %d estimates, want %d", m.Kind, len(got), ds.Len())
		}
		no := len(m.Outputs)
		ndeg := 0
		for k, e := range got {
			if e.End != ds.Bins.End(k) || e.Rate != p.Rate || !slices.Equal(e.Names, m.Outputs) {
				t.Fatalf("%s: estimate %d: End %d Rate %g Names %v", m.Kind, k, e.End, e.Rate, e.Names)
			}
			if e.Degraded != wantDeg[k] {
				t.Fatalf("%s: estimate %d (end %d): degraded %v, Predict says %v", m.Kind, k, e.End, e.Degraded, wantDeg[k])
			}
			if e.Degraded {
				ndeg++
			}
			for o, v := range e.Values {
				if math.Abs(v-want[k*no+o]) > 1e-9*(1+math.Abs(v)) {
					t.Fatalf("%s: estimate %d output %d = %v, Predict %v", m.Kind, k, o, v, want[k*no+o])
				}
			}
		}
		// Gaps: bin 166 (sample 100000), bins 1166..1218, bin 2500.
		wantN := 1 + 53 + 1
		if m.Kind == Wiener {
			wantN += 4 * (m.Lags - 1) // warm-up, and the lags after each gap
		}
		if ndeg != wantN {
			t.Errorf("%s: %d degraded estimates, want %d", m.Kind, ndeg, wantN)
		}
		if st := o.Stats(); st.Late != 0 || st.Unknown != 0 || st.Bins != uint64(ds.Len()) {
			t.Errorf("%s: stats %+v", m.Kind, st)
		}
	}
}

func TestOnlineLateUnknownAndUnalignedStart(t *testing.T) {
	m := syntheticModel(Wiener, 4, 2, 1)
	o, err := NewOnline(m, 1000) // bin 1 (600..1200) starts mid-bin
	if err != nil {
		t.Fatal(err)
	}
	o.Add([]sort.Spike{{Sample: 1100, Unit: 1}, {Sample: 1100, Unit: 99}, {Sample: 5000, Unit: 2}, {Sample: 1150, Unit: 0}})
	est := o.Advance(1200, nil)
	if len(est) != 1 || est[0].End != 1200 || !est[0].Degraded {
		t.Fatalf("first bin: %+v", est)
	}
	o.Add([]sort.Spike{{Sample: 1199, Unit: 1}})
	est = o.Advance(6000, est[:0])
	if len(est) != 8 {
		t.Fatalf("%d estimates up to 6000, want 8", len(est))
	}
	st := o.Stats()
	if st.Late != 1 || st.Unknown != 1 || st.Bins != 9 {
		t.Errorf("stats %+v, want 1 late, 1 unknown (unit 0 is unsorted, not unknown), 9 bins", st)
	}
	// Spikes far ahead grow the ring without losing the pending ones.
	o.Add([]sort.Spike{{Sample: 6001, Unit: 3}, {Sample: 600 * 500, Unit: 4}})
	est = o.Advance(600*501, est[:0])
	if len(est) != 491 {
		t.Fatalf("%d estimates, want 491", len(est))
	}
	if st := o.Stats(); st.Late != 1 || st.Future != 0 {
		t.Errorf("stats after growth %+v", st)
	}
	// A corrupt sample index far in the future is dropped, not allocated for.
	o.Add([]sort.Spike{{Sample: 1 << 62, Unit: 1}})
	if st := o.Stats(); st.Future != 1 {
		t.Errorf("stats after a spike at 2^62: %+v", st)
	}
}

func TestOnlineUnitMismatch(t *testing.T) {
	m := syntheticModel(Wiener, 4, 2, 1)
	err := m.CheckKeys([]int32{1, 2, 7, 9})
	var um *UnitMismatchError
	if !asError(err, &um) || !slices.Equal(um.Missing, []int32{3, 4}) || !slices.Equal(um.Extra, []int32{7, 9}) {
		t.Fatalf("CheckKeys: %v", err)
	}
	if want := "decode: units do not match the model (missing from the stream: 3 4; not in the model: 7 9)"; err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	if err := m.CheckKeys([]int32{4, 3, 2, 1}); err != nil {
		t.Errorf("same units: %v", err)
	}
}

// syntheticModel returns a valid model with random weights for nu units
// (ids 1..nu) and no outputs, for tests and benchmarks of the online path.
func syntheticModel(kind Kind, nu, no, lags int) *Model {
	r := rand.New(rand.NewPCG(uint64(nu), uint64(lags)))
	m := &Model{Format: Format, Version: Version, Kind: kind, Grouping: ByUnit, Rate: 30000, BinSamples: 600, Lags: lags}
	for j := range nu {
		m.Keys = append(m.Keys, int32(j+1))
		m.Mean = append(m.Mean, 0.4+0.2*r.Float64())
		m.Std = append(m.Std, 0.6+0.2*r.Float64())
	}
	for o := range no {
		m.Outputs = append(m.Outputs, "v"+string(rune('x'+o)))
	}
	mat := func(rows, cols int, scale float64) [][]float64 {
		a := make([][]float64, rows)
		for i := range a {
			a[i] = make([]float64, cols)
			for k := range a[i] {
				a[i][k] = scale * r.NormFloat64()
			}
		}
		return a
	}
	switch kind {
	case Wiener:
		w := &WienerParams{Lambda: 1, Intercept: make([]float64, no)}
		for range lags {
			w.Weights = append(w.Weights, mat(nu, no, 0.01))
		}
		m.Wiener = w
	case Kalman:
		m.Lags = 1
		d := no
		k := &KalmanParams{State: StateVelocity, StateNames: m.Outputs, A: mat(d, d, 0), W: mat(d, d, 0), HtQinv: mat(d, nu, 0.1),
			HtQinvH: mat(d, d, 0), P0: mat(d, d, 0), AOffset: make([]float64, d), HtQinvOffset: make([]float64, d), X0: make([]float64, d)}
		for i := range d {
			k.A[i][i] = 0.95
			k.W[i][i] = 0.1
			k.P0[i][i] = 1
			k.HtQinvH[i][i] = float64(nu) / 10
		}
		m.Kalman = k
	}
	if err := m.Validate(); err != nil {
		panic(err)
	}
	return m
}

// binSpikes returns one bin of Poisson spikes (rate Hz per unit) for
// units 1..nu, starting at sample start.
func binSpikes(r *rand.Rand, nu int, rate float64, start, width uint64, dst []sort.Spike) []sort.Spike {
	dst = dst[:0]
	mean := rate * float64(width) / 30000
	for j := range nu {
		for range poisson(r, mean) {
			dst = append(dst, sort.Spike{Sample: start + uint64(r.IntN(int(width))), Unit: int32(j + 1), Channel: int32(j / 3)})
		}
	}
	return dst
}

func TestOnlineNoAllocation(t *testing.T) {
	for _, kind := range []Kind{Wiener, Kalman} {
		m := syntheticModel(kind, 300, 2, 10)
		o, err := NewOnline(m, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 1))
		bins := make([][]sort.Spike, 64)
		for i := range bins {
			bins[i] = binSpikes(r, 300, 20, uint64(i)*600, 600, nil)
		}
		dst := o.Advance(600, nil)
		k := 1
		allocs := testing.AllocsPerRun(200, func() {
			b := bins[k%len(bins)]
			for i := range b {
				b[i].Sample = uint64(k)*600 + b[i].Sample%600
			}
			o.Add(b)
			if k%50 == 0 {
				o.MarkGap(Gap{uint64(k+1) * 600, uint64(k+1)*600 + 10})
			}
			k++
			dst = o.Advance(uint64(k)*600, dst[:0])
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per bin, want 0", kind, allocs)
		}
	}
}

// BenchmarkOnline1024 times the online decoder at the scale of a 1,024
// channel probe: 3,000 units firing at 20 Hz (about 1,200 spikes per
// 20 ms bin). publish-p50/p99-µs is the time from the bin's close
// (Advance) to its Estimate; bin-p50/p99-µs adds the per-spike work done
// as the bin's spikes arrive (Add).
func BenchmarkOnline1024(b *testing.B) {
	for _, kind := range []Kind{Wiener, Kalman} {
		b.Run(string(kind), func(b *testing.B) {
			const nu = 3000
			m := syntheticModel(kind, nu, 2, 10)
			o, err := NewOnline(m, 0)
			if err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(9, 9))
			bins := make([][]sort.Spike, 32)
			for i := range bins {
				bins[i] = binSpikes(r, nu, 20, 0, 600, nil)
			}
			// Keep at most the last 1<<16 bins' timings (no growth while timing).
			pub := make([]time.Duration, 0, 1<<16)
			tot := make([]time.Duration, 0, 1<<16)
			dst := make([]Estimate, 0, 4)
			k := uint64(0)
			b.ResetTimer()
			for b.Loop() {
				sp := bins[k%uint64(len(bins))]
				for i := range sp {
					sp[i].Sample = k*600 + sp[i].Sample%600
				}
				t0 := time.Now()
				o.Add(sp)
				t1 := time.Now()
				k++
				dst = o.Advance(k*600, dst[:0])
				t2 := time.Now()
				if len(pub) == cap(pub) {
					pub, tot = pub[:0], tot[:0]
				}
				pub = append(pub, t2.Sub(t1))
				tot = append(tot, t2.Sub(t0))
			}
			b.StopTimer()
			q := func(d []time.Duration, f float64) float64 {
				gosort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				return float64(d[int(f*float64(len(d)-1))].Nanoseconds()) / 1e3
			}
			b.ReportMetric(q(pub, 0.5), "publish-p50-µs")
			b.ReportMetric(q(pub, 0.99), "publish-p99-µs")
			b.ReportMetric(q(tot, 0.5), "bin-p50-µs")
			b.ReportMetric(q(tot, 0.99), "bin-p99-µs")
		})
	}
}

func asError[T error](err error, target *T) bool { return errors.As(err, target) }
