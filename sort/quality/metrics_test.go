package quality

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

const rate = 30000.0

// same reports whether a and b are equal, NaN equal to NaN.
func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// near reports whether a and b agree to 1e-12 (expectations computed by
// hand round differently), NaN equal to NaN.
func near(a, b float64) bool { return same(a, b) || math.Abs(a-b) <= 1e-12*math.Abs(b) }

func checkMetrics(t *testing.T, name string, got, want Metrics) {
	t.Helper()
	g, w := metricsMap(got), metricsMap(want)
	for k, wv := range w {
		if !near(g[k], wv) {
			t.Errorf("%s: %s = %v, want %v", name, k, g[k], wv)
		}
	}
}

func TestComputeEdgeCases(t *testing.T) {
	nan := math.NaN()
	min2 := uint64(2 * 60 * rate) // two minutes
	tmpl := []float32{1, -3, -10, 4}
	tests := []struct {
		name    string
		in      Input
		samples uint64
		want    Metrics
	}{
		{
			name: "no spikes: everything but snr undefined, counts -1",
			in:   Input{Template: tmpl, Noise: 2}, samples: min2,
			want: Metrics{NumSpikes: 0, FiringRate: nan, PresenceRatio: nan, SNR: 5, ISIViolationsRatio: nan,
				ISIViolationsCount: -1, RPContamination: nan, RPViolations: -1, AmplitudeCutoff: nan, AmplitudeMedian: nan},
		},
		{
			name: "one spike: no violations, contamination undefined",
			in:   Input{Spikes: []uint64{100}, Amplitudes: []float32{-42}, Template: tmpl, Noise: 0}, samples: min2,
			want: Metrics{NumSpikes: 1, FiringRate: 1.0 / 120, PresenceRatio: 0.5, SNR: nan, ISIViolationsRatio: 0,
				ISIViolationsCount: 0, RPContamination: nan, RPViolations: 0, AmplitudeCutoff: nan, AmplitudeMedian: -42},
		},
		{
			name: "two spikes 10 samples apart: one violation of each kind, contamination 1",
			in:   Input{Spikes: []uint64{1000, 1010}, Amplitudes: []float32{-40, -50}}, samples: min2,
			want: Metrics{NumSpikes: 2, FiringRate: 2.0 / 120, PresenceRatio: 0.5, SNR: nan,
				ISIViolationsRatio: (1 / (2 * 2 * 0.0015)) / (2.0 / 120), ISIViolationsCount: 1,
				RPContamination: 1, RPViolations: 1, AmplitudeCutoff: nan, AmplitudeMedian: -45},
		},
		{
			name: "exactly 1.5 ms from sample 0 is not an ISI violation; exactly 1 ms is a refractory violation",
			in:   Input{Spikes: []uint64{0, 45, 75}}, samples: min2,
			want: Metrics{NumSpikes: 3, FiringRate: 3.0 / 120, PresenceRatio: 0.5, SNR: nan,
				ISIViolationsRatio: (1 / (2 * 3 * 0.0015)) / (3.0 / 120), ISIViolationsCount: 1,
				RPContamination: 1, RPViolations: 1, // 1 - v·T/(n²·tr) < 0
				AmplitudeCutoff: nan, AmplitudeMedian: nan},
		},
		{
			name: "exactly 1.5 ms late in a long recording is a violation (seconds are subtracted, as SpikeInterface)",
			in:   Input{Spikes: []uint64{123456789, 123456789 + 45}}, samples: 3_000_000_000,
			want: Metrics{NumSpikes: 2, FiringRate: 2 / 100000.0, PresenceRatio: 1.0 / 1666, SNR: nan,
				ISIViolationsRatio: 8333333.333333332, ISIViolationsCount: 1,
				RPContamination: 1, RPViolations: 0 + 0, AmplitudeCutoff: nan, AmplitudeMedian: nan},
		},
		{
			name: "recording shorter than a presence bin",
			in:   Input{Spikes: []uint64{5, 50000}}, samples: 59 * rate,
			want: Metrics{NumSpikes: 2, FiringRate: 2 / 59.0, PresenceRatio: nan, SNR: nan, ISIViolationsRatio: 0,
				RPContamination: 0, AmplitudeCutoff: nan, AmplitudeMedian: nan},
		},
		{
			name: "all spikes in the first of three bins",
			in:   Input{Spikes: []uint64{10, 20000, 40000}}, samples: 3 * 60 * rate,
			want: Metrics{NumSpikes: 3, FiringRate: 3 / 180.0, PresenceRatio: 1.0 / 3, SNR: nan, ISIViolationsRatio: 0,
				RPContamination: 0, AmplitudeCutoff: nan, AmplitudeMedian: nan},
		},
		{
			name: "a spike on the last bin edge counts in the last bin; one in the partial bin after it does not",
			in:   Input{Spikes: []uint64{10, 2 * 60 * rate, 2*60*rate + 100}}, samples: 2*60*rate + 30*rate,
			want: Metrics{NumSpikes: 3, FiringRate: 3 / 150.0, PresenceRatio: 1, SNR: nan, ISIViolationsRatio: 0,
				RPContamination: 0, AmplitudeCutoff: nan, AmplitudeMedian: nan},
		},
	}
	for _, tc := range tests {
		m, err := Params{}.Compute(tc.in, tc.samples, rate)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		// The second long-recording spike is 45 samples later: no
		// refractory violation (45 > 30), so its contamination is 0.
		if strings.HasPrefix(tc.name, "exactly 1.5 ms late") {
			tc.want.RPContamination = 0
		}
		checkMetrics(t, tc.name, m, tc.want)
	}
}

