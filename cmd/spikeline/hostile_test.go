package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/rig"
)

// The hostile inputs of docs/hostile.md, one case each: every one ends
// with the documented exit status and an error naming what is wrong and
// where, never a panic, a hang or an allocation the input's size does not
// justify.

// hostileCase is one command line run against files a setup prepared.
type hostileCase struct {
	name  string
	args  func(dir string) []string
	code  int
	want  []string // substrings of stderr
	extra func(t *testing.T, dir string)
}

func runHostile(t *testing.T, cases []hostileCase, setup func(t *testing.T, dir string)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			setup(t, dir)
			var stdout, stderr bytes.Buffer
			code := realMain(c.args(dir), &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout.String(), stderr.String())
			}
			for _, w := range c.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
			if c.extra != nil {
				c.extra(t, dir)
			}
		})
	}
}

// writeSidecar writes a recording.json with the given JSON beside a
// 16-channel data file of n samples.
func writeHostileRecording(t *testing.T, dir, sidecar string, channels, n int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "recording.json"), []byte(sidecar), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "recording.dat"), make([]byte, 2*channels*n), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHostileNumbers(t *testing.T) {
	rec := func(rate string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			writeHostileRecording(t, dir, `{"n_channels":16,"sample_rate":`+rate+`,"gain_uv_per_bit":0.195}`, 16, 3000)
		}
	}
	for _, rate := range []string{"1e300", "1e10", "1e12"} {
		runHostile(t, []hostileCase{
			{name: "sort sample_rate " + rate, args: func(dir string) []string {
				return []string{"sort", "--meta", dir, "--out", filepath.Join(dir, "out"), "--quiet"}
			}, code: exitFailed, want: []string{"recording.json: sample_rate = " + strings.Replace(rate, "e", "e+", 1) + ", want 1..200000 Hz"},
				extra: func(t *testing.T, dir string) {
					if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
						t.Errorf("sort wrote output for a refused sidecar")
					}
				}},
			{name: "run sample_rate " + rate, args: func(dir string) []string {
				return []string{"run", "--device", "file:" + dir, "--http", "off", "--nats-port", "-1"}
			}, code: exitFailed, want: []string{"sample_rate = " + strings.Replace(rate, "e", "e+", 1) + ", want 1..200000 Hz"}},
		}, rec(rate))
	}
}

