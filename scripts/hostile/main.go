//go:build unix

// Command hostile runs every hostile input of docs/hostile.md against a
// spikeline binary and prints, for each, the command, the exit status,
// the last line of the error, the peak memory (maxrss) and the wall time,
// as the Markdown table the document holds.
//
//	go build -o bin/spikeline ./cmd/spikeline
//	go run ./scripts/hostile -bin bin/spikeline     (or: make hostile)
//
// Inputs are made in a temporary directory; each case runs with a
// timeout (a hang is reported as such).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spikeline/spikeline/device"
)

type result struct {
	code   int
	out    string // stdout and stderr
	maxrss int64  // kB
	wall   time.Duration
}

var (
	bin     = flag.String("bin", "bin/spikeline", "the spikeline binary")
	timeout = flag.Duration("timeout", 60*time.Second, "per case")
	keep    = flag.Bool("keep", false, "keep the temporary directory")
)

func main() {
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fail(err)
	}
	*bin = abs
	dir, err := os.MkdirTemp("", "spikeline-hostile-")
	if err != nil {
		fail(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	if err := os.Chdir(dir); err != nil {
		fail(err)
	}
	setup()
	fmt.Println("| input | command | exit | result | maxrss | time |")
	fmt.Println("| --- | --- | ---: | --- | ---: | ---: |")
	for _, c := range cases {
		if c.before != nil {
			c.before()
		}
		r := run(c.args...)
		res := lastLine(r.out)
		if c.after != nil {
			res = c.after(r)
		}
		fmt.Printf("| %s | `spikeline %s` | %d | %s | %.0f MB | %.2f s |\n", c.input, strings.Join(c.args, " "), r.code,
			strings.ReplaceAll(res, "|", `\|`), float64(r.maxrss)/1024, r.wall.Seconds())
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "hostile:", err)
	os.Exit(1)
}

func must(err error) {
	if err != nil {
		fail(err)
	}
}

// run runs the binary and measures it.
func run(args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, *bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	r := result{out: out.String(), wall: time.Since(start)}
	if ctx.Err() != nil {
		r.out += "\nHUNG: killed after " + timeout.String()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		fail(err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxrss = ru.Maxrss
	}
	return r
}

// lastLine returns the last line that is not a log line of the run's
// servers, trimmed to what the table can hold.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if strings.Contains(l, "level=INFO") || strings.TrimSpace(l) == "" {
			continue
		}
		if len(l) > 260 {
			l = l[:260] + "…"
		}
		return l
	}
	return ""
}

type hostileCase struct {
	input  string
	args   []string
	before func()
	after  func(result) string
}

func write(path string, b []byte) { must(os.WriteFile(path, b, 0o644)) }

func sidecar(dir string, m map[string]any) {
	must(os.MkdirAll(dir, 0o755))
	b, _ := json.Marshal(m)
	write(filepath.Join(dir, "recording.json"), b)
}

// capture writes a wire-protocol file: segments of channels, frames of
// 128 samples (fewer when the payload limit says so), at rate Hz from
// counter (-1: continue).
func capture(path string, segs ...[4]int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b []byte
	var counter uint64
	for _, s := range segs {
		ch, frames, rate := int(s[0]), int(s[1]), uint32(s[2])
		if s[3] >= 0 {
			counter = uint64(s[3])
		}
		n := min(128, device.MaxPayload/(2*ch))
		x := make([]int16, ch*n)
		for range frames {
			for i := range x {
				x[i] = int16(rng.NormFloat64() * 40)
			}
			b = device.AppendData(b, counter, rate, 0.195, ch, x, 0)
			counter += uint64(n)
		}
	}
	write(path, b)
}

