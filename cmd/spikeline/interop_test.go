package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device/openephys"
	"github.com/spikeline/spikeline/stream"
)

// oeContinuous returns the continuous folder of recording n of an Open
// Ephys recording written into dir by spikeline, for stream.
func oeContinuous(dir string, n int, stream string) string {
	return filepath.Join(dir, openephys.DefaultRecordNode, "experiment1", "recording"+string(rune('0'+n)), "continuous", "spikeline-100."+stream)
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s (%d bytes) and %s (%d bytes) differ", a, len(x), b, len(y))
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := realMain(args, &stdout, &stderr); code != 0 {
		t.Fatalf("spikeline %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestInteropOpenEphysRoundTrip: sim → Open Ephys folder holds exactly
// the samples of the raw recording of the same seed; neo reads them
// back; Open Ephys folder → spikeline run → Open Ephys folder is the
// input, byte for byte.
func TestInteropOpenEphysRoundTrip(t *testing.T) {
	dir := t.TempDir()
	raw, oe, again := filepath.Join(dir, "raw"), filepath.Join(dir, "oe"), filepath.Join(dir, "again")
	common := []string{"--duration", "3s", "--channels", "8", "--seed", "5", "--stim-every", "1s", "--stim-channel", "2", "--quiet"}
	mustRun(t, append([]string{"sim", "--out", raw}, common...)...)
	mustRun(t, append([]string{"sim", "--out", oe, "--format", "openephys"}, common...)...)
	cont := oeContinuous(oe, 1, "sim")
	sameFile(t, filepath.Join(raw, "recording.dat"), filepath.Join(cont, "continuous.dat"))
	rec := filepath.Dir(filepath.Dir(cont))
	ttl, err := openephys.ReadTTL(rec)
	if err != nil || len(ttl) != 4 || !ttl[0].On || ttl[1].On {
		t.Errorf("stimulation TTL events %v (%v), want two trains", ttl, err)
	}
	spikes, err := openephys.ReadSpikes(rec)
	gt, _ := os.ReadFile(filepath.Join(raw, "gt_spikes.csv"))
	if err != nil || len(spikes) == 0 || len(spikes) != strings.Count(string(gt), "\n")-1 {
		t.Errorf("%d ground-truth spikes in the Open Ephys folder (%v), %d lines in gt_spikes.csv", len(spikes), err, strings.Count(string(gt), "\n"))
	}

	// neo reads the samples of the raw recording.
	if py := neoPython(); py != "" {
		out := filepath.Join(dir, "neo")
		cmd := exec.Command(py, "../../device/openephys/testdata/neo_read.py", oe, out)
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("neo: %v", err)
		}
		var r struct{ Segments []struct{ Size int } }
		if err := json.Unmarshal(b, &r); err != nil || len(r.Segments) != 1 || r.Segments[0].Size != 90000 {
			t.Errorf("neo: %s (%v)", b, err)
		}
		sameFile(t, filepath.Join(raw, "recording.dat"), out+".0")
	} else {
		t.Log("no python3 with neo (apt-get install python3-neo): the neo check is skipped")
	}

	// Open Ephys → spikeline → Open Ephys.
	mustRun(t, "run", "--device", "file:"+oe, "--record", again, "--record-format", "openephys", "--http", "off", "--nats-port", "-1")
	back := oeContinuous(again, 1, "sim")
	for _, f := range []string{"continuous.dat", "sample_numbers.npy", "timestamps.npy"} {
		sameFile(t, filepath.Join(cont, f), filepath.Join(back, f))
	}
	a, err := openephys.ReadStructure(filepath.Join(rec, openephys.StructureFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := openephys.ReadStructure(filepath.Join(filepath.Dir(filepath.Dir(back)), openephys.StructureFile))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := json.Marshal(a.Continuous)
	y, _ := json.Marshal(b.Continuous)
	if !bytes.Equal(x, y) {
		t.Errorf("structure.oebin continuous streams differ:\n%s\n%s", x, y)
	}
}

func neoPython() string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import neo.rawio, numpy").Run() == nil {
			return py
		}
	}
	return ""
}

// TestInteropRHX: the simulator behind the RHX emulator ('sim serve
// --rhx') → spikeline run --device rhx: → an Open Ephys recording that
// holds exactly the simulator's samples, none lost, channels named as
// RHX names them.
func TestInteropRHX(t *testing.T) {
	if simServe == nil {
		t.Skip("sim serve not built on this platform")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := &syncBuffer{}
	served := make(chan error, 1)
	go func() {
		served <- simServe(ctx, []string{"--rhx", "127.0.0.1:0", "--channels", "16", "--seed", "7"}, addr, io.Discard)
	}()
	for i := 0; !strings.Contains(addr.String(), "\n"); i++ {
		if i > 500 {
			t.Fatal("sim serve --rhx did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec := filepath.Join(dir, "rec")
	out := mustRun(t, "run", "--device", "rhx:"+strings.TrimSpace(addr.String()), "--duration", "2s", "--http", "off", "--nats-port", "-1",
		"--record", rec, "--record-format", "openephys")
	cancel()
	<-served
	if !strings.Contains(out, "on 16 channels") || !strings.Contains(out, "0 gaps (0 samples lost)") {
		t.Errorf("run:\n%s", out)
	}
	// The same simulator written as a file: the recording is its start.
	raw := filepath.Join(dir, "raw")
	mustRun(t, "sim", "--out", raw, "--channels", "16", "--seed", "7", "--duration", "3s", "--quiet")
	want, err := os.ReadFile(filepath.Join(raw, "recording.dat"))
	if err != nil {
		t.Fatal(err)
	}
	cont := oeContinuous(rec, 1, "spikeline")
	got, err := os.ReadFile(filepath.Join(cont, "continuous.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 2*16*60000 || !bytes.Equal(got, want[:len(got)]) {
		t.Errorf("recorded %d bytes through RHX; they are not the simulator's first %d bytes", len(got), len(got))
	}
	st, err := openephys.ReadStructure(filepath.Join(filepath.Dir(filepath.Dir(cont)), openephys.StructureFile))
	if err != nil || st.Continuous[0].Channels[0].ChannelName != "A-000" || st.Continuous[0].Channels[15].ChannelName != "A-015" {
		t.Errorf("structure %+v (%v)", st, err)
	}
}

// TestInteropIntanFile: an .rhd file is an input of spikeline run.
func TestInteropIntanFile(t *testing.T) {
	out := mustRun(t, "run", "--device", "file:../../device/intan/testdata/v3_4.rhd", "--http", "off", "--nats-port", "-1")
	if !strings.Contains(out, "on 11 channels") {
		t.Errorf("run:\n%s", out)
	}
}

// TestInteropRefusesBadFlags: the flags of these inputs are checked
// before anything starts.
func TestInteropRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--device", "rhx:"},
		{"run", "--device", "rhx:127.0.0.1", "--rhx-band", "spike"},
		{"run", "--device", "rhx:127.0.0.1", "--rhx-blocks-per-write", "0"},
		{"run", "--device", "rhx:127.0.0.1", "--rhx-channels", "Q-001"},
		{"run", "--device", "rhx:127.0.0.1", "--channels", "32"},
		{"run", "--device", "rhx:127.0.0.1", "--pace", "2"},
		{"run", "--rhx-channels", "A"},
		{"run", "--oe-stream", "x"},
		{"run", "--record", t.TempDir(), "--record-format", "nwb"},
		{"sim", "--out", t.TempDir(), "--format", "nwb"},
		{"sim", "--out", t.TempDir(), "--stim-every", "1s", "--stim-channel", "99"},
		{"sim", "serve", "--rhx", "127.0.0.1:0", "--corrupt", "0.1"},
	} {
		var stdout, stderr bytes.Buffer
		if code := realMain(args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}

// TestInteropSort: spikeline sort reads an Open Ephys recording and an
// Intan file; sorting the Open Ephys recording of a simulation gives the
// very spikes of sorting its raw recording.
func TestInteropSort(t *testing.T) {
	dir := t.TempDir()
	raw, oe := filepath.Join(dir, "raw"), filepath.Join(dir, "oe")
	common := []string{"--duration", "4s", "--channels", "6", "--seed", "11", "--quiet"}
	mustRun(t, append([]string{"sim", "--out", raw}, common...)...)
	mustRun(t, append([]string{"sim", "--out", oe, "--format", "openephys"}, common...)...)
	mustRun(t, "sort", "--meta", raw, "--out", filepath.Join(dir, "s1"), "--quiet")
	out := mustRun(t, "sort", "--input", oe, "--out", filepath.Join(dir, "s2"), "--quiet")
	if !strings.Contains(out, "4.0 s of 6 channels") {
		t.Errorf("sort:\n%s", out)
	}
	sameFile(t, filepath.Join(dir, "s1", "spikes.csv"), filepath.Join(dir, "s2", "spikes.csv"))
	out = mustRun(t, "sort", "--input", "../../device/intan/testdata/v2_0.rhd", "--out", filepath.Join(dir, "s3"), "--quiet")
	if !strings.Contains(out, "of 8 channels") {
		t.Errorf("sort of an .rhd file:\n%s", out)
	}
}

// TestInteropStimulationTTL: a stimulation train delivered through the
// control service is in the Open Ephys recording as TTL line 1, on at
// the device counter the headstage reported and off after the train,
// with a message giving its parameters.
func TestInteropStimulationTTL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	limits := writeLimits(t, "limits.toml", "max_amplitude_ua = 60\nelectrode_area_um2 = 1500\nchannels = [0, 1, 2, 3]\n")
	rec := filepath.Join(t.TempDir(), "rec")
	rp := startPipeline(t, ctx, []string{"--device", "sim:tcp", "--channels", "8", "--nats-port", "-1", "--http", "off",
		"--rig", "ttl", "--duration", "60s", "--allow-stimulation", "--stim-limits", limits, "--record", rec, "--record-format", "openephys"})
	rf := runFileOf(t, "ttl")
	op := roleConn(t, ctx, rp.url, rf.Operator, "operator")
	var res map[string]any
	if err := stream.Call(ctx, op, "ttl", stream.EndpointCommand,
		[]byte(`{"op":"stimulate","args":{"channel":2,"pulses":5,"phase_us":200,"interphase_us":50,"period_us":10000,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}}`), &res); err != nil {
		t.Fatal(err)
	}
	counter, _ := res["device_counter"].(float64)
	// The recorder writes the train's TTL events before the reply.
	cancel()
	<-rp.exited
	dir := filepath.Join(rec, openephys.DefaultRecordNode, "experiment1", "recording1")
	ttl, err := openephys.ReadTTL(dir)
	if err != nil {
		t.Fatal(err)
	}
	// 4 × 10 ms + 450 µs = 40.45 ms: 1213 samples at 30 kHz.
	want := []openephys.TTLEvent{{Sample: uint64(counter), Line: 1, On: true}, {Sample: uint64(counter) + 1213, Line: 1, On: false}}
	if len(ttl) != 2 || ttl[0] != want[0] || ttl[1] != want[1] {
		t.Errorf("TTL events %+v, want %+v", ttl, want)
	}
	text, err := os.ReadFile(filepath.Join(dir, "events", "MessageCenter", "text.npy"))
	if err != nil || !bytes.Contains(text, []byte("stimulate channel=2 amplitude_ua=40 phase_us=200 pulses=5")) {
		t.Errorf("messages %q (%v)", text, err)
	}
}
