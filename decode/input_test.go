package decode

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

func TestBinSpikesAlignmentAndGaps(t *testing.T) {
	spikes := []sort.Spike{
		{Sample: 599, Unit: 2}, {Sample: 600, Unit: 2}, {Sample: 601, Unit: 7}, {Sample: 1199, Unit: 7},
		{Sample: 1300, Unit: 0, Channel: 3}, // unsorted: channel mode only
		{Sample: 2500, Unit: 2, Channel: 1},
		{Sample: 9000, Unit: 2}, // outside [start, end)
	}
	// Range starts mid-bin: bin 0 (0..600) is only partly inside.
	b, err := BinSpikes(spikes, ByUnit, nil, 30000, 600, 300, 3000, []Gap{{1800, 1801}})
	if err != nil {
		t.Fatal(err)
	}
	if b.First != 0 || b.Len() != 5 || !slices.Equal(b.Keys, []int32{2, 7}) {
		t.Fatalf("First %d Len %d Keys %v", b.First, b.Len(), b.Keys)
	}
	wantObs := []bool{false, true, true, false, true}
	if !slices.Equal(b.Observed, wantObs) {
		t.Errorf("Observed %v, want %v", b.Observed, wantObs)
	}
	wantCounts := []float64{1, 0, 1, 2, 0, 0, 0, 0, 1, 0}
	if !slices.Equal(b.Counts, wantCounts) {
		t.Errorf("Counts %v, want %v", b.Counts, wantCounts)
	}
	if b.Start(1) != 600 || b.End(1) != 1200 {
		t.Errorf("bin 1 = [%d, %d)", b.Start(1), b.End(1))
	}
	c, err := BinSpikes(spikes, ByChannel, nil, 30000, 600, 0, 3000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Keys, []int32{0, 1, 3}) || c.Row(2)[2] != 1 {
		t.Errorf("threshold-crossing keys %v row 2 %v", c.Keys, c.Row(2))
	}
	if _, err := BinSpikes(spikes, "tetrode", nil, 30000, 600, 0, 3000, nil); err == nil {
		t.Error("unknown grouping accepted")
	}
	if _, err := BinSpikes(spikes, ByUnit, nil, 30000, 600, 0, 1<<50, nil); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("2^50 samples: %v", err)
	}
	if _, err := BinSpikes(spikes, ByUnit, []int32{2, 2}, 30000, 600, 0, 3000, nil); err == nil {
		t.Error("duplicate key accepted")
	}
}

func TestBehaviourBin(t *testing.T) {
	// 1 kHz behaviour (30 samples apart) averaged into 600-sample bins.
	fast := &Behaviour{Names: []string{"vx"}}
	for s := uint64(0); s < 3000; s += 30 {
		fast.Append(s, []float64{float64(s)})
	}
	v, obs := fast.Bin(600, 0, 6)
	if !slices.Equal(obs, []bool{true, true, true, true, true, false}) {
		t.Errorf("observed %v", obs)
	}
	for k := range 5 {
		want := float64(600*k) + 285 // mean of 600k, 600k+30, …, 600k+570
		if v[k] != want {
			t.Errorf("bin %d = %v, want %v", k, v[k], want)
		}
	}
	// 10 Hz behaviour (3000 samples apart): bins between samples are
	// interpolated at their centre; beyond the last sample they are not.
	slow := &Behaviour{Names: []string{"vx", "vy"}}
	for s := uint64(0); s <= 9000; s += 3000 {
		slow.Append(s, []float64{float64(s), -1})
	}
	slow.Append(30000, []float64{0, 0}) // after a long pause: no interpolation across it
	v, obs = slow.Bin(600, 0, 30)
	if !obs[2] || math.Abs(v[2*2]-1500) > 1e-9 || v[2*2+1] != -1 {
		t.Errorf("bin 2 = %v (observed %v), want interpolated 1500, -1", v[4:6], obs[2])
	}
	if obs[20] {
		t.Errorf("bin 20, 21000 samples from the nearest behaviour, observed")
	}
}

