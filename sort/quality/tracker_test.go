package quality

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

// simUnits returns the spikes (time order) of a few synthetic units over
// samples samples: Poisson trains with a 1.5 ms dead time, some with
// spikes added inside the refractory period, one silent for a stretch,
// amplitudes normal around a unit's peak, one cut at the low end.
func simUnits(samples uint64, seed uint64) ([]sort.Spike, []sort.Template) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var spikes []sort.Spike
	var templates []sort.Template
	for u := int32(1); u <= 6; u++ {
		hz := []float64{0, 12, 5, 20, 0.8, 8, 15}[u]
		peak := []float32{0, -120, -60, -45, -200, -80, 90}[u]
		var s uint64
		for {
			s += 45 + uint64(rng.ExpFloat64()*rate/hz)
			if s >= samples {
				break
			}
			if u == 5 && s > samples/3 && s < samples/2 {
				continue // silent
			}
			a := peak * float32(1+0.15*rng.NormFloat64())
			if u == 3 && a > 0.9*peak { // |a| < 0.9 |peak|: cut by the threshold
				continue
			}
			spikes = append(spikes, sort.Spike{Sample: s, Channel: u % 4, Unit: u, Amplitude: a})
			if u == 2 && rng.IntN(20) == 0 {
				spikes = append(spikes, sort.Spike{Sample: s + 5 + uint64(rng.IntN(40)), Channel: u % 4, Unit: u, Amplitude: a})
			}
		}
		templates = append(templates, sort.Template{Unit: u, Channel: u % 4, Pre: 1, Waveform: []float32{0, peak, -peak / 3}, PeakUV: peak})
	}
	templates = append(templates, sort.Template{Unit: 9, Channel: 0, Pre: 0, Waveform: []float32{-30}, PeakUV: -30}) // no spikes
	slices.SortStableFunc(spikes, func(a, b sort.Spike) int { return cmp.Compare(a.Sample, b.Sample) })
	return spikes, templates
}

// TestTrackerMatchesCompute feeds a Tracker in uneven batches and compares
// its metrics at several times with Params.Sorting on the spikes so far:
// equal but for amplitude_median (within 0.5 %) and amplitude_cutoff
// (within 0.02).
func TestTrackerMatchesCompute(t *testing.T) {
	const first = 1_000_000 // the device clock does not start at 0
	samples := uint64(7.5 * 60 * rate)
	spikes, templates := simUnits(samples, 3)
	for i := range spikes {
		spikes[i].Sample += first
	}
	noise := []float32{10, 12, 0, 9}
	tr, err := NewTracker(Params{}, rate, first)
	if err != nil {
		t.Fatal(err)
	}
	var maxMed, maxCut float64
	next := 0
	for _, end := range []uint64{30 * rate, 60 * rate, 61 * rate, 200 * rate, samples} {
		end += first
		j := next
		for j < len(spikes) && spikes[j].Sample < end {
			j++
		}
		for k := next; k < j; k += 37 {
			tr.Add(spikes[k:min(k+37, j)])
		}
		next = j
		live := tr.Metrics(nil, templates, noise, end)

		rel := slices.Clone(spikes[:j])
		for i := range rel {
			rel[i].Sample -= first
		}
		want, err := Params{}.Sorting(rel, templates, noise, end-first, rate)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[int32]Unit{}
		for _, u := range want {
			byID[u.ID] = u
		}
		for _, got := range live {
			w := byID[got.ID]
			if got.Channel != w.Channel || got.Label != w.Label {
				t.Errorf("end %d unit %d: channel %d label %v, want %d %v", end, got.ID, got.Channel, got.Label, w.Channel, w.Label)
			}
			g, e := metricsMap(got.Metrics), metricsMap(w.Metrics)
			for k, ev := range e {
				gv := g[k]
				switch k {
				case "amplitude_median":
					if d := math.Abs(gv - ev); !(d <= 0.005*math.Abs(ev)) && !same(gv, ev) {
						t.Errorf("end %d unit %d: amplitude_median %v, exact %v", end, got.ID, gv, ev)
					} else if !math.IsNaN(d) {
						maxMed = max(maxMed, d/math.Abs(ev))
					}
				case "amplitude_cutoff":
					if d := math.Abs(gv - ev); !(d <= 0.02) && !same(gv, ev) {
						t.Errorf("end %d unit %d: amplitude_cutoff %v, exact %v", end, got.ID, gv, ev)
					} else if !math.IsNaN(d) {
						maxCut = max(maxCut, d)
					}
				default:
					if !same(gv, ev) {
						t.Errorf("end %d unit %d: %s %v, exact %v", end, got.ID, k, gv, ev)
					}
				}
			}
		}
	}
	t.Logf("largest difference from the exact metrics: amplitude_median %.3f %%, amplitude_cutoff %.4f", 100*maxMed, maxCut)
	tr.Retain(templates[:2])
	if tr.Units() != 2 {
		t.Errorf("Retain kept %d units, want 2", tr.Units())
	}
}

