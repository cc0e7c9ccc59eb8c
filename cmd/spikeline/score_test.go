package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScoreCommand(t *testing.T) {
	dir := t.TempDir()
	var gt, so strings.Builder
	gt.WriteString("unit_id,sample_index,channel\n")
	so.WriteString("unit_id,sample_index,channel,amplitude_uv\n")
	for i := range 100 {
		s := 1000 + 3000*i
		gt.WriteString("1," + strconv.Itoa(s) + ",0\n")
		gt.WriteString("2," + strconv.Itoa(s+1500) + ",1\n")
		so.WriteString("7," + strconv.Itoa(s+3) + ",0,-80.00\n") // unit 1 found perfectly
		if i%2 == 0 {
			so.WriteString("8," + strconv.Itoa(s+1500) + ",1,-40.00\n") // half of unit 2
		}
	}
	gtPath := writeFile(t, dir, "gt.csv", gt.String())
	soPath := writeFile(t, dir, "spikes.csv", so.String())
	units := writeFile(t, dir, "units.csv", "unit_id,channel,snr\n1,0,9.5\n2,1,4\n")

	var out, errb bytes.Buffer
	code := realMain([]string{"score", "--gt", gtPath, "--sorted", soPath, "--units", units, "--rate", "30000"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"mean_accuracy_snr5=1.000\n", "well_detected_snr5=1/1\n", "well_detected_all=1/2\n", "mean_accuracy_all=0.750\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// JSON.
	out.Reset()
	if code := realMain([]string{"score", "--gt", gtPath, "--sorted", soPath, "--units", units, "--rate", "30000", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errb.String())
	}
	var js struct {
		Summary struct {
			MeanAccuracy float64 `json:"mean_accuracy"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(out.Bytes(), &js); err != nil || js.Summary.MeanAccuracy != 1 {
		t.Errorf("--json: %v %+v\n%s", err, js, out.String())
	}

	// The rate from a sidecar.
	meta := writeFile(t, dir, "recording.json", `{"n_channels": 2, "sample_rate": 30000, "gain_uv_per_bit": 0.195}`)
	out.Reset()
	if code := realMain([]string{"score", "--gt", gtPath, "--sorted", soPath, "--meta", meta}, &out, &errb); code != 0 {
		t.Fatalf("--meta: exit %d: %s", code, errb.String())
	}

	// Geometry: unit 1 reported on channel 1, 400 µm from its own, is a
	// detection by time alone and none within 50 µm.
	far := writeFile(t, dir, "far.csv", strings.ReplaceAll(so.String(), ",0,-80.00", ",1,-80.00"))
	pos := writeFile(t, dir, "probe.csv", "channel,x_um,y_um\n0,0,0\n1,0,400\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "mean_accuracy_snr5=1.000\n"},
		{[]string{"--positions", pos}, "mean_accuracy_snr5=0.000\n"},
		{[]string{"--positions", pos, "--radius-um", "500"}, "mean_accuracy_snr5=1.000\n"},
		{[]string{"--positions", "linear:400", "--meta", meta}, "mean_accuracy_snr5=0.000\n"},
	} {
		out.Reset()
		args := append([]string{"score", "--gt", gtPath, "--sorted", far, "--units", units}, tt.args...)
		if !slices.Contains(tt.args, "--meta") {
			args = append(args, "--rate", "30000")
		}
		if code := realMain(args, &out, &errb); code != 0 || !strings.Contains(out.String(), tt.want) {
			t.Errorf("%v: exit %d (%s), want %q in\n%s", tt.args, code, errb.String(), tt.want, out.String())
		}
	}
}

func TestScoreCommandErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.csv", "unit_id,sample_index\n1,10\n")
	bad := writeFile(t, dir, "bad.csv", "unit_id,sample_index\n1,10\n1,ten\n")
	badUnits := writeFile(t, dir, "units.csv", "unit_id,snr\n1,high\n")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no gt", []string{"--sorted", good, "--rate", "1"}, 2, "--gt is required"},
		{"no rate", []string{"--gt", good, "--sorted", good}, 2, "--rate or --meta"},
		{"bad flag", []string{"--gt", good, "--sorted", good, "--rate", "x"}, 2, "invalid value"},
		{"bad delta", []string{"--gt", good, "--sorted", good, "--rate", "1", "--delta", "-1"}, 2, "--delta"},
		{"bad csv", []string{"--gt", good, "--sorted", bad, "--rate", "30000"}, 1, "bad.csv:3"},
		{"bad units", []string{"--gt", good, "--sorted", good, "--units", badUnits, "--rate", "30000"}, 1, "units.csv:2: snr"},
		{"radius alone", []string{"--gt", good, "--sorted", good, "--rate", "1", "--radius-um", "30"}, 2, "--radius-um needs --positions"},
		{"bad positions", []string{"--gt", good, "--sorted", good, "--rate", "1", "--positions", writeFile(t, dir, "p.csv", "x,y\n0,0\n0,0\n")}, 2, "p.csv:3: channels 0 and 1 share position"},
		{"built-in without meta", []string{"--gt", good, "--sorted", good, "--rate", "1", "--positions", "linear"}, 2, "--positions"},
		{"channel off the probe", []string{"--gt", writeFile(t, dir, "gt3.csv", "unit_id,sample_index,channel\n1,10,3\n"), "--sorted", good, "--rate", "30000", "--positions", writeFile(t, dir, "p2.csv", "x,y\n0,0\n0,20\n")}, 1, "channel 3, the probe has 2"},
		{"missing file", []string{"--gt", filepath.Join(dir, "nope.csv"), "--sorted", good, "--rate", "30000"}, 1, "nope.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := realMain(append([]string{"score"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errb.String(), tt.code, tt.msg)
			}
		})
	}
}