func TestReadBehaviourCSV(t *testing.T) {
	b, err := ReadBehaviourCSV(strings.NewReader("# comment\nsample_index, vx ,vy\n0,1,2\n 30 ,3.5,-4e-1\n"), "b.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Names, []string{"vx", "vy"}) || !slices.Equal(b.Samples, []uint64{0, 30}) || !slices.Equal(b.Values, []float64{1, 2, 3.5, -0.4}) {
		t.Errorf("got %+v", b)
	}
	for _, c := range []struct {
		in   string
		line int
		msg  string
	}{
		{"", 1, "header"},
		{"time,vx\n0,1\n", 1, "sample_index"},
		{"sample_index\n0\n", 1, "sample_index,<output>"},
		{"sample_index,vx,vx\n", 1, `"vx" twice`},
		{"sample_index,vx,\n", 1, "no name"},
		{"sample_index,vx\n", 2, "no behaviour rows"},
		{"sample_index,vx\n0,1\n1,2,3\n", 3, "3 fields"},
		{"sample_index,vx\n0,1\n-5,2\n", 3, "sample_index"},
		{"sample_index,vx\n0,1\n5,abc\n", 3, "vx"},
		{"sample_index,vx\n0,1\n\n\n9,NaN\n", 5, "NaN"},
		{"sample_index,vx\n10,1\n5,1\n", 3, "does not follow"},
		{"sample_index,vx\n0,\"1\n", 2, "quote"},
	} {
		_, err := ReadBehaviourCSV(strings.NewReader(c.in), "b.csv")
		var ce *CSVError
		if !errors.As(err, &ce) {
			t.Errorf("%q: error %v, want a *CSVError", c.in, err)
			continue
		}
		if ce.Line != c.line || ce.Name != "b.csv" || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: %v (line %d), want line %d mentioning %q", c.in, err, ce.Line, c.line, c.msg)
		}
	}
}

func TestReadGapsCSV(t *testing.T) {
	g, err := ReadGapsCSV(strings.NewReader("start_sample,end_sample\n10,20\n100,3000\n"), "g.csv")
	if err != nil || !slices.Equal(g, []Gap{{10, 20}, {100, 3000}}) {
		t.Fatalf("got %v, %v", g, err)
	}
	for in, line := range map[string]int{"": 1, "a,b\n": 1, "start_sample,end_sample\n5,5\n": 2, "start_sample,end_sample\n1,2\nx,9\n": 3} {
		var ce *CSVError
		if _, err := ReadGapsCSV(strings.NewReader(in), "g.csv"); !errors.As(err, &ce) || ce.Line != line {
			t.Errorf("%q: %v, want line %d", in, err, line)
		}
	}
}

