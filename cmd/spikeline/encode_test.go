package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/score"
)

// encodeRatio runs spikeline encode and returns the ratio of its last line.
func encodeRatio(t *testing.T, args ...string) (float64, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := realMain(append([]string{"encode"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("encode %v: exit %d: %s", args, code, stderr.String())
	}
	m := regexp.MustCompile(`(?m)^ratio=([0-9.]+) encode_mb_s=([0-9.]+)\n\z`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("encode %v: output does not end with ratio=R encode_mb_s=E:\n%s", args, stdout.String())
	}
	r, _ := strconv.ParseFloat(m[1], 64)
	return r, stdout.String()
}

// TestEncodeCommand encodes a simulated recording in every mode: the
// lossless file restores to the same bytes and runs through sort; the
// spike file sorts from its snippets; the feature file is tiny and sort
// sends the user to decode.
func TestEncodeCommand(t *testing.T) {
	rec := simRecording(t, 4, 20)
	dir := t.TempDir()
	lossless := filepath.Join(dir, "rec.spkw")
	r, _ := encodeRatio(t, "--meta", rec, "--mode", "lossless", "--out", lossless)
	if r < 1.5 || r > 4 {
		t.Errorf("lossless ratio %g", r)
	}
	// Restore: bit for bit.
	restored := filepath.Join(dir, "restored")
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"encode", "--restore", lossless, "--out", restored}, &stdout, &stderr); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, stderr.String())
	}
	a, _ := os.ReadFile(filepath.Join(rec, "recording.dat"))
	b, _ := os.ReadFile(filepath.Join(restored, "recording.dat"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("restored %d bytes differ from the %d recorded", len(b), len(a))
	}
	m1, _ := device.ReadMeta(filepath.Join(rec, "recording.json"))
	m2, err := device.ReadMeta(filepath.Join(restored, "recording.json"))
	if err != nil || m2.Channels != m1.Channels || m2.Rate != m1.Rate || m2.Gain != m1.Gain || m2.Samples != m1.Samples {
		t.Fatalf("restored sidecar %+v (%v), recorded %+v", m2, err, m1)
	}
	// A longer frame compresses better.
	r8, _ := encodeRatio(t, "--meta", rec, "--mode", "lossless", "--frame-ms", "8", "--out", filepath.Join(dir, "rec8.spkw"))
	if r8 <= r {
		t.Errorf("8 ms frames: ratio %g, 1 ms: %g", r8, r)
	}

	spikes := filepath.Join(dir, "spikes.spkw")
	rs, out := encodeRatio(t, "--meta", rec, "--mode", "spikes", "--out", spikes)
	if rs < 3 || !strings.Contains(out, "events=") {
		t.Errorf("spike mode: ratio %g:\n%s", rs, out)
	}
	features := filepath.Join(dir, "features.spkw")
	rf, out := encodeRatio(t, "--meta", rec, "--mode", "features", "--out", features)
	if rf < 50 || !strings.Contains(out, "bins=1000 of 600 samples, 4 threshold level(s), 2-bit counts") {
		t.Errorf("feature mode: ratio %g:\n%s", rf, out)
	}

	// sort reads the lossless file as the recording, and the spike file
	// from its snippets; both find the simulated units.
	gtf, _ := os.Open(filepath.Join(rec, "gt_spikes.csv"))
	gt, err := sort.ReadSpikesCSV(gtf, "gt_spikes.csv")
	gtf.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{lossless, spikes} {
		out := filepath.Join(dir, "sorted-"+filepath.Base(in))
		stdout.Reset()
		stderr.Reset()
		if code := realMain([]string{"sort", "--input", in, "--out", out, "--quiet"}, &stdout, &stderr); code != 0 {
			t.Fatalf("sort %s: exit %d: %s", in, code, stderr.String())
		}
		f, _ := os.Open(filepath.Join(out, "spikes.csv"))
		sorted, err := sort.ReadSpikesCSV(f, "spikes.csv")
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		c, err := score.Compare(gt, sorted, 30000, score.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := c.Summary(nil)
		t.Logf("sort %s: mean accuracy %.3f, %d of %d well detected", filepath.Base(in), s.AllMeanAccuracy, s.AllWellDetected, s.AllUnits)
		if s.AllMeanAccuracy < 0.5 {
			t.Errorf("sort %s: mean accuracy %.3f\n%s", in, s.AllMeanAccuracy, stdout.String())
		}
	}
	stdout.Reset()
	stderr.Reset()
	if code := realMain([]string{"sort", "--input", features, "--out", filepath.Join(dir, "f")}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "decode") {
		t.Errorf("sort of a feature file: exit %d, %s", code, stderr.String())
	}
	stderr.Reset()
	if code := realMain([]string{"encode", "--restore", spikes, "--out", filepath.Join(dir, "r2")}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "spike events, not samples") {
		t.Errorf("restore of a spike file: exit %d, %s", code, stderr.String())
	}
}

func TestEncodeCommandErrors(t *testing.T) {
	rec := simRecording(t, 2, 1)
	out := filepath.Join(t.TempDir(), "x.spkw")
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--meta", rec}, "--out is required"},
		{[]string{"--out", out}, "--meta is required"},
		{[]string{"--meta", rec, "--mode", "mp3", "--out", out}, "unknown mode"},
		{[]string{"--meta", rec, "--frame-ms", "0", "--out", out}, "--frame-ms"},
		{[]string{"--meta", rec, "--feature-thresholds", "3,4,5,6,7", "--out", out}, "at most 4 levels"},
		{[]string{"--meta", rec, "--feature-thresholds", "3,x", "--out", out}, "--feature-thresholds"},
		{[]string{"--meta", rec, "--count-bits", "6", "--out", out}, "--count-bits"},
		{[]string{"--meta", rec, "--threshold", "0", "--out", out}, "--threshold"},
		{[]string{"--restore", out, "--meta", rec, "--out", out}, "drop --meta"},
		{[]string{"--meta", rec, "--frame-ms", "1000", "--out", out}, ""},
	} {
		var stdout, stderr bytes.Buffer
		code := realMain(append([]string{"encode"}, tt.args...), &stdout, &stderr)
		if tt.msg == "" {
			if code != 0 {
				t.Errorf("encode %v: exit %d: %s", tt.args, code, stderr.String())
			}
			continue
		}
		if code != 2 || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("encode %v: exit %d, %q; want 2 and %q", tt.args, code, stderr.String(), tt.msg)
		}
	}
}
