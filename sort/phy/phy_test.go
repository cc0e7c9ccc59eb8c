package phy

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/quality"
)

func readNPY[T Elem](t *testing.T, dir, name string) ([]int, []T) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, data, err := ReadNPY[T](f, name)
	if err != nil {
		t.Fatal(err)
	}
	return h.Shape, data
}

// testSorting is 3 units on a 4-channel recording at 30 kHz: unit 5 on
// channel 1 (regular, good), unit 9 on channel 1 (bursting under the
// refractory period, mua), unit 12 on channel 3 with no template.
func testSorting() ([]sort.Spike, []sort.Template) {
	var spikes []sort.Spike
	for i := range 60 {
		spikes = append(spikes, sort.Spike{Sample: uint64(1000 + 3000*i), Channel: 1, Unit: 5, Amplitude: -80})
		spikes = append(spikes, sort.Spike{Sample: uint64(1500 + 3000*(i/2) + 20*(i%2)), Channel: 1, Unit: 9, Amplitude: -50})
	}
	spikes = append(spikes, sort.Spike{Sample: 7, Channel: 3, Unit: 12, Amplitude: -30})
	spikes = append(spikes, sort.Spike{Sample: 8, Channel: 0, Unit: 0, Amplitude: -30}) // unsorted: left out
	slices.Reverse(spikes)                                                              // Write must sort
	templates := []sort.Template{
		{Unit: 5, Channel: 1, Pre: 2, Waveform: []float32{0, -10, -80, 20, 5}, PeakUV: -80},
		{Unit: 9, Channel: 1, Pre: 1, Waveform: []float32{-5, -50, 10}, PeakUV: -50},
	}
	return spikes, templates
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	spikes, templates := testSorting()
	rec := Recording{DatPath: "rec.dat", Channels: 4, Rate: 30000}
	clusters, err := Write(dir, rec, spikes, templates, []float32{10, 10, 10, 10}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(clusters) != 3 {
		t.Fatalf("clusters = %+v", clusters)
	}
	c5, c9, c12 := clusters[0], clusters[1], clusters[2]
	if c5.ID != 5 || c5.Label != quality.Good || c5.SNR != 8 || c5.NumSpikes != 60 || c5.Channel != 1 || c5.RPContamination != 0 {
		t.Errorf("unit 5: %+v", c5)
	}
	if c9.ID != 9 || c9.Label != quality.MUA || c9.RPViolations != 30 || c9.RPContamination != 1 {
		t.Errorf("unit 9: %+v", c9)
	}
	if c12.ID != 12 || c12.Channel != -1 || c12.Label != quality.MUA || c12.NumSpikes != 1 {
		t.Errorf("unit 12: %+v", c12)
	}

	shape, times := readNPY[int64](t, dir, "spike_times.npy")
	n := 121
	if !slices.Equal(shape, []int{n}) || !slices.IsSorted(times) || times[0] != 7 {
		t.Fatalf("spike_times shape %v sorted %v first %d", shape, slices.IsSorted(times), times[0])
	}
	_, cl := readNPY[int32](t, dir, "spike_clusters.npy")
	_, tm := readNPY[int32](t, dir, "spike_templates.npy")
	_, amp := readNPY[float32](t, dir, "amplitudes.npy")
	if len(cl) != n || len(tm) != n || len(amp) != n {
		t.Fatalf("lengths %d %d %d", len(cl), len(tm), len(amp))
	}
	if cl[0] != 12 || tm[0] != 2 || amp[0] != 30 {
		t.Errorf("first spike: cluster %d template %d amplitude %g", cl[0], tm[0], amp[0])
	}
	for i := range cl {
		want := map[int32]int32{5: 0, 9: 1, 12: 2}[cl[i]]
		if tm[i] != want {
			t.Fatalf("spike %d: cluster %d has template %d, want %d", i, cl[i], tm[i], want)
		}
	}

	shape, tmpl := readNPY[float32](t, dir, "templates.npy")
	// Pre = max(2, 1) = 2, post = max(2, 1) = 2: 5 samples.
	if !slices.Equal(shape, []int{3, 5, 4}) {
		t.Fatalf("templates shape %v", shape)
	}
	at := func(tpl, s, ch int) float32 { return tmpl[(tpl*5+s)*4+ch] }
	if at(0, 2, 1) != -80 || at(0, 3, 1) != 20 || at(1, 2, 1) != -50 || at(1, 1, 1) != -5 || at(1, 4, 1) != 0 || at(0, 2, 0) != 0 {
		t.Errorf("templates misplaced: %v", tmpl[:40])
	}
	for _, v := range tmpl[2*20:] {
		if v != 0 {
			t.Fatal("unit without template has a non-zero template")
		}
	}
	shape, sim := readNPY[float32](t, dir, "similar_templates.npy")
	if !slices.Equal(shape, []int{3, 3}) || sim[0] < 0.999 || sim[1] != sim[3] || sim[1] <= 0 || sim[2] != 0 {
		t.Errorf("similar_templates %v %v", shape, sim)
	}
	shape, cm := readNPY[int32](t, dir, "channel_map.npy")
	if !slices.Equal(shape, []int{4}) || !slices.Equal(cm, []int32{0, 1, 2, 3}) {
		t.Errorf("channel_map %v %v", shape, cm)
	}
	shape, pos := readNPY[float32](t, dir, "channel_positions.npy")
	if !slices.Equal(shape, []int{4, 2}) || pos[7] != 60 {
		t.Errorf("channel_positions %v %v", shape, pos)
	}
	shape, wm := readNPY[float64](t, dir, "whitening_mat_inv.npy")
	if !slices.Equal(shape, []int{4, 4}) || wm[0] != 1 || wm[1] != 0 || wm[15] != 1 {
		t.Errorf("whitening_mat_inv %v %v", shape, wm)
	}

	params, _ := os.ReadFile(filepath.Join(dir, "params.py"))
	abs, _ := filepath.Abs("rec.dat")
	for _, line := range []string{"dat_path = '" + abs + "'", "n_channels_dat = 4", "dtype = 'int16'", "offset = 0", "sample_rate = 30000.", "hp_filtered = False"} {
		if !strings.Contains(string(params), line+"\n") {
			t.Errorf("params.py lacks %q:\n%s", line, params)
		}
	}
	for name, want := range map[string]string{
		"cluster_group.tsv":            "cluster_id\tgroup\n5\tgood\n9\tmua\n12\tmua\n",
		"cluster_KSLabel.tsv":          "cluster_id\tKSLabel\n5\tgood\n9\tmua\n12\tmua\n",
		"cluster_ContamPct.tsv":        "cluster_id\tContamPct\n5\t0.0\n9\t100.0\n12\t100.0\n",
		"cluster_Amplitude.tsv":        "cluster_id\tAmplitude\n5\t80.0\n9\t50.0\n12\t30.0\n",
		"cluster_snr.tsv":              "cluster_id\tsnr\n5\t8.0\n9\t5.0\n12\t\n",
		"cluster_rp_violations.tsv":    "cluster_id\trp_violations\n5\t0\n9\t30\n12\t0\n",
		"cluster_rp_contamination.tsv": "cluster_id\trp_contamination\n5\t0.0\n9\t1.0\n12\t\n",
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, want %q (%v)", name, got, want, err)
		}
	}
	for _, name := range []string{"presence_ratio", "isi_violations_ratio", "isi_violations_count", "amplitude_cutoff", "amplitude_median"} {
		if _, err := os.Stat(filepath.Join(dir, "cluster_"+name+".tsv")); err != nil {
			t.Error(err)
		}
	}

	// Metrics given by the caller are written as given, and must cover
	// every unit.
	units, err := quality.Params{}.Sorting(spikes, templates, nil, 200000, 30000)
	if err != nil {
		t.Fatal(err)
	}
	units[0].Label = quality.MUA
	if clusters, err = Write(dir, rec, spikes, templates, nil, Options{Units: units}); err != nil || clusters[0].Label != quality.MUA {
		t.Errorf("given units: %v %+v", err, clusters[0])
	}
	if _, err := Write(dir, rec, spikes, templates, nil, Options{Units: units[:2]}); err == nil || !strings.Contains(err.Error(), "unit 12") {
		t.Errorf("units without unit 12: %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	spikes, templates := testSorting()
	if _, err := Write(dir, Recording{Channels: 0, Rate: 1}, spikes, templates, nil, Options{}); err == nil {
		t.Error("0 channels accepted")
	}
	if _, err := Write(dir, Recording{Channels: 2, Rate: 30000}, spikes, templates, nil, Options{}); err == nil || !strings.Contains(err.Error(), "channel 3") {
		t.Errorf("spike on channel 3 of 2: err = %v", err)
	}
	bad := []sort.Template{{Unit: 5, Channel: 1, Pre: 9, Waveform: []float32{1}}}
	if _, err := Write(dir, Recording{Channels: 4, Rate: 30000}, spikes, bad, nil, Options{}); err == nil {
		t.Error("template with Pre outside its waveform accepted")
	}
}

func TestParamsQuoting(t *testing.T) {
	p := Params(Recording{DatPath: "/data/it's\\here.dat", Channels: 2, Rate: 19531.25, HPFiltered: true, Dtype: "int16", Offset: 8})
	for _, line := range []string{`dat_path = '/data/it\'s\\here.dat'`, "sample_rate = 19531.25", "hp_filtered = True", "offset = 8"} {
		if !strings.Contains(p, line+"\n") {
			t.Errorf("params lacks %q:\n%s", line, p)
		}
	}
}

// numpyPython returns a Python interpreter with numpy, or skips.
func numpyPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import numpy").Run() == nil {
			return path
		}
	}
	t.Skip("no python3 with numpy (apt-get install python3-numpy)")
	return ""
}