// TestTrackerGolden feeds the golden units to a Tracker and compares with
// SpikeInterface's own values.
func TestTrackerGolden(t *testing.T) {
	g := readGolden(t)
	var spikes []sort.Spike
	var templates []sort.Template
	noise := make([]float32, len(g.Units))
	for i, u := range g.Units {
		for k, s := range u.Spikes {
			spikes = append(spikes, sort.Spike{Sample: s, Unit: int32(u.Unit + 1), Channel: int32(i), Amplitude: float32(u.Amplitudes[k])})
		}
		templates = append(templates, sort.Template{Unit: int32(u.Unit + 1), Channel: int32(i), Waveform: f32s(u.Template)})
		noise[i] = float32(u.Noise)
	}
	slices.SortStableFunc(spikes, func(a, b sort.Spike) int { return cmp.Compare(a.Sample, b.Sample) })
	tr, err := NewTracker(Params{}, g.Rate, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr.Add(spikes)
	live := tr.Metrics(nil, templates, noise, g.Samples)
	for i, u := range g.Units {
		got := metricsMap(live[i].Metrics)
		for name, want := range u.Metrics {
			v := got[name]
			switch {
			case want == nil:
				if !math.IsNaN(v) {
					t.Errorf("unit %d: %s = %v, SpikeInterface NaN", u.Unit, name, v)
				}
			case name == "amplitude_median":
				if math.Abs(v-*want) > 0.005*math.Abs(*want) {
					t.Errorf("unit %d: %s = %v, SpikeInterface %v", u.Unit, name, v, *want)
				}
			case name == "amplitude_cutoff":
				if math.Abs(v-*want) > 0.02 {
					t.Errorf("unit %d: %s = %v, SpikeInterface %v", u.Unit, name, v, *want)
				}
				t.Logf("unit %d: amplitude_cutoff live %.4f, SpikeInterface %.4f", u.Unit, v, *want)
			case v != *want:
				t.Errorf("unit %d: %s = %v, SpikeInterface %v", u.Unit, name, v, *want)
			}
		}
	}
}

func TestTrackerNoAllocation(t *testing.T) {
	spikes, _ := simUnits(uint64(60*rate), 5)
	tr, err := NewTracker(Params{}, rate, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr.Add(spikes[:len(spikes)/2]) // every unit seen
	batch := spikes[len(spikes)/2:]
	if a := testing.AllocsPerRun(20, func() { tr.Add(batch) }); a != 0 {
		t.Errorf("Add allocates %v times per batch", a)
	}
}

func TestTrackerEdges(t *testing.T) {
	if _, err := NewTracker(Params{}, 0, 0); err == nil {
		t.Error("rate 0 accepted")
	}
	if _, err := NewTracker(Params{CutoffBins: -2}, rate, 0); err == nil {
		t.Error("bad params accepted")
	}
	tr, _ := NewTracker(Params{}, rate, 100)
	tr.Add([]sort.Spike{
		{Sample: 50, Unit: 1, Amplitude: -10},                    // before the session: ignored
		{Sample: 200, Unit: 0, Amplitude: -10},                   // unsorted: ignored
		{Sample: 300, Unit: 1, Amplitude: float32(math.Inf(-1))}, // not a measurement
		{Sample: 400, Unit: 1, Amplitude: float32(math.NaN())},
		{Sample: 500, Unit: 1, Amplitude: -1e30},
	})
	m := tr.Metrics(nil, []sort.Template{{Unit: 1}, {Unit: 2}}, nil, 100)
	if m[0].NumSpikes != 0 || !math.IsNaN(m[0].FiringRate) || m[1].RPViolations != -1 {
		t.Errorf("no time elapsed: %+v", m)
	}
	m = tr.Metrics(nil, []sort.Template{{Unit: 1}}, nil, 1000)
	if m[0].NumSpikes != 3 || math.IsNaN(m[0].AmplitudeMedian) || !math.IsNaN(m[0].SNR) {
		t.Errorf("non-finite amplitudes: %+v", m[0])
	}
}

func BenchmarkTrackerAdd(b *testing.B) {
	spikes, _ := simUnits(uint64(600*rate), 7)
	tr, _ := NewTracker(Params{}, rate, 0)
	tr.Add(spikes)
	b.ResetTimer()
	n := 0
	for b.Loop() {
		tr.Add(spikes)
		n += len(spikes)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/spike")
}

func BenchmarkTrackerMetrics(b *testing.B) {
	spikes, templates := simUnits(uint64(600*rate), 7)
	tr, _ := NewTracker(Params{}, rate, 0)
	tr.Add(spikes)
	var dst []Unit
	b.ResetTimer()
	for b.Loop() {
		dst = tr.Metrics(dst[:0], templates, nil, uint64(600*rate))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(templates)), "ns/unit")
}
