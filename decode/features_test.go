package decode

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

func TestFeatureGroupings(t *testing.T) {
	spike := sort.Spike{Sample: 5, Channel: 2, Unit: 7}
	unsorted := sort.Spike{Sample: 5, Channel: 2}
	power := sort.Spike{Sample: 0, Channel: 2, Unit: FeatureKey(2, FeaturePower), Amplitude: 12.5}
	cross := sort.Spike{Sample: 0, Channel: 2, Unit: FeatureKey(2, 1), Amplitude: 3}
	for _, tc := range []struct {
		g                         Grouping
		spike, uns, power, crossg bool
	}{
		{ByUnit, true, false, false, false},
		{ByChannel, true, true, false, false},
		{ByUnitAndUnsorted, true, true, false, false},
		{ByFeatures, false, false, true, true},
		{ByCrossings, false, false, false, true},
		{ByPower, false, false, true, false},
		{ByUnitAndFeatures, true, false, true, true},
	} {
		for _, c := range []struct {
			s    sort.Spike
			want bool
		}{{spike, tc.spike}, {unsorted, tc.uns}, {power, tc.power}, {cross, tc.crossg}} {
			if _, ok := tc.g.Key(c.s); ok != c.want {
				t.Errorf("%s: Key(%+v) counts %v, want %v", tc.g, c.s, ok, c.want)
			}
		}
		if err := tc.g.valid(); err != nil {
			t.Error(err)
		}
	}
	if w := ByFeatures.weight(power); w != 12.5 {
		t.Errorf("power weight %g", w)
	}
	if w := ByUnitAndFeatures.weight(spike); w != 1 {
		t.Errorf("spike weight %g", w)
	}
	if ch, kind, ok := FeatureOf(FeatureKey(1000, 3)); !ok || ch != 1000 || kind != 3 {
		t.Errorf("FeatureOf: %d %d %v", ch, kind, ok)
	}
}

// featureStream makes nb bins of features on channels channels whose
// crossings and power follow a behaviour value v (returned per bin).
func featureStream(rng *rand.Rand, nb, channels int) ([]device.Features, []float64) {
	var out []device.Features
	var v []float64
	x := 0.0
	for range nb {
		x = 0.95*x + 0.3*rng.NormFloat64()
		v = append(v, x)
		f := device.Features{BinSamples: 600, Levels: 2, CountBits: 4, Channels: channels}
		for c := range channels {
			gain := float64(c%3) - 1
			p := 200 * math.Exp(0.3*gain*x+0.1*rng.NormFloat64())
			f.Power = append(f.Power, device.PowerCode(uint64(p)))
		}
		for l := range 2 {
			for c := range channels {
				rate := math.Max(0, 1.5+float64(c%3-1)*x) / float64(l+1)
				n := 0
				for range 10 {
					if rng.Float64() < rate/10 {
						n++
					}
				}
				f.Counts = append(f.Counts, uint8(n))
			}
		}
		out = append(out, f)
	}
	return out, v
}

// TestFeatureDecoding fits a Wiener filter on features read back from a
// file of feature frames (with a gap), checks that it decodes, and that
// Online run on the feature records agrees with Predict bin for bin.
func TestFeatureDecoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const C, nb = 6, 3000
	bins, v := featureStream(rng, nb, C)
	var file []byte
	beh := &Behaviour{Names: []string{"v"}}
	for i, f := range bins {
		start := uint64(600 * (i + 10))
		if err := beh.Append(start+300, []float64{v[i]}); err != nil {
			t.Fatal(err)
		}
		if i >= 1000 && i < 1005 {
			continue // lost on the link
		}
		file = device.AppendFeatures(file, start, 30000, 0.195, &f, 0)
	}
	path := filepath.Join(t.TempDir(), "f.spkw")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	ff, err := ReadFeatures(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if ff.Channels != C || ff.BinSamples != 600 || len(ff.Gaps) != 1 || ff.Gaps[0] != (Gap{Start: 600 * 1010, End: 600 * 1015}) {
		t.Fatalf("read %+v", ff)
	}
	if keys := ff.Keys(ByFeatures); len(keys) != 3*C {
		t.Fatalf("%d feature keys, want %d", len(keys), 3*C)
	}
	ds, err := NewDataset(ff.Records, beh, ByFeatures, nil, 30000, 600, ff.Gaps)
	if err != nil {
		t.Fatal(err)
	}
	split := ds.SplitRow(0.7)
	m, err := Fit(ds, split, FitConfig{Lags: 3})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Evaluate(m, ds, split)
	if err != nil {
		t.Fatal(err)
	}
	if ev.MeanR2 < 0.5 {
		t.Errorf("R² %.3f on features that follow the behaviour", ev.MeanR2)
	}
	// Online on the same records, bin by bin.
	want, deg, err := m.Predict(ds.Bins)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOnline(m, ds.Bins.Start(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range ff.Gaps {
		o.MarkGap(g)
	}
	var got []float64
	var ests []Estimate
	recs := slices.Clone(ff.Records)
	for i := 0; i < len(recs); {
		j := i
		for j < len(recs) && recs[j].Sample == recs[i].Sample {
			j++
		}
		o.Add(recs[i:j])
		ests = o.Advance(recs[i].Sample+600, ests[:0])
		for _, e := range ests {
			got = append(got, e.Values...)
		}
		i = j
	}
	n := min(len(got), len(want))
	if n < nb-20 {
		t.Fatalf("online decoded %d bins", n)
	}
	for i := 0; i < n; i++ {
		if deg[i] {
			continue
		}
		if math.Abs(got[i]-want[i]) > 1e-9*(1+math.Abs(want[i])) {
			t.Fatalf("bin %d: online %g, predict %g", i, got[i], want[i])
		}
	}
	if st := o.Stats(); st.Unknown != 0 || st.Late != 0 {
		t.Fatalf("online stats %+v", st)
	}
}