func TestHostileWireFrames(t *testing.T) {
	frames := func(channels int, rate uint32) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			var b []byte
			n := max(1, min(64, (device.MaxPayload/2)/channels))
			for i := range 4 {
				b = device.AppendData(b, uint64(i*n), rate, 0.195, channels, make([]int16, channels*n), 0)
			}
			if err := os.WriteFile(filepath.Join(dir, "cap.spkw"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	args := func(dir string) []string {
		return []string{"run", "--device", "file:" + filepath.Join(dir, "cap.spkw"), "--http", "off", "--nats-port", "-1"}
	}
	runHostile(t, []hostileCase{{name: "4e9 Hz", args: args, code: exitFailed,
		want: []string{"ended before its first sample", "4 bad frames", "data frame: sample rate = 4e+09, want 1..200000 Hz"}}}, frames(32, 4_000_000_000))
	runHostile(t, []hostileCase{{name: "65535 channels", args: args, code: exitFailed,
		want: []string{"ended before its first sample", "4 bad frames", "data frame: channels = 65535, want 1..8192 channels"}}}, frames(65535, 30000))
}

func TestHostileFilesAndFlags(t *testing.T) {
	haveDevZero := true
	if _, err := os.Stat("/dev/zero"); err != nil {
		haveDevZero = false
	}
	setup := func(t *testing.T, dir string) {
		writeHostileRecording(t, dir, `{"n_channels":4,"sample_rate":30000,"gain_uv_per_bit":0.195}`, 4, 3000)
		os.WriteFile(filepath.Join(dir, "behaviour.csv"), []byte("sample_index,vx,vy\n0,1,2\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "gt.csv"), []byte("unit_id,sample_index\n1,100\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "units_peak.csv"), []byte("unit_id,channel,peak_uv,snr\n1,0,abc,4.7\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "units_nan.csv"), []byte("unit_id,channel,peak_uv,snr\n1,0,-50,NaN\n"), 0o644)
		mkfifo(filepath.Join(dir, "fifo")) // where named pipes exist
	}
	cases := []hostileCase{
		{name: "run serial: on a regular file", args: func(dir string) []string {
			return []string{"run", "--device", "serial:" + filepath.Join(dir, "recording.dat")}
		}, code: exitUsage, want: []string{"recording.dat is a regular file, not a serial port (a recording: file:"}},
		{name: "run --queue 1e9", args: func(string) []string { return []string{"run", "--queue", "1000000000"} },
			code: exitUsage, want: []string{"--queue = 1000000000, want 1..100000 blocks"}},
		{name: "score non-numeric peak_uv", args: func(dir string) []string {
			return []string{"score", "--gt", filepath.Join(dir, "gt.csv"), "--sorted", filepath.Join(dir, "gt.csv"), "--units", filepath.Join(dir, "units_peak.csv"), "--rate", "30000"}
		}, code: exitFailed, want: []string{"units_peak.csv:2: peak_uv = \"abc\", want a number"}},
		{name: "score NaN snr", args: func(dir string) []string {
			return []string{"score", "--gt", filepath.Join(dir, "gt.csv"), "--sorted", filepath.Join(dir, "gt.csv"), "--units", filepath.Join(dir, "units_nan.csv"), "--rate", "30000"}
		}, code: exitFailed, want: []string{"units_nan.csv:2: snr = \"NaN\", want a number"}},
	}
	if haveDevZero {
		cases = append(cases,
			hostileCase{name: "run --config /dev/zero", args: func(string) []string { return []string{"run", "--config", "/dev/zero"} },
				code: exitUsage, want: []string{"--config: /dev/zero: size = more than 1048576 bytes, want at most 1048576 bytes"}},
			hostileCase{name: "run --meta /dev/zero", args: func(dir string) []string {
				return []string{"run", "--device", "file:" + filepath.Join(dir, "recording.dat"), "--meta", "/dev/zero", "--http", "off", "--nats-port", "-1"}
			}, code: exitFailed, want: []string{"/dev/zero: size = more than 16777216 bytes"}},
			hostileCase{name: "decode fit --spikes /dev/zero", args: func(dir string) []string {
				return []string{"decode", "fit", "--spikes", "/dev/zero", "--behaviour", filepath.Join(dir, "behaviour.csv"), "--out", filepath.Join(dir, "m.json")}
			}, code: exitFailed, want: []string{"/dev/zero:1: line length = more than 1048576 bytes"}},
		)
	}
	if mkfifo(filepath.Join(t.TempDir(), "fifo")) == nil {
		cases = append(cases, hostileCase{name: "run file: FIFO", args: func(dir string) []string {
			return []string{"run", "--device", "file:" + filepath.Join(dir, "fifo"), "--http", "off", "--nats-port", "-1"}
		}, code: exitUsage, want: []string{"fifo is a named pipe (FIFO): want a recording file or directory"}})
	}
	runHostile(t, cases, setup)
}

// TestHostileOutputs: outputs never go through a symbolic link and never
// overwrite a recording or a sort without --force.
func TestHostileOutputs(t *testing.T) {
	rec := simRecording(t, 4, 3)
	victim := func(dir string) string { return filepath.Join(dir, "victim") }
	plant := func(t *testing.T, dir, name string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(victim(dir), []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim(dir), filepath.Join(dir, name)); err != nil {
			t.Skip(err)
		}
	}
	intact := func(t *testing.T, dir string) {
		t.Helper()
		if b, err := os.ReadFile(victim(dir)); err != nil || string(b) != "precious" {
			t.Errorf("the symbolic link's target was written: %q, %v", b, err)
		}
	}
	runHostile(t, []hostileCase{
		{name: "record: symlink at recording.json.tmp", args: func(dir string) []string {
			plant(t, filepath.Join(dir, "out"), "recording.json.tmp")
			return []string{"run", "--device", "file:" + rec, "--record", filepath.Join(dir, "out"), "--http", "off", "--nats-port", "-1"}
		}, code: exitOK, extra: func(t *testing.T, dir string) {
			intact(t, filepath.Join(dir, "out"))
			if m, err := device.ReadMeta(filepath.Join(dir, "out", "recording.json")); err != nil || m.Samples != 90000 {
				t.Errorf("recording: %+v, %v", m, err)
			}
		}},
		{name: "record: symlink at templates.json", args: func(dir string) []string {
			plant(t, filepath.Join(dir, "out"), "templates.json")
			return []string{"run", "--device", "file:" + rec, "--record", filepath.Join(dir, "out"), "--http", "off", "--nats-port", "-1"}
		}, code: exitUsage, want: []string{"templates.json exists: a recording is never overwritten"},
			extra: func(t *testing.T, dir string) { intact(t, filepath.Join(dir, "out")) }},
		{name: "record into an existing recording: refused before anything starts", args: func(dir string) []string {
			return []string{"run", "--device", "file:" + rec, "--record", rec, "--nats-port", "-1"}
		}, code: exitUsage, want: []string{"recording.dat exists: a recording is never overwritten"}},
		{name: "sort --out onto an earlier sort", args: func(dir string) []string {
			os.MkdirAll(filepath.Join(dir, "out"), 0o755)
			os.WriteFile(filepath.Join(dir, "out", "spikes.csv"), []byte("earlier"), 0o644)
			return []string{"sort", "--meta", rec, "--out", filepath.Join(dir, "out"), "--quiet", "--passes", "1"}
		}, code: exitUsage, want: []string{"is not empty (spikes.csv): choose a new directory, or add --force"},
			extra: func(t *testing.T, dir string) {
				if b, _ := os.ReadFile(filepath.Join(dir, "out", "spikes.csv")); string(b) != "earlier" {
					t.Errorf("spikes.csv overwritten")
				}
			}},
		{name: "sort --out --force with planted symlinks", args: func(dir string) []string {
			out := filepath.Join(dir, "out")
			plant(t, out, "units.csv")
			os.MkdirAll(filepath.Join(out, "phy"), 0o755)
			os.Symlink(victim(out), filepath.Join(out, "phy", "params.py"))
			return []string{"sort", "--meta", rec, "--out", out, "--quiet", "--passes", "1", "--force"}
		}, code: exitOK, extra: func(t *testing.T, dir string) {
			out := filepath.Join(dir, "out")
			intact(t, out)
			for _, f := range []string{"units.csv", "phy/params.py"} {
				if fi, err := os.Lstat(filepath.Join(out, f)); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s: %v, %v: want a new regular file", f, fi, err)
				}
			}
		}},
	}, func(t *testing.T, dir string) {})
}

// TestHostileSegments: a format change, a counter reset or a gap over 60 s
// in the device's stream does not end the run: each starts a new segment
// of the session, recorded in DIR/segment-2, and every segment reads back.
func TestHostileSegments(t *testing.T) {
	capture := func(segs ...[3]int) func(t *testing.T, dir string) { // channels, frames, counter (-1: continue)
		return func(t *testing.T, dir string) {
			var b []byte
			var counter uint64
			for _, s := range segs {
				if s[2] >= 0 {
					counter = uint64(s[2])
				}
				for range s[1] {
					b = device.AppendData(b, counter, 30000, 0.195, s[0], make([]int16, s[0]*128), 0)
					counter += 128
				}
			}
			os.WriteFile(filepath.Join(dir, "cap.spkw"), b, 0o644)
		}
	}
	args := func(dir string) []string {
		return []string{"run", "--device", "file:" + filepath.Join(dir, "cap.spkw"), "--record", filepath.Join(dir, "rec"), "--http", "off", "--nats-port", "-1"}
	}
	check := func(first, second [3]int) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			for i, s := range [][3]int{first, second} {
				d := rig.SegmentDir(filepath.Join(dir, "rec"), i+1)
				m, err := device.ReadMeta(filepath.Join(d, "recording.json"))
				if err != nil || m.Channels != s[0] || m.Samples != uint64(128*s[1]) || m.InProgress {
					t.Errorf("segment %d: %+v, %v; want %d channels, %d samples", i+1, m, err, s[0], 128*s[1])
				}
				if _, err := os.Stat(filepath.Join(d, rig.SpikesFile)); err != nil {
					t.Errorf("segment %d: %v", i+1, err)
				}
			}
		}
	}
	a, fmtChange, reset, jump := [3]int{32, 200, 0}, [3]int{16, 100, -1}, [3]int{32, 100, 0}, [3]int{32, 100, 9_000_000}
	runHostile(t, []hostileCase{{name: "format change", args: args, code: exitOK, want: []string{`reason="format change"`, "sorter restarted"}, extra: check(a, fmtChange)}}, capture(a, fmtChange))
	runHostile(t, []hostileCase{{name: "counter reset", args: args, code: exitOK, want: []string{`reason="counter reset"`}, extra: check(a, reset)}}, capture(a, reset))
	runHostile(t, []hostileCase{{name: "gap over 60 s", args: args, code: exitOK, want: []string{`reason="long gap"`}, extra: check(a, jump)}}, capture(a, jump))
}

// TestHostileLayout: a 3-channel sidecar on a 16-channel file whose size
// is a multiple of 3 channels (no n_samples to contradict it) is refused
// by what the samples say, instead of sorting garbage.
func TestHostileLayout(t *testing.T) {
	rec := simRecording(t, 16, 1)
	setup := func(t *testing.T, dir string) {
		b, err := os.ReadFile(filepath.Join(rec, "recording.dat"))
		if err != nil || len(b)%6 != 0 {
			t.Fatalf("%d bytes, %v", len(b), err)
		}
		os.WriteFile(filepath.Join(dir, "recording.dat"), b, 0o644)
		os.WriteFile(filepath.Join(dir, "recording.json"), []byte(`{"n_channels":3,"sample_rate":30000,"gain_uv_per_bit":0.195}`), 0o644)
	}
	want := []string{"do not look like 3 interleaved channels", "is the channel count 16?"}
	runHostile(t, []hostileCase{
		{name: "sort", args: func(dir string) []string {
			return []string{"sort", "--meta", dir, "--out", filepath.Join(dir, "out"), "--quiet"}
		}, code: exitFailed, want: want},
		{name: "run", args: func(dir string) []string {
			return []string{"run", "--device", "file:" + dir, "--http", "off", "--nats-port", "-1"}
		}, code: exitFailed, want: want},
		{name: "sort --skip-layout-check", args: func(dir string) []string {
			return []string{"sort", "--meta", dir, "--out", filepath.Join(dir, "out"), "--quiet", "--passes", "1", "--skip-layout-check", "--no-phy", "--no-plot"}
		}, code: exitOK},
	}, setup)
}