func setup() {
	// A 16-channel simulated recording, 5 s.
	r := run("sim", "--out", "rec16", "--channels", "16", "--duration", "5s")
	if r.code != 0 {
		fail(errors.New(r.out))
	}
	data, err := os.ReadFile("rec16/recording.dat")
	must(err)
	for _, rate := range []string{"1e300", "1e10", "1e12"} {
		d := "rate" + rate
		sidecar(d, map[string]any{"n_channels": 16, "sample_rate": json.RawMessage(rate), "gain_uv_per_bit": 0.195})
		write(filepath.Join(d, "recording.dat"), data)
	}
	sidecar("view3", map[string]any{"n_channels": 3, "sample_rate": 30000, "gain_uv_per_bit": 0.195})
	write("view3/recording.dat", data)

	capture("rate4e9.spkw", [4]int64{32, 8, 4_000_000_000, 0})
	capture("largest.spkw", [4]int64{device.MaxChannels, 4, device.MaxRate, 0})
	sidecar("largest", map[string]any{"n_channels": device.MaxChannels, "sample_rate": device.MaxRate, "gain_uv_per_bit": 0.195})
	write("largest/recording.dat", make([]byte, 2*device.MaxChannels*256))
	capture("ch65535.spkw", [4]int64{65535, 4, 30000, 0})
	capture("format.spkw", [4]int64{32, 470, 30000, 0}, [4]int64{16, 470, 30000, -1})
	capture("reset.spkw", [4]int64{32, 470, 30000, 0}, [4]int64{32, 470, 30000, 0})
	capture("jump.spkw", [4]int64{32, 470, 30000, 0}, [4]int64{32, 470, 30000, 9_000_000})
	must(syscall.Mkfifo("fifo", 0o644))

	units, err := os.ReadFile("rec16/units.csv")
	must(err)
	lines := strings.Split(string(units), "\n")
	peak := slicesClone(lines)
	f := strings.Split(peak[1], ",")
	f[2] = "abc" // peak_uv
	peak[1] = strings.Join(f, ",")
	write("units_peak.csv", []byte(strings.Join(peak, "\n")))
	nan := slicesClone(lines)
	f = strings.Split(nan[1], ",")
	f[3] = "NaN" // snr
	nan[1] = strings.Join(f, ",")
	write("units_nan.csv", []byte(strings.Join(nan, "\n")))

	// A symbolic link planted where the sidecar's temporary file went.
	must(os.MkdirAll("recsym", 0o755))
	write("victim", []byte("precious\n"))
	must(os.Symlink(filepath.Join(mustGetwd(), "victim"), "recsym/recording.json.tmp"))
	// Earlier sort outputs, one of them a symbolic link.
	must(os.MkdirAll("sorted", 0o755))
	write("sorted/spikes.csv", []byte("earlier\n"))
	write("victim2", []byte("precious\n"))
	must(os.Symlink(filepath.Join(mustGetwd(), "victim2"), "sorted/units.csv"))

	// A recording cut by SIGKILL, with a torn last sample.
	cmd := exec.Command(*bin, "run", "--device", "file:rec16", "--realtime", "--record", "torn", "--http", "off", "--nats-port", "-1")
	must(cmd.Start())
	for i := 0; i < 500; i++ {
		if m, err := device.ReadMeta("torn/recording.json"); err == nil && m.Synced >= 60000 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	fh, err := os.OpenFile("torn/recording.dat", os.O_APPEND|os.O_WRONLY, 0)
	must(err)
	fh.Write([]byte{1, 2, 3})
	fh.Close()
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

func mustGetwd() string {
	d, err := os.Getwd()
	must(err)
	return d
}

func intact(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "precious\n" {
		return fmt.Sprintf("%s OVERWRITTEN: %q %v", path, b, err)
	}
	return path + " intact"
}

var cases = []hostileCase{
	{input: "`recording.json` with `\"sample_rate\": 1e300`", args: []string{"sort", "--meta", "rate1e300", "--out", "o1", "--quiet"}},
	{input: "the same, `run`", args: []string{"run", "--device", "file:rate1e300", "--http", "off", "--nats-port", "-1"}},
	{input: "`sample_rate` 1e10", args: []string{"sort", "--meta", "rate1e10", "--out", "o2", "--quiet"}},
	{input: "`sample_rate` 1e12", args: []string{"sort", "--meta", "rate1e12", "--out", "o3", "--quiet"}},
	{input: "wire frames announcing 4e9 Hz", args: []string{"run", "--device", "file:rate4e9.spkw", "--http", "off", "--nats-port", "-1"}},
	{input: "wire frames announcing 65,535 channels", args: []string{"run", "--device", "file:ch65535.spkw", "--http", "off", "--nats-port", "-1"}},
	{input: "the largest frames the limits allow: 8192 channels at 200 kHz (4 MB)", args: []string{"run", "--device", "file:largest.spkw", "--http", "off", "--nats-port", "-1"}},
	{input: "a sidecar at the limits: 8192 channels at 200 kHz, 4 MiB of samples", args: []string{"sort", "--meta", "largest", "--out", "o6", "--quiet"}},
	{input: "`--config /dev/zero`", args: []string{"run", "--config", "/dev/zero"}},
	{input: "`--meta /dev/zero`", args: []string{"run", "--device", "file:rec16/recording.dat", "--meta", "/dev/zero", "--http", "off", "--nats-port", "-1"}},
	{input: "`decode fit --spikes /dev/zero`", args: []string{"decode", "fit", "--spikes", "/dev/zero", "--behaviour", "rec16/behaviour.csv", "--out", "m.json"}},
	{input: "`--queue 1000000000`", args: []string{"run", "--queue", "1000000000"}},
	{input: "`--device file:` on a FIFO", args: []string{"run", "--device", "file:fifo", "--http", "off", "--nats-port", "-1"}},
	{input: "3-channel view of a 16-channel file without `n_samples`", args: []string{"sort", "--meta", "view3", "--out", "o4", "--quiet"}},
	{input: "the same, `run`", args: []string{"run", "--device", "file:view3", "--http", "off", "--nats-port", "-1"}},
	{input: "`score`, non-numeric `peak_uv` in units.csv", args: []string{"score", "--gt", "rec16/gt_spikes.csv", "--sorted", "rec16/gt_spikes.csv", "--units", "units_peak.csv", "--rate", "30000"}},
	{input: "`score`, NaN SNR in units.csv", args: []string{"score", "--gt", "rec16/gt_spikes.csv", "--sorted", "rec16/gt_spikes.csv", "--units", "units_nan.csv", "--rate", "30000"}},
	{input: "`--record DIR`, `DIR/recording.json.tmp` a planted symlink", args: []string{"run", "--device", "file:rec16", "--record", "recsym", "--http", "off", "--nats-port", "-1"},
		after: func(r result) string { return intact("victim") + "; " + lastLine(r.out) }},
	{input: "`sort --out` onto existing outputs", args: []string{"sort", "--meta", "rec16", "--out", "sorted", "--quiet"}},
	{input: "the same with `--force` (`units.csv` a symlink)", args: []string{"sort", "--meta", "rec16", "--out", "sorted", "--quiet", "--force"},
		after: func(r result) string {
			fi, err := os.Lstat("sorted/units.csv")
			s := "sorted/units.csv a new regular file"
			if err != nil || !fi.Mode().IsRegular() {
				s = fmt.Sprintf("sorted/units.csv: %v %v", fi, err)
			}
			return intact("victim2") + ", " + s
		}},
	{input: "a recording cut by SIGKILL, torn last sample", args: []string{"sort", "--meta", "torn", "--out", "o5", "--quiet", "--passes", "1"},
		after: func(r result) string { return firstWith(r.out, "was not closed") }},
	{input: "the same, `run`", args: []string{"run", "--device", "file:torn", "--http", "off", "--nats-port", "-1"},
		after: func(r result) string {
			return firstWith(r.out, "was not closed") + " … " + firstWith(r.out, "s of device time")
		}},
	{input: "the same, `recover`", args: []string{"recover", "torn"}},
	{input: "format change mid-stream (32 → 16 channels), `--record`", args: []string{"run", "--device", "file:format.spkw", "--record", "segfmt", "--http", "off", "--nats-port", "-1"}},
	{input: "counter reset, `--record`", args: []string{"run", "--device", "file:reset.spkw", "--record", "segreset", "--http", "off", "--nats-port", "-1"}},
	{input: "counter jump of 300 s, `--record`", args: []string{"run", "--device", "file:jump.spkw", "--record", "segjump", "--http", "off", "--nats-port", "-1"}},
	{input: "`--record` into an existing recording", args: []string{"run", "--device", "file:rec16", "--record", "rec16"},
		after: func(r result) string {
			s := lastLine(r.out)
			if strings.Contains(r.out, "NATS") || strings.Contains(r.out, "listening") {
				s += " (BUT something started)"
			} else {
				s += " (nothing started)"
			}
			return s
		}},
}

func firstWith(out, sub string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, sub) {
			if len(l) > 200 {
				l = l[:200] + "…"
			}
			return l
		}
	}
	return ""
}