// TestNumPyLoads loads the folder with numpy and checks what phylib's
// TemplateModel asserts on load.
func TestNumPyLoads(t *testing.T) {
	py := numpyPython(t)
	dir := t.TempDir()
	spikes, templates := testSorting()
	if _, err := Write(dir, Recording{DatPath: "rec.dat", Channels: 4, Rate: 30000}, spikes, templates, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, io, numpy as np
d = sys.argv[1]
ld = lambda n: np.load(d + '/' + n)
st = ld('spike_times.npy'); assert st.dtype == np.int64 and st.ndim == 1, st.dtype
assert np.all(np.diff(st) >= 0)
ns = st.shape[0]
sc = ld('spike_clusters.npy'); assert sc.shape == (ns,) and sc.dtype == np.int32
stt = ld('spike_templates.npy'); assert stt.shape == (ns,) and stt.dtype in (np.uint32, np.int32, np.int64)
a = ld('amplitudes.npy'); assert a.shape == (ns,) and a.dtype == np.float32
t = ld('templates.npy'); assert t.ndim == 3 and t.dtype == np.float32 and t.shape == (3, 5, 4), t.shape
assert t[0, 2, 1] == -80
cm = ld('channel_map.npy'); assert cm.dtype in (np.uint32, np.int32, np.int64) and cm.shape == (4,)
cp = ld('channel_positions.npy'); assert cp.shape == (4, 2)
assert len(set(map(tuple, cp))) == 4
sim = ld('similar_templates.npy'); assert sim.shape == (3, 3)
wm = ld('whitening_mat.npy'); assert wm.shape == (4, 4)
wmi = ld('whitening_mat_inv.npy'); assert np.allclose(wmi, np.linalg.inv(wm))
assert stt.max() < t.shape[0]
p = {}
exec(open(d + '/params.py').read(), {}, p)
assert p['n_channels_dat'] == 4 and p['sample_rate'] == 30000.0 and p['dtype'] == 'int16' and p['offset'] == 0 and p['hp_filtered'] is False
b = io.BytesIO(); np.save(b, np.array([1, -2, 3], dtype='<i8'))
sys.stdout.buffer.write(b.getvalue())
`
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy check failed: %v\n%s", err, out)
	}
	// numpy.save's bytes for the same array equal ours.
	var ours strings.Builder
	WriteNPY(&ours, []int{3}, []int64{1, -2, 3})
	if string(out) != ours.String() {
		t.Errorf("numpy.save wrote\n%q\nwe write\n%q", out, ours.String())
	}
}

// TestReadSortingNumPy reads a Kilosort-style folder written by numpy.
func TestReadSortingNumPy(t *testing.T) {
	py := numpyPython(t)
	dir := t.TempDir()
	script := `
import sys, numpy as np
d = sys.argv[1] + '/'
np.save(d + 'spike_times.npy', np.array([[5], [9], [300000]], dtype=np.uint64))
np.save(d + 'spike_clusters.npy', np.array([7, 0, 7], dtype=np.int32))
np.save(d + 'spike_templates.npy', np.array([1, 0, 1], dtype=np.uint32))
np.save(d + 'amplitudes.npy', np.array([20.5, 10, 30], dtype=np.float64))
t = np.zeros((2, 61, 4), dtype=np.float32); t[0, 30, 2] = -50; t[1, 30, 1] = -80
np.save(d + 'templates.npy', t)
np.save(d + 'channel_map.npy', np.arange(4, dtype=np.int32))
`
	if out, err := exec.Command(py, "-c", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	got, err := ReadSorting(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []sort.Spike{
		{Sample: 5, Unit: 8, Channel: 1, Amplitude: 20.5},
		{Sample: 9, Unit: 1, Channel: 2, Amplitude: 10},
		{Sample: 300000, Unit: 8, Channel: 1, Amplitude: 30},
	}
	if got.Shift != 1 || !slices.Equal(got.Spikes, want) {
		t.Fatalf("shift %d spikes %+v, want %+v", got.Shift, got.Spikes, want)
	}
}

// TestWriteFootprint: a template with probe geometry (Channels,
// Footprint) is written on every channel it spans, and is similar to a
// template of a neighbouring channel it overlaps.
func TestWriteFootprint(t *testing.T) {
	dir := t.TempDir()
	spikes := []sort.Spike{{Sample: 100, Channel: 1, Unit: 5, Amplitude: -80}, {Sample: 200, Channel: 2, Unit: 7, Amplitude: -40}}
	w5 := []float32{0, -80, 20}
	templates := []sort.Template{
		{Unit: 5, Channel: 1, Pre: 1, Waveform: w5, PeakUV: -80, Channels: []int32{1, 2}, Footprint: slices.Concat(w5, []float32{-5, -30, 8})},
		{Unit: 7, Channel: 2, Pre: 1, Waveform: []float32{-4, -40, 9}, PeakUV: -40},
	}
	rec := Recording{DatPath: "rec.dat", Channels: 4, Rate: 30000}
	if _, err := Write(dir, rec, spikes, templates, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	shape, tmpl := readNPY[float32](t, dir, "templates.npy")
	if !slices.Equal(shape, []int{2, 3, 4}) {
		t.Fatalf("templates shape %v", shape)
	}
	at := func(tpl, s, ch int) float32 { return tmpl[(tpl*3+s)*4+ch] }
	if at(0, 1, 1) != -80 || at(0, 1, 2) != -30 || at(0, 0, 2) != -5 || at(0, 1, 0) != 0 || at(1, 1, 2) != -40 || at(1, 1, 1) != 0 {
		t.Errorf("templates misplaced: %v", tmpl)
	}
	_, sim := readNPY[float32](t, dir, "similar_templates.npy")
	// Unit 7 is nearly unit 5's second channel, scaled: cosine ≈ |w5 on 2|/|w5|.
	want := float32(math.Sqrt((25 + 900 + 64) / (25 + 900 + 64 + 6400 + 400.0)))
	if math.Abs(float64(sim[1]-want)) > 0.01 || sim[1] != sim[2] {
		t.Errorf("similarity of units 5 and 7: %v, want %.3f", sim, want)
	}
	bad := slices.Clone(templates)
	bad[0].Footprint = w5
	if _, err := Write(dir, rec, spikes, bad, nil, Options{}); err == nil || !strings.Contains(err.Error(), "footprint") {
		t.Errorf("short footprint: %v", err)
	}
	bad[0].Channels, bad[0].Footprint = []int32{1, 9}, templates[0].Footprint
	if _, err := Write(dir, rec, spikes, bad, nil, Options{}); err == nil || !strings.Contains(err.Error(), "channel 9") {
		t.Errorf("footprint on channel 9 of 4: %v", err)
	}
}
