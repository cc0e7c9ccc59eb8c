package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

func TestSimServeFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x.spkw")
	for _, args := range [][]string{
		{},
		{"--pty", "--tcp", "127.0.0.1:0"},
		{"--file", file, "--corrupt", "1.5"},
		{"--file", file, "--drop", "-0.1"},
		{"--file", file, "--unplug-every", "1s"},
		{"--file", file, "--unplug-for", "0s"},
		{"--file", file, "--frame", "70000"},
		{"--file", file, "--pace", "-3"},
		{"--file", file, "--duration", "soon"},
		{"--tcp", "127.0.0.1:0", "--link", "/tmp/x"},
		{"--file", file, "--channels", "0"},
		{"--file", file, "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := realMain(append([]string{"sim", "serve"}, args...), &stdout, &stderr); code != 2 {
			t.Errorf("sim serve %q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("a refused command created %s", file)
	}
}

// TestSimServeFile writes a capture with dropped frames and reads it back.
func TestSimServeFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cap.spkw")
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"sim", "serve", "--file", file, "--pattern", "--channels", "4", "--duration", "0.5s",
		"--drop", "0.05", "--seed", "9"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if strings.TrimSpace(stdout.String()) != file {
		t.Errorf("stdout %q, want the file name", stdout.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := device.NewDecoder(bytes.NewReader(b))
	var samples uint64
	for {
		f, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Channels != 4 || f.Rate != 30000 || f.Len() != 30 {
			t.Fatalf("frame %d channels, %d Hz, %d samples", f.Channels, f.Rate, f.Len())
		}
		for i := range f.Len() {
			for c := range 4 {
				if f.Samples[i*4+c] != sim.PatternValue(f.Counter+uint64(i), c) {
					t.Fatalf("frame at %d: wrong sample", f.Counter)
				}
			}
		}
		samples += uint64(f.Len())
	}
	st := dec.Stats()
	if st.Gaps == 0 || samples+st.LostSamples > 15000 || samples+st.LostSamples < 15000-30*20 {
		t.Fatalf("%d samples + %d lost in %d gaps, want 15000 less the dropped tail", samples, st.LostSamples, st.Gaps)
	}
}

// serveCommand runs "sim serve" with args until the test ends and returns
// the first line it prints (the device path or address).
func serveCommand(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := runSimServe(ctx, args, pw, &stderr)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("sim serve: %v (stderr %q)", err, stderr.String())
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("sim serve printed nothing: %v", err)
	}
	go io.Copy(io.Discard, pr)
	return strings.TrimSpace(line)
}

func TestSimServeTCP(t *testing.T) {
	addr := serveCommand(t, "--tcp", "127.0.0.1:0", "--pattern", "--channels", "8", "--pace", "4")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := device.NewDecoder(conn).Next()
	if err != nil {
		t.Fatal(err)
	}
	if f.Channels != 8 || f.Samples[3] != sim.PatternValue(f.Counter, 3) {
		t.Fatalf("frame %+v", f)
	}
}

func TestSimServePTY(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pseudo-terminal transport is Linux-only")
	}
	link := filepath.Join(t.TempDir(), "headstage")
	if got := serveCommand(t, "--pty", "--link", link, "--channels", "4", "--seed", "5"); got != link {
		t.Fatalf("printed %q, want %q", got, link)
	}
	src, err := device.OpenSerial(context.Background(), device.SerialConfig{Path: link})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Channels != 4 || b.Rate != 30000 || b.Len() != 30 {
		t.Fatalf("block of %d channels at %g Hz, %d samples", b.Channels, b.Rate, b.Len())
	}
	rtt, err := src.Ping(ctx)
	if err != nil || rtt <= 0 {
		t.Fatalf("ping: %v, %v", rtt, err)
	}
}

func TestDevicesOutput(t *testing.T) {
	ports := []device.PortInfo{
		{Name: "/dev/ttyACM0", USB: true, VID: "2E8A", PID: "000A", SerialNumber: "E6614C", Manufacturer: "Raspberry Pi", Product: "Pico"},
		{Name: "/dev/ttyS0"},
	}
	var b bytes.Buffer
	if err := writePorts(&b, ports, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "PORT") ||
		strings.Join(strings.Fields(lines[1]), " ") != "/dev/ttyACM0 2E8A:000A E6614C Raspberry Pi Pico" ||
		strings.Join(strings.Fields(lines[2]), " ") != "/dev/ttyS0 - - - -" {
		t.Fatalf("table:\n%s", b.String())
	}
	b.Reset()
	if err := writePorts(&b, ports, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"vid": "2E8A"`) || !strings.Contains(b.String(), `"serial_number": "E6614C"`) {
		t.Fatalf("json:\n%s", b.String())
	}
	b.Reset()
	if err := writePorts(&b, nil, true); err != nil || strings.TrimSpace(b.String()) != "[]" {
		t.Fatalf("empty json %q, %v", b.String(), err)
	}
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"devices", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("devices --json: exit %d: %s", code, stderr.String())
	}
	if code := realMain([]string{"devices", "--bogus"}, &stdout, &stderr); code != 2 {
		t.Fatalf("devices --bogus: exit %d", code)
	}
}

func TestDevicesProbe(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("pseudo-terminal transport is Linux-only")
	}
	link := filepath.Join(t.TempDir(), "headstage")
	serveCommand(t, "--pty", "--link", link, "--channels", "6", "--pattern")
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"devices", "--probe", "--port", link, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var reports []portReport
	if err := json.Unmarshal(stdout.Bytes(), &reports); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	last := reports[len(reports)-1]
	if last.Name != link || last.Probe == nil || last.Probe.Error != "" || last.Probe.Chans != 6 ||
		last.Probe.Rate != 30000 || last.Probe.RTTMs <= 0 || !strings.Contains(last.Probe.Info, "spikeline-emulator") {
		t.Fatalf("probe of %s: %+v", link, last.Probe)
	}
	stdout.Reset()
	missing := filepath.Join(t.TempDir(), "gone")
	if code := realMain([]string{"devices", "--probe", "--port", missing}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "no answer") || !strings.Contains(stdout.String(), "DEVICE") {
		t.Fatalf("table:\n%s", stdout.String())
	}
}
