package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/phy"
	"github.com/spikeline/spikeline/sort/quality"
	"github.com/spikeline/spikeline/sort/score"
)

// simRecording writes a short simulated recording and returns its
// directory.
func simRecording(t *testing.T, channels int, seconds float64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	cfg := sim.Config{Channels: channels, Seed: 11, MinUnits: 1, MaxUnits: 2, NoArtifacts: true}
	if err := sim.WriteRecording(context.Background(), dir, cfg, uint64(seconds*30000), nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSortCommand(t *testing.T) {
	rec := simRecording(t, 4, 20)
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"sort", "--meta", filepath.Join(rec, "recording.json"), "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "sorted 20.0 s of 4 channels") || !strings.Contains(stderr.String(), "100%") {
		t.Errorf("stdout %q\nstderr %q", stdout.String(), stderr.String())
	}

	// spikes.csv: header, sorted by sample, channels in range, and the
	// sorting agrees with the ground truth.
	f, err := os.Open(filepath.Join(out, "spikes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len(sort.SpikesHeader)+1)
	f.Read(head)
	f.Seek(0, 0)
	if string(head) != sort.SpikesHeader+"\n" {
		t.Errorf("spikes.csv starts %q", head)
	}
	spikes, err := sort.ReadSpikesCSV(f, "spikes.csv")
	f.Close()
	if err != nil || len(spikes) == 0 {
		t.Fatalf("spikes.csv: %d spikes, %v", len(spikes), err)
	}
	for i, s := range spikes {
		if s.Channel < 0 || s.Channel >= 4 || (i > 0 && s.Sample < spikes[i-1].Sample) {
			t.Fatalf("spike %d: %+v", i, s)
		}
	}
	gt, err := readSpikesFile(filepath.Join(rec, sim.SpikesFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := score.Compare(gt, spikes, 30000, score.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.WellDetected) == 0 {
		var b bytes.Buffer
		c.WriteReport(&b, nil)
		t.Errorf("no ground-truth unit well detected:\n%s", b.String())
	}

	// spikeline score on the result, SNR measured from the recording.
	var sout, serr bytes.Buffer
	if code := realMain([]string{"score", "--gt", filepath.Join(rec, sim.SpikesFile), "--sorted", filepath.Join(out, "spikes.csv"), "--meta", rec}, &sout, &serr); code != 0 {
		t.Fatalf("score: exit %d: %s", code, serr.String())
	}
	for _, want := range []string{"# SNR measured from", "mean_accuracy_snr5=", "well_detected_snr5="} {
		if !strings.Contains(sout.String(), want) {
			t.Errorf("score output lacks %q:\n%s", want, sout.String())
		}
	}

	// Scoring the Phy folder gives the same accuracy as spikes.csv.
	summaryLine := func(out string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "mean_accuracy_all=") {
				return l
			}
		}
		return ""
	}
	var pout bytes.Buffer
	if code := realMain([]string{"score", "--gt", filepath.Join(rec, sim.SpikesFile), "--sorted", filepath.Join(out, "phy"), "--rate", "30000"}, &pout, &serr); code != 0 {
		t.Fatalf("score phy: exit %d: %s", code, serr.String())
	}
	if a, b := summaryLine(sout.String()), summaryLine(pout.String()); a == "" || a != b {
		t.Errorf("spikes.csv scores %q, the Phy folder %q", a, b)
	}

	// The Phy folder is consistent with spikes.csv.
	pf, err := os.Open(filepath.Join(out, "phy", "spike_times.npy"))
	if err != nil {
		t.Fatal(err)
	}
	_, times, err := phy.ReadNPY[int64](pf, "spike_times.npy")
	pf.Close()
	sorted := 0
	for _, s := range spikes {
		if s.Unit != 0 {
			sorted++
		}
	}
	if err != nil || len(times) != sorted {
		t.Errorf("spike_times.npy: %d spikes (%v), spikes.csv has %d sorted", len(times), err, sorted)
	}
	params, _ := os.ReadFile(filepath.Join(out, "phy", "params.py"))
	if !strings.Contains(string(params), filepath.Join(rec, sim.DataFile)) || !strings.Contains(string(params), "n_channels_dat = 4") {
		t.Errorf("params.py:\n%s", params)
	}

	// summary.png is a real image.
	pngf, err := os.Open(filepath.Join(out, "summary.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer pngf.Close()
	cfg, err := png.DecodeConfig(pngf)
	if err != nil || cfg.Width < 300 || cfg.Height < 200 {
		t.Errorf("summary.png: %+v %v", cfg, err)
	}
	units, _ := os.ReadFile(filepath.Join(out, "units.csv"))
	if !strings.HasPrefix(string(units), quality.UnitsHeader+"\n") {
		t.Errorf("units.csv:\n%s", units)
	}
	// One row per sorted unit, with a label; the well-detected units of
	// this clean simulation are good; Phy gets Kilosort's label files.
	rows := strings.Split(strings.TrimSpace(string(units)), "\n")[1:]
	ids := map[int32]bool{}
	for _, s := range spikes {
		if s.Unit != 0 {
			ids[s.Unit] = true
		}
	}
	good := 0
	for _, r := range rows {
		if strings.HasSuffix(r, ",good") {
			good++
		} else if !strings.HasSuffix(r, ",mua") {
			t.Errorf("units.csv row without a label: %q", r)
		}
	}
	if len(rows) < len(ids) || good < len(c.WellDetected) {
		t.Errorf("units.csv: %d rows (%d units with spikes), %d good (%d units well detected):\n%s", len(rows), len(ids), good, len(c.WellDetected), units)
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("(%d units, %d good)", len(rows), good)) {
		t.Errorf("stdout does not report %d units, %d good: %q", len(rows), good, stdout.String())
	}
	kslabel, _ := os.ReadFile(filepath.Join(out, "phy", "cluster_KSLabel.tsv"))
	if n := strings.Count(string(kslabel), "\tgood\n"); !strings.HasPrefix(string(kslabel), "cluster_id\tKSLabel\n") || n != good {
		t.Errorf("cluster_KSLabel.tsv has %d good, units.csv %d:\n%s", n, good, kslabel)
	}
}

// TestSortCommandProbe: with --probe (channels 20 µm apart, so each one's
// neighbours are within the radius) the sorter runs with geometry: every
// unit is reported on one channel, its Phy template spans its
// neighbourhood, and the ground truth is still found.
func TestSortCommandProbe(t *testing.T) {
	rec := simRecording(t, 4, 20)
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"sort", "--meta", rec, "--probe", "linear:20", "--radius-um", "45", "--no-plot", "--quiet", "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	spikes, err := readSpikesFile(filepath.Join(out, "spikes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	main := map[int32]int32{}
	for _, s := range spikes {
		if s.Unit == 0 {
			continue
		}
		if c, ok := main[s.Unit]; ok && c != s.Channel {
			t.Fatalf("unit %d reported on channels %d and %d", s.Unit, c, s.Channel)
		}
		main[s.Unit] = s.Channel
	}
	gt, err := readSpikesFile(filepath.Join(rec, sim.SpikesFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := score.Compare(gt, spikes, 30000, score.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.WellDetected) == 0 {
		var b bytes.Buffer
		c.WriteReport(&b, nil)
		t.Errorf("no ground-truth unit well detected:\n%s", b.String())
	}
	f, err := os.Open(filepath.Join(out, "phy", "templates.npy"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, tm, err := phy.ReadNPY[float32](f, "templates.npy")
	if err != nil || len(h.Shape) != 3 || h.Shape[2] != 4 {
		t.Fatalf("templates.npy: %v %v", h.Shape, err)
	}
	wide := 0
	for k := range h.Shape[0] {
		on := 0
		for ch := range 4 {
			for i := range h.Shape[1] {
				if tm[(k*h.Shape[1]+i)*4+ch] != 0 {
					on++
					break
				}
			}
		}
		if on > 1 {
			wide++
		}
	}
	if wide == 0 {
		t.Errorf("no template of %d spans more than one channel", h.Shape[0])
	}
}

func TestSortCommandErrors(t *testing.T) {
	dir := t.TempDir()
	// 3 channels * 2 bytes = 6 bytes a sample; 13 bytes is 2 samples and 1 byte.
	odd := writeFile(t, dir, "odd.dat", "0123456789abc")
	good := writeFile(t, dir, "good.dat", strings.Repeat("\x00", 600))
	meta := writeFile(t, dir, "recording.json", `{"n_channels": 3, "sample_rate": 30000, "gain_uv_per_bit": 0.195, "data_file": "good.dat"}`)
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no out", []string{"--input", good, "--channels", "3", "--rate", "30000", "--gain", "0.195"}, 2, "--out is required"},
		{"no input", []string{"--out", out}, 2, "give --input"},
		{"no channels", []string{"--input", good, "--rate", "30000", "--gain", "0.195", "--out", out}, 2, "--channels"},
		{"meta and channels", []string{"--meta", meta, "--channels", "3", "--out", out}, 2, "do not also pass"},
		{"bad band", []string{"--meta", meta, "--band", "6000-300", "--out", out}, 2, "--band"},
		{"bad reference", []string{"--meta", meta, "--reference", "mean", "--out", out}, 2, "--reference"},
		{"bad passes", []string{"--meta", meta, "--passes", "3", "--out", out}, 2, "--passes"},
		{"negative learn pass", []string{"--meta", meta, "--learn-pass", "-1", "--out", out}, 2, "--learn-pass -1"},
		{"NaN learn pass", []string{"--meta", meta, "--learn-pass", "NaN", "--out", out}, 2, "--learn-pass NaN"},
		{"positions count", []string{"--meta", meta, "--positions", writeFile(t, dir, "probe.csv", "x,y\n0,0\n0,20\n"), "--out", out}, 2, "probe.csv: 2 channels, the recording has 3"},
		{"probe count", []string{"--meta", meta, "--probe", writeFile(t, dir, "probe4.csv", "channel,x_um,y_um\n0,0,0\n1,0,20\n2,0,40\n3,0,60\n"), "--out", out}, 2, "probe4.csv: 4 channels, the recording has 3"},
		{"probe duplicate", []string{"--meta", meta, "--probe", writeFile(t, dir, "dup.csv", "channel,x_um,y_um\n0,0,0\n1,0,20\n1,0,40\n"), "--out", out}, 2, "dup.csv:4"},
		{"probe not a number", []string{"--meta", meta, "--probe", writeFile(t, dir, "nan.csv", "channel,x_um,y_um\n0,0,0\n1,zero,20\n2,0,40\n"), "--out", out}, 2, "nan.csv:3"},
		{"probe builtin", []string{"--meta", meta, "--probe", "neuropixels1", "--out", out}, 2, "384 channels"},
		{"probe and positions", []string{"--meta", meta, "--probe", "linear", "--positions", "linear", "--out", out}, 2, "give one layout"},
		{"radius without probe", []string{"--meta", meta, "--radius-um", "30", "--out", out}, 2, "--radius-um needs --probe"},
		{"negative radius", []string{"--meta", meta, "--probe", "linear", "--radius-um", "-3", "--out", out}, 2, "--radius-um -3"},
		{"band above nyquist", []string{"--meta", meta, "--band", "14000-20000", "--out", out}, 2, "Nyquist"},
		{"partial sample", []string{"--input", odd, "--channels", "3", "--rate", "30000", "--gain", "0.195", "--out", out}, 1, "odd.dat"},
		{"missing file", []string{"--input", filepath.Join(dir, "none.dat"), "--channels", "3", "--rate", "30000", "--gain", "0.195", "--out", out}, 1, "none.dat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(append([]string{"sort"}, tt.args...), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tt.code, tt.msg)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("refused runs created %s", out)
	}
	// The partial-sample error names the byte offset.
	var stdout, stderr bytes.Buffer
	realMain([]string{"sort", "--input", odd, "--channels", "3", "--rate", "30000", "--gain", "0.195", "--out", out}, &stdout, &stderr)
	if !strings.Contains(stderr.String(), "12") {
		t.Errorf("partial sample error lacks the offset: %s", stderr.String())
	}
}

// TestSortCommandDeterministic: the offline sort gives the same spikes on
// every run (learning runs inside the passes, not beside them), whether
// pass 1 reads the whole file or only --learn-pass seconds.
func TestSortCommandDeterministic(t *testing.T) {
	rec := simRecording(t, 4, 20)
	sortOnce := func(extra ...string) []byte {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		var stdout, stderr bytes.Buffer
		args := append([]string{"sort", "--meta", rec, "--out", out, "--no-phy", "--no-plot", "--quiet"}, extra...)
		if code := realMain(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
		}
		b, err := os.ReadFile(filepath.Join(out, "spikes.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := sortOnce(), sortOnce("--workers", "1")
	if !bytes.Equal(a, b) {
		t.Errorf("two runs of the same sort differ (%d and %d bytes of spikes.csv)", len(a), len(b))
	}
	// A learning pass longer than the file is the whole file.
	if long := sortOnce("--learn-pass", "1000"); !bytes.Equal(a, long) {
		t.Errorf("--learn-pass 1000 on a 20 s file differs from the default (whole file)")
	}
	short := sortOnce("--learn-pass", "13")
	spikes, err := sort.ReadSpikesCSV(bytes.NewReader(short), "spikes.csv")
	if err != nil {
		t.Fatal(err)
	}
	sorted := 0
	for _, s := range spikes {
		if s.Unit != 0 {
			sorted++
		}
	}
	if sorted == 0 {
		t.Errorf("--learn-pass 13: none of %d spikes sorted", len(spikes))
	}
}

func TestSortCommandSilentRecording(t *testing.T) {
	// All zeros: no spikes, still a complete output.
	dir := t.TempDir()
	raw := writeFile(t, dir, "zero.dat", strings.Repeat("\x00", 2*2*30000))
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"sort", "--input", raw, "--channels", "2", "--rate", "30000", "--gain", "0.195", "--out", out, "--quiet"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, name := range []string{"spikes.csv", "units.csv", "summary.png", "phy/params.py", "phy/templates.npy"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(stdout.String(), "spikes=0") {
		t.Errorf("stdout %q", stdout.String())
	}
}

// readSpikesFile reads a spikes CSV file (sort.ReadSpikesCSV).
func readSpikesFile(path string) ([]sort.Spike, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return sort.ReadSpikesCSV(f, path)
}