func TestAmplitudeCutoffCases(t *testing.T) {
	amps := func(n int, f func(i int) float32) Input {
		in := Input{Spikes: make([]uint64, n), Amplitudes: make([]float32, n)}
		for i := range n {
			in.Spikes[i] = uint64(i * 100)
			in.Amplitudes[i] = f(i)
		}
		return in
	}
	tests := []struct {
		name string
		in   Input
		want float64
	}{
		// Values from SpikeInterface 0.104.8's amplitude_cutoff on the same arrays.
		{"499 spikes: too few for 100 bins", amps(499, func(i int) float32 { return -50 - float32(i%7) }), math.NaN()},
		{"600 equal amplitudes", amps(600, func(int) float32 { return -50 }), 0},
		{"500 evenly spread", amps(500, func(i int) float32 { return float32(10 + 50*float64(i)/499) }), 0},
	}
	for _, tc := range tests {
		m, err := Params{}.Compute(tc.in, 1e8, rate)
		if err != nil {
			t.Fatal(err)
		}
		if !same(m.AmplitudeCutoff, tc.want) {
			t.Errorf("%s: amplitude_cutoff %v, want %v", tc.name, m.AmplitudeCutoff, tc.want)
		}
	}
}

// TestAmplitudeCutoffTruncated: a distribution with its low half removed
// is estimated to miss about half its spikes (capped at 0.5); the full one
// misses none.
func TestAmplitudeCutoffTruncated(t *testing.T) {
	// A deterministic bell: amplitudes at the quantiles of a triangle.
	var full, cut []float32
	for i := range 4000 {
		u := (float64(i) + 0.5) / 4000
		var x float64
		if u < 0.5 {
			x = math.Sqrt(2*u) - 1
		} else {
			x = 1 - math.Sqrt(2*(1-u))
		}
		a := float32(-100 - 30*x)
		full = append(full, a)
		if a < -100 {
			cut = append(cut, a)
		}
	}
	p := Params{}.Defaults()
	sortedCopy := func(a []float32) []float32 {
		s := slices.Clone(a)
		slices.Sort(s)
		return s
	}
	if c := p.amplitudeCutoff(full, sortedCopy(full), true); c > 0.01 {
		t.Errorf("full distribution: cutoff %v, want ~0", c)
	}
	if c := p.amplitudeCutoff(cut, sortedCopy(cut), true); c < 0.4 {
		t.Errorf("half distribution: cutoff %v, want ~0.5", c)
	}
}

func TestComputeInputErrors(t *testing.T) {
	tests := []struct {
		name    string
		p       Params
		in      Input
		samples uint64
		rate    float64
		want    error
		msg     string
	}{
		{"unsorted", Params{}, Input{Spikes: []uint64{5, 3}}, 100, rate, ErrInput, "spike 1 at sample 3 before spike 0"},
		{"past the end", Params{}, Input{Spikes: []uint64{5, 100}}, 100, rate, ErrInput, "past the recording's 100 samples"},
		{"amplitudes", Params{}, Input{Spikes: []uint64{5}, Amplitudes: []float32{1, 2}}, 100, rate, ErrInput, "2 amplitudes for 1 spikes"},
		{"rate", Params{}, Input{}, 100, 0, ErrInput, "sample rate 0"},
		{"rate NaN", Params{}, Input{}, 100, math.NaN(), ErrInput, "sample rate NaN"},
		{"refractory", Params{Refractory: 1, Censored: 2}, Input{}, 100, rate, ErrParam, "refractory period"},
		{"min ISI", Params{MinISI: 2}, Input{}, 100, rate, ErrParam, "minimum ISI"},
		{"bins", Params{CutoffBins: -1}, Input{}, 100, rate, ErrParam, "amplitude cutoff bins"},
		{"presence", Params{PresenceBin: math.Inf(1)}, Input{}, 100, rate, ErrParam, "presence bin"},
	}
	for _, tc := range tests {
		_, err := tc.p.Compute(tc.in, tc.samples, tc.rate)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %v mentioning %q", tc.name, err, tc.want, tc.msg)
		}
	}
}

