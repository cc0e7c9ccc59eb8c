package decode

import (
	"math"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

// TestCalibratorLive feeds a simulated stream block by block, fits in a
// background goroutine while the stream keeps flowing, swaps the decoder
// in with CatchUp, and checks that (1) the live Wiener estimates equal
// the offline Predict of the same model bin for bin — nothing lost or
// counted twice across the swap — and (2) they decode the behaviour.
func TestCalibratorLive(t *testing.T) {
	for _, c := range []struct {
		kind      Kind
		swapFirst bool // swap the new decoder in before adding the block's spikes to it (they arrive twice)
	}{{Wiener, false}, {Wiener, true}, {Kalman, false}} {
		kind := c.kind
		name := string(kind)
		if c.swapFirst {
			name += "/swap-first"
		}
		t.Run(name, func(t *testing.T) {
			p := &population{Units: 40, Base: 30, Mod: 8, Rate: 30000, Width: 600, Bins: 9000, Rho: 0.95, Seed: 21, FirstID: 1}
			spikes, beh := p.generate()
			cal, err := NewCalibrator(CalibratorConfig{Rate: p.Rate, Outputs: beh.Names, Seconds: 60, Fit: FitConfig{Kind: kind, Lags: 5}})
			if err != nil {
				t.Fatal(err)
			}
			const block = 450 // samples per device block (not a divisor of the bin)
			end := uint64(p.Bins) * p.Width
			var (
				online *Online
				fitted = make(chan *Online, 1)
				fitErr = make(chan error, 1)
				est    []Estimate
				got    = map[uint64][]float64{} // bin end -> values
				fitAt  uint64
				si, bi int
			)
			for upTo := uint64(block); upTo <= end; upTo += block {
				j := si
				for j < len(spikes) && spikes[j].Sample < upTo {
					j++
				}
				chunk := spikes[si:j]
				si = j
				cal.Add(chunk)
				for bi < beh.Len() && beh.Samples[bi] < upTo {
					if err := cal.AddBehaviour(beh.Samples[bi], beh.Values[bi*2:bi*2+2]); err != nil {
						t.Fatal(err)
					}
					bi++
				}
				cal.Advance(upTo)
				trySwap := func() {
					if fitAt == 0 || online != nil {
						return
					}
					var o *Online
					if upTo >= fitAt+uint64(10*p.Rate) {
						// The stream runs faster than real time here:
						// after 10 s more of it, wait for the fit.
						select {
						case o = <-fitted:
						case err := <-fitErr:
							t.Fatal(err)
						}
					} else {
						select {
						case o = <-fitted:
						case err := <-fitErr:
							t.Fatal(err)
						default:
						}
					}
					if o != nil {
						cal.CatchUp(o)
						online = o
						t.Logf("fit started at %.1f s, decoder live from %.1f s", float64(fitAt)/p.Rate, float64(o.Next())/p.Rate)
					}
				}
				if c.swapFirst {
					trySwap()
				}
				if online != nil {
					online.Add(chunk)
					est = online.Advance(upTo, est[:0])
					for _, e := range est {
						got[e.End] = append([]float64(nil), e.Values...)
					}
				}
				if online == nil && fitAt == 0 && cal.Ready() {
					fitAt = upTo
					go func() {
						o, err := cal.Fit()
						if err != nil {
							fitErr <- err
							return
						}
						fitted <- o
					}()
				}
				if !c.swapFirst {
					trySwap()
				}
			}
			if online == nil {
				t.Fatal("the calibrator never produced a decoder")
			}
			if st := online.Stats(); st.Late != 0 && !c.swapFirst {
				t.Errorf("online stats %+v: late spikes across the swap", st)
			}
			m := cal.Model()
			if m.Fit.StartSample != 0 || m.Fit.EndSample < uint64(60*p.Rate) {
				t.Errorf("model fitted on samples %d–%d, want 0–≥60 s", m.Fit.StartSample, m.Fit.EndSample)
			}
			ds := p.dataset(t, spikes, beh)
			want, deg, err := m.Predict(ds.Bins)
			if err != nil {
				t.Fatal(err)
			}
			var truth, dec []float64
			compared := 0
			for i := range ds.Len() {
				v, ok := got[ds.Bins.End(i)]
				if !ok {
					continue
				}
				if kind == Wiener && !deg[i] {
					for o := range 2 {
						if math.Abs(v[o]-want[i*2+o]) > 1e-9 {
							t.Fatalf("bin %d: live %v, offline %v", i, v, want[i*2:i*2+2])
						}
					}
					compared++
				}
				truth = append(truth, ds.Behaviour[i*2])
				dec = append(dec, v[0])
			}
			if kind == Wiener && compared < 1000 {
				t.Errorf("only %d live estimates compared", compared)
			}
			r2 := R2(truth, dec)
			t.Logf("%s: live R² vx %.3f over %d bins after calibration", kind, r2, len(truth))
			if r2 < 0.6 {
				t.Errorf("live R² %.3f < 0.6", r2)
			}
			// Refit on request: keeps collecting, uses more data.
			o2, err := cal.Fit()
			if err != nil {
				t.Fatal(err)
			}
			if m2 := cal.Model(); m2.Fit.TrainBins <= m.Fit.TrainBins || o2.Next() != end {
				t.Errorf("refit: %d bins (first fit %d), online at %d want %d", m2.Fit.TrainBins, m.Fit.TrainBins, o2.Next(), end)
			}
		})
	}
}

func TestCalibratorConfigErrors(t *testing.T) {
	for _, cfg := range []CalibratorConfig{
		{Outputs: []string{"vx"}},
		{Rate: 30000},
		{Rate: 30000, Outputs: []string{"vx"}, Seconds: -1},
		{Rate: 30000, Outputs: []string{"vx"}, Seconds: 100, MaxSeconds: 50},
		{Rate: 30000, Outputs: []string{"vx"}, Grouping: "tetrode"},
		{Rate: 30000, Outputs: []string{"vx"}, Fit: FitConfig{Kind: "svm"}},
	} {
		if _, err := NewCalibrator(cfg); err == nil {
			t.Errorf("NewCalibrator(%+v) accepted", cfg)
		}
	}
	cal, err := NewCalibrator(CalibratorConfig{Rate: 30000, Outputs: []string{"vx", "vy"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cal.Fit(); err == nil {
		t.Error("Fit with no data accepted")
	}
	if err := cal.AddBehaviour(10, []float64{1}); err == nil {
		t.Error("behaviour with 1 value for 2 outputs accepted")
	}
	cal.AddBehaviour(10, []float64{1, 2})
	if err := cal.AddBehaviour(10, []float64{1, 2}); err == nil {
		t.Error("repeated behaviour sample index accepted")
	}
	cal.Add([]sort.Spike{{Sample: 20, Unit: 1}})
	cal.Advance(3000)
	if _, err := cal.Fit(); err == nil {
		t.Error("Fit on 0.1 s accepted")
	}
}

// TestCalibratorFeatureCap checks that a live Wiener fit on many units uses
// fewer lags, so that units × lags stays within MaxFeatures.
func TestCalibratorFeatureCap(t *testing.T) {
	p := &population{Units: 120, Base: 30, Mod: 8, Rate: 30000, Width: 600, Bins: 1000, Rho: 0.95, Seed: 5, FirstID: 1}
	spikes, beh := p.generate()
	for _, c := range []struct{ max, lags, want, units int }{{0, 10, 4, 120}, {300, 10, 2, 120}, {100, 10, 1, 100}, {5000, 3, 3, 120}} {
		cal, err := NewCalibrator(CalibratorConfig{Rate: p.Rate, Outputs: beh.Names, Seconds: 10, MaxFeatures: c.max, Fit: FitConfig{Lags: c.lags}})
		if err != nil {
			t.Fatal(err)
		}
		cal.Add(spikes)
		for i := range beh.Len() {
			cal.AddBehaviour(beh.Samples[i], beh.Values[i*2:i*2+2])
		}
		cal.Advance(uint64(p.Bins) * p.Width)
		o, err := cal.Fit()
		if err != nil {
			t.Fatal(err)
		}
		if m := o.Model(); m.Lags != c.want || len(m.Keys) != c.units {
			t.Errorf("MaxFeatures %d, Lags %d: fitted %d units × %d lags, want %d × %d", c.max, c.lags, len(m.Keys), m.Lags, c.units, c.want)
		} else if c.units < p.Units {
			// The columns kept are the most active ones.
			counts := map[int32]int{}
			for _, sp := range spikes {
				counts[sp.Unit]++
			}
			least := math.MaxInt
			for _, k := range m.Keys {
				least = min(least, counts[k])
			}
			dropped := 0
			for u, n := range counts {
				if !slices.Contains(m.Keys, u) && n > least {
					dropped++
				}
			}
			if dropped > 0 {
				t.Errorf("MaxFeatures %d: %d units more active than a kept one were dropped", c.max, dropped)
			}
		}
	}
}

// TestCalibratorChunks checks the chunked spike store against a flat
// slice trimmed the way the Calibrator trims: spikes added in batches of
// every size across chunk boundaries, trimmed by Advance, must come out
// of each in order, once, from any sequence number, and the sequence
// numbers must match the reference's.
func TestCalibratorChunks(t *testing.T) {
	const rate = 6000
	c, err := NewCalibrator(CalibratorConfig{Rate: rate, Outputs: []string{"x"}, Seconds: 1, MaxSeconds: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ref []sort.Spike // what the store must hold
	var base uint64      // sequence number of ref[0]
	var beh []uint64     // behaviour samples kept
	sample := uint64(0)
	check := func(when string) {
		t.Helper()
		if c.base != base || c.stored() != len(ref) {
			t.Fatalf("%s: base %d, %d stored; want %d, %d", when, c.base, c.stored(), base, len(ref))
		}
		for _, from := range []int{0, calChunk - 1, len(ref) / 2, len(ref)} {
			if from < 0 || from > len(ref) {
				continue
			}
			var got []sort.Spike
			c.each(from, func(s []sort.Spike) { got = append(got, s...) })
			if !slices.Equal(got, ref[from:]) {
				t.Fatalf("%s: each(%d) gives %d spikes, want the %d from the reference", when, from, len(got), len(ref)-from)
			}
		}
	}
	keep := uint64(10 * rate)
	for batch := range 80 {
		// Batches of 0 to 1.5 chunks, a spike every 3 samples.
		n := (batch * 7919) % (calChunk*3/2 + 11)
		if batch%13 == 0 {
			n = 0
		}
		spikes := make([]sort.Spike, n)
		for i := range spikes {
			sample += 3
			spikes[i] = sort.Spike{Sample: sample, Channel: int32(i % 7), Unit: int32(i % 5)}
		}
		sample++
		c.Add(spikes)
		ref = append(ref, spikes...)
		if err := c.AddBehaviour(sample, []float64{1}); err != nil {
			t.Fatal(err)
		}
		beh = append(beh, sample)
		c.Advance(sample + 1)
		// The same rule on the reference: trim to keep once a quarter
		// more has come in since the first behaviour sample.
		if up := sample + 1; up-beh[0] > keep+keep/4 {
			cut := up - keep
			k := 0
			for k < len(ref) && ref[k].Sample < cut {
				k++
			}
			ref, base = ref[k:], base+uint64(k)
			i, _ := slices.BinarySearch(beh, cut)
			beh = beh[i:]
		}
		check("after batch")
	}
	if base == 0 || len(c.chunks) < 2 {
		t.Fatalf("the test never trimmed (base %d) or stayed in one chunk (%d)", base, len(c.chunks))
	}
}
