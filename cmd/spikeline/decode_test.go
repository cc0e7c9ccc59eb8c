package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sim"
)

// decodeSimRecording writes a short simulated recording (ground truth only is
// used here) and returns its directory.
func decodeSimRecording(t *testing.T, seconds float64) string {
	t.Helper()
	dir := t.TempDir()
	cfg := sim.Config{Channels: 8, Seed: 3, MinUnits: 2, MaxUnits: 3}
	if err := sim.WriteRecording(context.Background(), dir, cfg, uint64(seconds*30000), nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestDecodeCommand(t *testing.T) {
	rec := decodeSimRecording(t, 90)
	spikes := filepath.Join(rec, sim.SpikesFile)
	beh := filepath.Join(rec, sim.BehaviourFile)
	meta := filepath.Join(rec, sim.MetaFile)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		fit  []string
	}{
		{"wiener", []string{"--model", "wiener", "--meta", meta}},
		{"kalman", []string{"--model", "kalman", "--steady", "--state", "position-velocity"}},
		{"crossings", []string{"--threshold-crossings", "--lags", "5", "--bin-ms", "25"}},
	} {
		model := filepath.Join(dir, c.name+".json")
		var out, errb bytes.Buffer
		args := append([]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh, "--out", model}, c.fit...)
		if code := realMain(args, &out, &errb); code != 0 {
			t.Fatalf("%s fit: exit %d: %s", c.name, code, errb.String())
		}
		t.Logf("%s fit:\n%s", c.name, out.String())
		out.Reset()
		plot := filepath.Join(dir, c.name+".png")
		if code := realMain([]string{"decode", "eval", "--model", model, "--spikes", spikes, "--behaviour", beh, "--plot", plot}, &out, &errb); code != 0 {
			t.Fatalf("%s eval: exit %d: %s", c.name, code, errb.String())
		}
		t.Logf("%s eval:\n%s", c.name, out.String())
		last := lastLine(out.String())
		r2, err := strconv.ParseFloat(strings.TrimPrefix(last, "mean_r2="), 64)
		if !strings.HasPrefix(last, "mean_r2=") || err != nil {
			t.Fatalf("%s eval: last line %q, want mean_r2=X", c.name, last)
		}
		if r2 < 0.3 {
			t.Errorf("%s: mean_r2 %.3f on a tuned simulated population", c.name, r2)
		}
		png, err := os.ReadFile(plot)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Errorf("%s: plot %s: %v", c.name, plot, err)
		}
	}
	// The default plot lands next to the model.
	var out, errb bytes.Buffer
	model := filepath.Join(dir, "wiener.json")
	if code := realMain([]string{"decode", "eval", "--model", model, "--spikes", spikes, "--behaviour", beh, "--split", "0"}, &out, &errb); code != 0 {
		t.Fatalf("eval --split 0: exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "wiener_eval.png")); err != nil {
		t.Errorf("default plot: %v", err)
	}

	// A spikes file whose units differ from the model's is refused, naming them.
	data, _ := os.ReadFile(spikes)
	other := writeFile(t, dir, "other.csv", string(data)+"9999,100,0,-50\n")
	out.Reset()
	errb.Reset()
	if code := realMain([]string{"decode", "eval", "--model", model, "--spikes", other, "--behaviour", beh}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "not in the model: 9999") {
		t.Errorf("extra unit: exit %d: %s", code, errb.String())
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	dir := t.TempDir()
	spikes := writeFile(t, dir, "s.csv", "unit_id,sample_index\n1,10\n")
	beh := writeFile(t, dir, "b.csv", "sample_index,vx\n0,1\n30,oops\n")
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"decode"}, 2, "subcommand"},
		{[]string{"decode", "predict"}, 2, "unknown decode subcommand"},
		{[]string{"decode", "fit", "--behaviour", beh, "--out", "m.json"}, 2, "--spikes or --features is required"},
		{[]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh}, 2, "--out is required"},
		{[]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh, "--out", "m", "--model", "svm"}, 2, `--model "svm"`},
		{[]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh, "--out", "m", "--split", "1"}, 2, "--split"},
		{[]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh, "--out", "m", "--bin-ms", "0"}, 2, "--bin-ms"},
		{[]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh, "--out", "m", "--rate", "1", "--meta", "x"}, 2, "either --rate or --meta"},
		{[]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh, "--out", "m", "--lags", "0"}, 2, "--lags"},
		{[]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh, "--out", "m", "--nope"}, 2, "nope"},
		{[]string{"decode", "eval", "--spikes", spikes, "--behaviour", beh}, 2, "--model is required"},
		{[]string{"decode", "fit", "--spikes", spikes, "--behaviour", beh, "--out", filepath.Join(dir, "m.json")}, 1, "b.csv:3: vx"},
		{[]string{"decode", "fit", "--spikes", filepath.Join(dir, "none.csv"), "--behaviour", beh, "--out", "m"}, 1, "none.csv"},
		{[]string{"decode", "eval", "--model", beh, "--spikes", spikes, "--behaviour", beh}, 1, "b.csv"},
	} {
		var out, errb bytes.Buffer
		code := realMain(c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errb.String(), c.code, c.msg)
		}
	}
}