func TestLabel(t *testing.T) {
	p := Params{}
	tests := []struct {
		m    Metrics
		want Label
	}{
		{Metrics{NumSpikes: 50, RPContamination: 0}, Good},
		{Metrics{NumSpikes: 1000, RPContamination: 0.1}, Good},
		{Metrics{NumSpikes: 1000, RPContamination: 0.11}, MUA},
		{Metrics{NumSpikes: 49, RPContamination: 0}, MUA},
		{Metrics{NumSpikes: 1000, RPContamination: math.NaN()}, MUA},
	}
	for _, tc := range tests {
		if got := p.Label(tc.m); got != tc.want {
			t.Errorf("Label(%d spikes, contamination %v) = %v, want %v", tc.m.NumSpikes, tc.m.RPContamination, got, tc.want)
		}
	}
	strict := Params{MinSpikes: 10, MaxContamination: 0.01}
	if got := strict.Label(Metrics{NumSpikes: 20, RPContamination: 0.05}); got != MUA {
		t.Errorf("strict rule: %v, want mua", got)
	}
	for _, l := range []Label{Good, MUA, Unlabelled} {
		b, _ := l.MarshalText()
		var back Label
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Errorf("label %v round trip: %v, %v", l, back, err)
		}
	}
	var l Label
	if err := l.UnmarshalText([]byte("noise")); err == nil {
		t.Error("label noise accepted")
	}
}

func TestSortingAndCSV(t *testing.T) {
	spikes := []sort.Spike{
		{Sample: 300, Channel: 2, Unit: 7, Amplitude: -60},
		{Sample: 100, Channel: 2, Unit: 7, Amplitude: -40}, // out of order: sorted per unit
		{Sample: 150, Channel: 1, Unit: 0, Amplitude: -30}, // unsorted: left out
		{Sample: 200, Channel: 5, Unit: 3, Amplitude: 20},
	}
	templates := []sort.Template{
		{Unit: 7, Channel: 2, Pre: 1, Waveform: []float32{0, -50, 10}, PeakUV: -50},
		{Unit: 9, Channel: 4, Pre: 0, Waveform: []float32{-20}, PeakUV: -20}, // no spikes
	}
	noise := []float32{5, 5, 10, 5, 4, 5}
	units, err := Params{}.Sorting(spikes, templates, noise, 2*60*rate, rate)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 3 || units[0].ID != 3 || units[1].ID != 7 || units[2].ID != 9 {
		t.Fatalf("units %+v, want ids 3, 7, 9", units)
	}
	u3, u7, u9 := units[0], units[1], units[2]
	if u3.Channel != 5 || u3.NumSpikes != 1 || !math.IsNaN(u3.SNR) || u3.AmplitudeMedian != 20 || u3.Label != MUA {
		t.Errorf("unit 3 (spikes, no template): %+v", u3)
	}
	if u7.Channel != 2 || u7.NumSpikes != 2 || u7.SNR != 5 || u7.AmplitudeMedian != -50 || u7.RPViolations != 0 {
		t.Errorf("unit 7: %+v", u7)
	}
	if u9.Channel != 4 || u9.NumSpikes != 0 || u9.SNR != 5 || u9.RPViolations != -1 || !math.IsNaN(u9.FiringRate) || u9.Label != MUA {
		t.Errorf("unit 9 (template, no spikes): %+v", u9)
	}
	if _, err := (Params{}).Sorting([]sort.Spike{{Sample: 1 << 40, Unit: 1}}, nil, nil, 100, rate); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "unit 1") {
		t.Errorf("spike past the end: %v", err)
	}

	var b strings.Builder
	if err := WriteUnitsCSV(&b, units); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if lines[0] != UnitsHeader || len(lines) != 4 {
		t.Fatalf("units.csv:\n%s", b.String())
	}
	if want := "9,4,0,NaN,NaN,5,NaN,-1,NaN,-1,NaN,NaN,mua"; lines[3] != want {
		t.Errorf("row of unit 9 %q, want %q", lines[3], want)
	}
	if want := "7,2,2,0.0166667,0.5,5,0,0,0,0,NaN,-50,mua"; lines[2] != want {
		t.Errorf("row of unit 7 %q, want %q", lines[2], want)
	}
}
