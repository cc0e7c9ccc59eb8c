package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/quality"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
)

// TestRunPipeline runs `spikeline run` on the simulator, as fast as it
// goes, against a real nats-server, and checks what a subscriber receives:
// spike batches that tile the device clock without gaps or overlaps and
// hold their spikes, templates, a live-calibrated decoder's estimates
// correlated with the true behaviour, and status.
func TestRunPipeline(t *testing.T) {
	srv := streamtest.RunServer(t, nil)
	url := streamtest.URL(srv)
	cl := stream.NewClient(streamtest.Connect(t, srv))

	var (
		mu        sync.Mutex
		next      uint64
		batches   int
		spikes    int
		sorted    int
		bad       []string
		templates int
		lastTmpl  *schema.TemplateBatch
		unitSpk   = map[int32][]uint64{}
		status    int
		truth     = map[uint64][2]float64{}
		decoded   = map[uint64][2]float64{}
	)
	_, err := cl.Subscribe("bench", stream.Handler{
		Spikes: func(_ string, m *schema.SpikeBatch) {
			mu.Lock()
			defer mu.Unlock()
			if m.First() != next && len(bad) < 5 {
				bad = append(bad, "batch starts at "+itoa(m.First())+", want "+itoa(next))
			}
			next = m.End
			batches++
			for _, s := range m.Spikes {
				if (s.Sample < m.First() || s.Sample >= m.End) && len(bad) < 5 {
					bad = append(bad, "spike at "+itoa(s.Sample)+" outside its batch ["+itoa(m.First())+","+itoa(m.End)+")")
				}
				spikes++
				if s.Unit > 0 {
					sorted++
					unitSpk[s.Unit] = append(unitSpk[s.Unit], s.Sample)
				}
			}
		},
		Templates: func(_ string, m *schema.TemplateBatch) {
			mu.Lock()
			templates += len(m.Templates)
			lastTmpl = m
			mu.Unlock()
		},
		Status: func(_ string, m *schema.Status) {
			mu.Lock()
			status++
			mu.Unlock()
		},
		Estimate: func(_ string, m *schema.EstimateMsg) {
			mu.Lock()
			defer mu.Unlock()
			if len(m.Values) != 2 {
				bad = append(bad, "estimate of "+m.Model+" has "+itoa(uint64(len(m.Values)))+" values")
				return
			}
			v := [2]float64{m.Values[0], m.Values[1]}
			if m.Model == rig.BehaviourModel {
				truth[m.Sample/600] = v // 20 ms bins at 30 kHz
			} else {
				decoded[(m.Sample-1)/600] = v
			}
		},
	}, stream.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	code := realMain([]string{"run", "--nats", url, "--rig", "bench", "--channels", "8", "--units", "1-3",
		"--seed", "7", "--pace", "10", "--duration", "60s", "--learn", "5", "--calibrate", "25",
		"--status-every", "50ms"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	// Let the subscriber drain.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := next
		mu.Unlock()
		if n >= 60*30000-600 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	if next < 60*30000-600 {
		t.Errorf("spike batches reach sample %d, want ≈ %d", next, 60*30000)
	}
	t.Logf("%d batches, %d spikes (%d sorted), %d templates, %d status, %d estimates", batches, spikes, sorted, templates, status, len(decoded))
	if spikes < 1000 || sorted < spikes/2 {
		t.Errorf("%d spikes, %d sorted: want ≥ 1000, mostly sorted", spikes, sorted)
	}
	if templates == 0 || status == 0 {
		t.Errorf("templates %d, status %d: want both > 0", templates, status)
	}
	// The templates carry each unit's quality metrics over the session so
	// far: its spike count is that of the spikes published before the
	// snapshot (up to the sorter's lag), and most units are good.
	if lastTmpl == nil || len(lastTmpl.Quality) != len(lastTmpl.Templates) || lastTmpl.QualityFrom != 0 {
		t.Fatalf("last templates message without quality: %+v", lastTmpl)
	}
	good := 0
	for _, q := range lastTmpl.Quality {
		lo, hi := 0, 0
		for _, s := range unitSpk[q.ID] {
			if s < lastTmpl.Sample-3000 {
				lo++
			}
			if s < lastTmpl.Sample {
				hi++
			}
		}
		// (A batch the publisher dropped, reported above, lowers what
		// the subscriber saw but not what the sorter counted.)
		if q.NumSpikes < lo || (len(bad) == 0 && q.NumSpikes > hi) {
			t.Errorf("unit %d: num_spikes %d, published before the snapshot %d-%d", q.ID, q.NumSpikes, lo, hi)
		}
		if q.Label == quality.Good {
			good++
		}
	}
	t.Logf("last snapshot at sample %d: %d units, %d good", lastTmpl.Sample, len(lastTmpl.Quality), good)
	if good*2 < len(lastTmpl.Quality) {
		t.Errorf("%d of %d units good, want most: %+v", good, len(lastTmpl.Quality), lastTmpl.Quality)
	}
	// The fit runs beside the stream, which is paced at 10× real time:
	// on a loaded machine it takes seconds of device time, so only a
	// floor is asked (100 estimates are 2 s of device time).
	if len(decoded) < 100 {
		t.Fatalf("%d decoder estimates, want ≥ 100 (up to 30 s after calibration at 20 ms bins, less while the fit runs)", len(decoded))
	}
	// The live decoder follows the behaviour it was calibrated on.
	var xs, ys [2][]float64
	for k, d := range decoded {
		if tr, ok := truth[k]; ok {
			for i := range 2 {
				xs[i] = append(xs[i], tr[i])
				ys[i] = append(ys[i], d[i])
			}
		}
	}
	for i, name := range []string{"vx", "vy"} {
		r := decode.Correlation(xs[i], ys[i])
		t.Logf("live %s correlation %.3f over %d bins", name, r, len(xs[i]))
		if r < 0.5 {
			t.Errorf("live decoder %s correlation %.3f with the true behaviour, want ≥ 0.5", name, r)
		}
	}
	if !strings.Contains(stdout.String(), "subjects spikeline.bench.>") {
		t.Errorf("stdout does not name the subjects:\n%s", stdout.String())
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--device", "serial"},
		{"--device", "tcp:nohostport"},
		{"--device", "floppy:/dev/fd0"},
		{"--device", "sim:usb"},
		{"--device", "file:/nonexistent.dat"},
		{"--device", "sim", "--realtime"},
		{"--device", "tcp:127.0.0.1:1", "--pace", "2"},
		{"--baud", "9600"},
		{"--http", "nonsense"},
		{"--decoder", "lstm"},
		{"--grouping", "electrode"},
		{"--calibrate", "0"},
		{"--pace", "-2"},
		{"--device", "usb:zz"},
		{"--meta", "x.json"},
		{"--threshold", "-2"},
		{"--channels", "0"},
		{"--rig", "bad rig"},
		{"--model", "/nonexistent/model.json"},
		{"--radius-um", "30"},
		{"--device", "tcp:127.0.0.1:1", "--probe", "linear"},
		{"--channels", "32", "--probe", "/nonexistent/probe.json"},
		{"--channels", "32", "--probe", "linear", "--radius-um", "-5"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		code := realMain(append([]string{"run"}, args...), &stdout, &stderr)
		if code != 2 {
			t.Errorf("run %v: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("run %v started: %q", args, stdout.String())
		}
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// TestRunSerial runs the pipeline on the real serial code path: the
// headstage emulator on a pseudo-terminal, with corrupted bytes and dropped
// frames, read through go.bug.st/serial; the closing summary counts them.
func TestRunSerial(t *testing.T) {
	if simServe == nil {
		t.Skip("sim serve not built on this platform")
	}
	srv := streamtest.RunServer(t, nil)
	link := filepath.Join(t.TempDir(), "headstage")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveOut := &syncBuffer{}
	served := make(chan error, 1)
	go func() {
		served <- simServe(ctx, []string{"--pty", "--link", link, "--channels", "8", "--seed", "3",
			"--corrupt", "0.00005", "--drop", "0.002"}, serveOut, io.Discard)
	}()
	for i := 0; ; i++ {
		if _, err := os.Lstat(link); err == nil {
			break
		}
		if i > 200 {
			t.Fatalf("emulator did not publish %s: %s", link, serveOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var stdout, stderr syncBuffer
	recDir := filepath.Join(t.TempDir(), "rec")
	exit := make(chan int, 1)
	go func() {
		exit <- realMain([]string{"run", "--device", "serial:" + link, "--nats", streamtest.URL(srv), "--rig", "bench",
			"--duration", "4s", "--record", recDir}, &stdout, &stderr)
	}()
	// The control service answers while the pipeline runs, and passes
	// commands to the headstage.
	nc := streamtest.Connect(t, srv)
	var info stream.Info
	for i := 0; ; i++ {
		cctx, ccancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := stream.Call(cctx, nc, "bench", "info", nil, &info)
		ccancel()
		if err == nil {
			break
		}
		if i > 100 {
			t.Fatalf("control service: %v", err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	if info.Channels != 8 || info.Rate != 30000 || !strings.HasPrefix(info.Device, "serial:") {
		t.Errorf("info %+v: want 8 channels at 30 kHz from serial", info)
	}
	var ping struct {
		RTT int64 `json:"rtt_us"`
	}
	if err := stream.Call(ctx, nc, "bench", "command", stream.CommandRequest{Op: "ping"}, &ping); err != nil {
		t.Errorf("ping through the control service: %v", err)
	}
	var se *stream.ServiceError
	if err := stream.Call(ctx, nc, "bench", "command", stream.CommandRequest{Op: "explode"}, nil); !errors.As(err, &se) {
		t.Errorf("unknown command: %v, want a service error", err)
	}
	var ok stream.OK
	if err := stream.Call(ctx, nc, "bench", "threshold", stream.ThresholdRequest{Sigma: 5.5}, &ok); err != nil {
		t.Errorf("threshold through the control service: %v", err)
	} else if err := stream.Call(ctx, nc, "bench", "info", nil, &info); err != nil || info.Threshold != 5.5 {
		t.Errorf("info after setting the threshold: %v, threshold %v, want 5.5", err, info.Threshold)
	}
	code := <-exit
	cancel()
	<-served
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Log(out)
	if !strings.Contains(out, "4.0 s of device time on 8 channels") {
		t.Errorf("summary does not report 4 s on 8 channels:\n%s", out)
	}
	var frames, crc, gaps int
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "spikeline: link:") {
			fmt.Sscanf(line, "spikeline: link: %d frames, %d CRC errors", &frames, &crc)
			if i := strings.Index(line, "bytes skipped, "); i >= 0 {
				fmt.Sscanf(line[i+len("bytes skipped, "):], "%d gaps", &gaps)
			}
		}
	}
	// 4000 frames of 8×30 samples (≈ 500 bytes): ≈ 2.5 % corrupted, 0.2 % dropped.
	if frames < 3500 || crc == 0 || gaps < crc {
		t.Errorf("link summary: %d frames, %d CRC errors, %d gaps; want ≈ 3000 frames, some CRC errors, a gap for each", frames, crc, gaps)
	}
	// The recording holds the stream on the device clock, gaps listed.
	m, err := device.ReadMeta(filepath.Join(recDir, "recording.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The link goes on reading (and counting) after the last block the
	// pipeline took, so the summary may count gaps the recording never
	// reached; the recording holds at most those, and some.
	if m.Channels != 8 || m.Samples < 120000 || len(m.Gaps) > gaps || len(m.Gaps) == 0 {
		t.Errorf("recording: %d channels, %d samples, %d gaps; want 8, ≥ 120000, 1..%d", m.Channels, m.Samples, len(m.Gaps), gaps)
	}
	// The sorted spikes were recorded beside the raw data, in the CSV of
	// 'spikeline sort', all of them.
	f, err := os.Open(filepath.Join(recDir, rig.SpikesFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spikes, err := sort.ReadSpikesCSV(f, rig.SpikesFile)
	if err != nil {
		t.Fatal(err)
	}
	var detected int
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "channels; "); i >= 0 {
			fmt.Sscanf(line[i+len("channels; "):], "%d spikes", &detected)
		}
	}
	if len(spikes) == 0 || len(spikes) != detected {
		t.Errorf("%s holds %d spikes, the summary says %d", rig.SpikesFile, len(spikes), detected)
	}
	for i := 1; i < len(spikes); i++ {
		if spikes[i].Sample < spikes[i-1].Sample || spikes[i].Channel < 0 || spikes[i].Channel >= 8 {
			t.Fatalf("%s line %d: spike %+v after %+v", rig.SpikesFile, i+2, spikes[i], spikes[i-1])
		}
	}
}

// TestRunConfigFile checks that a TOML file sets flags, that the command
// line wins over it, and that bad files are refused before anything
// starts, naming the file and the key.
func TestRunConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "rig.toml")
	os.WriteFile(good, []byte("# bench rig\nchannels = 6\nduration = \"1s\"\npace = 0\nhttp = \"off\"\nrig = \"cfg\"\n[nats]\nport = -1\n"), 0o644)
	var stdout, stderr syncBuffer
	code := realMain([]string{"run", "--config", good, "--duration", "2s", "--calibrate", "1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "2.0 s of device time on 6 channels") || !strings.Contains(out, "spikeline.cfg.>") {
		t.Errorf("want 2 s (command line) on 6 channels of rig cfg (file):\n%s", out)
	}
	for _, c := range []struct{ text, want string }{
		{"chanels = 6\n", `unknown setting "chanels"`},
		{"channels = \"many\"\n", `channels = "many"`},
		{"channels = 0\n", "--channels 0"},
		{"channels = [\n", "line 1"},
		{"[nats]\nportt = 1\n", `"nats-portt"`},
	} {
		bad := filepath.Join(dir, "bad.toml")
		os.WriteFile(bad, []byte(c.text), 0o644)
		var stdout, stderr bytes.Buffer
		code := realMain([]string{"run", "--config", bad}, &stdout, &stderr)
		if code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("config %q: exit %d, stderr %q, stdout %q; want exit 2 naming %q", c.text, code, stderr.String(), stdout.String(), c.want)
		}
	}
}

// TestRunSignal runs 'spikeline run' in a child process and stops it with
// SIGTERM and SIGINT: it shuts down cleanly (summary printed, recording
// closed) and exits with 128 + the signal number.
func TestRunSignal(t *testing.T) {
	if os.Getenv("SPIKELINE_CHILD") != "" {
		os.Exit(realMain(strings.Split(os.Getenv("SPIKELINE_CHILD"), " "), os.Stdout, os.Stderr))
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		rec := filepath.Join(t.TempDir(), "rec")
		cmd := exec.Command(os.Args[0], "-test.run=^TestRunSignal$")
		cmd.Env = append(os.Environ(), "SPIKELINE_CHILD=run --channels 8 --http off --nats-port -1 --record "+rec)
		var stdout syncBuffer
		cmd.Stdout = &stdout
		cmd.Stderr = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; !strings.Contains(stdout.String(), "recording raw data"); i++ {
			if i > 1500 {
				cmd.Process.Kill()
				t.Fatalf("child did not start:\n%s", stdout.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) {
			t.Errorf("%v: %v, want exit status %d\n%s", sig, err, 128+int(sig), stdout.String())
		}
		if !strings.Contains(stdout.String(), "s of device time on 8 channels") {
			t.Errorf("%v: no summary:\n%s", sig, stdout.String())
		}
		if m, err := device.ReadMeta(filepath.Join(rec, "recording.json")); err != nil || m.Samples == 0 {
			t.Errorf("%v: recording not closed cleanly: %v, %+v", sig, err, m)
		}
	}
}