func TestModelRoundTripAndErrors(t *testing.T) {
	for _, kind := range []Kind{Wiener, Kalman} {
		m := syntheticModel(kind, 5, 2, 3)
		path := filepath.Join(t.TempDir(), "m.json")
		if err := m.Save(path); err != nil {
			t.Fatal(err)
		}
		m2, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(m)
		b, _ := json.Marshal(m2)
		if string(a) != string(b) {
			t.Errorf("%s: model changed in a round trip", kind)
		}
	}
	good, _ := json.Marshal(syntheticModel(Wiener, 3, 2, 2))
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for name, c := range map[string]struct {
		in  []byte
		msg string
	}{
		"syntax":   {[]byte(`{"format": "spikeline-decoder",`), "byte offset"},
		"format":   {edit(func(m map[string]any) { m["format"] = "other" }), "format"},
		"version":  {edit(func(m map[string]any) { m["version"] = 2 }), "version 2"},
		"kind":     {edit(func(m map[string]any) { m["kind"] = "svm" }), "kind"},
		"units":    {edit(func(m map[string]any) { m["units"] = []int{3, 1, 2} }), "ascending"},
		"std":      {edit(func(m map[string]any) { m["std"] = []float64{1, 0, 1} }), "std 0"},
		"lags":     {edit(func(m map[string]any) { m["lags"] = 3 }), "2 lags, want 3"},
		"weights":  {edit(func(m map[string]any) { m["wiener"].(map[string]any)["intercept"] = []float64{1} }), "intercept"},
		"no-param": {edit(func(m map[string]any) { delete(m, "wiener") }), "without"},
		"bin":      {edit(func(m map[string]any) { m["bin_samples"] = 0 }), "bin_samples"},
	} {
		_, err := ParseModel(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, c.msg)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzReadBehaviourCSV(f *testing.F) {
	f.Add("sample_index,vx,vy\n0,1,2\n30,3,4\n")
	f.Add("sample_index,vx\n0,1e308\n1,-0\n")
	f.Add("sample_index,vx\n\"0\",1\n")
	f.Fuzz(func(t *testing.T, in string) {
		b, err := ReadBehaviourCSV(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			var ce *CSVError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CSVError", err)
			}
			return
		}
		if len(b.Values) != b.Len()*len(b.Names) || !slices.IsSorted(b.Samples) {
			t.Fatalf("inconsistent behaviour %+v", b)
		}
		b.Bin(600, 0, 4)
	})
}

// FuzzReadGapsCSV: the --gaps reader never panics and returns *CSVErrors.
func FuzzReadGapsCSV(f *testing.F) {
	f.Add("start_sample,end_sample\n100,200\n# note\n300,310\n")
	f.Add("start_sample,end_sample\n5,1\n")
	f.Fuzz(func(t *testing.T, in string) {
		gaps, err := ReadGapsCSV(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			var ce *CSVError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CSVError", err)
			}
			return
		}
		if len(gaps) > strings.Count(in, "\n")+1 {
			t.Fatalf("%d gaps from %d lines", len(gaps), strings.Count(in, "\n")+1)
		}
	})
}

func FuzzParseModel(f *testing.F) {
	for _, k := range []Kind{Wiener, Kalman} {
		b, _ := json.Marshal(syntheticModel(k, 3, 2, 2))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseModel(in)
		if err != nil {
			return
		}
		// A model that validates must run without panicking.
		o, err := NewOnline(m, 0)
		if err != nil {
			t.Fatal(err)
		}
		o.Add([]sort.Spike{{Sample: 1, Unit: m.Keys[0], Channel: m.Keys[0]}})
		if e := o.Advance(m.BinSamples*uint64(m.Lags+1), nil); len(e) != m.Lags+1 {
			t.Fatalf("%d estimates", len(e))
		}
	})
}

func TestFitRefusals(t *testing.T) {
	keys := make([]int32, 500)
	for i := range keys {
		keys[i] = int32(i + 1)
	}
	beh := &Behaviour{Names: []string{"vx", "vy"}}
	for k := range 200 {
		beh.Append(uint64(k)*600, []float64{float64(k % 7), float64(k % 3)})
	}
	ds, err := NewDataset([]sort.Spike{{Sample: 5, Unit: 1}}, beh, ByUnit, keys, 30000, 600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fit(ds, 150, FitConfig{}); err == nil || !strings.Contains(err.Error(), "5000 features") {
		t.Errorf("500 units × 10 lags: %v", err)
	}
	for i := range 200 {
		ds.Behaviour[i*2+1] = 1
	}
	if _, err := Fit(ds, 150, FitConfig{Lags: 1}); err == nil || !strings.Contains(err.Error(), `output "vy" is constant`) {
		t.Errorf("constant output: %v", err)
	}
	if _, err := Fit(ds, 150, FitConfig{Kind: "svm"}); err == nil {
		t.Error("kind svm accepted")
	}
	if _, err := Fit(ds, 0, FitConfig{}); err == nil {
		t.Error("empty training part accepted")
	}
}
