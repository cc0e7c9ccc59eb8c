package device

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLimitsMeta: a sidecar's numbers are refused outside the limits
// with an error naming the sidecar, the field and the allowed range.
func TestLimitsMeta(t *testing.T) {
	cases := []struct {
		json, want string
	}{
		{`{"n_channels":16,"sample_rate":1e300,"gain_uv_per_bit":0.195}`, "sample_rate = 1e+300, want 1..200000 Hz"},
		{`{"n_channels":16,"sample_rate":1e10,"gain_uv_per_bit":0.195}`, "sample_rate = 1e+10, want 1..200000 Hz"},
		{`{"n_channels":16,"sample_rate":0.5,"gain_uv_per_bit":0.195}`, "sample_rate = 0.5, want 1..200000 Hz"},
		{`{"n_channels":65535,"sample_rate":30000,"gain_uv_per_bit":0.195}`, "n_channels = 65535, want 1..8192 channels"},
		{`{"n_channels":0,"sample_rate":30000,"gain_uv_per_bit":0.195}`, "n_channels = 0, want 1..8192 channels"},
		{`{"n_channels":4,"sample_rate":30000,"gain_uv_per_bit":1e30}`, "gain_uv_per_bit = 1e+30, want > 0 and <= 1e+06 µV/count"},
		{`{"n_channels":4,"sample_rate":30000,"gain_uv_per_bit":0.195,"first_sample":18446744073709551615,"n_samples":2}`, "overflows"},
		{`{"n_channels":4,"sample_rate":1e999,"gain_uv_per_bit":0.195}`, "sample_rate"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		path := filepath.Join(dir, "recording.json")
		if err := os.WriteFile(path, []byte(c.json), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadMeta(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want an error naming %s and %q", c.json, err, path, c.want)
		}
	}
	_, err := ReadMeta(filepath.Join(dir, "recording.json"))
	var re *RangeError
	if !errors.As(err, &re) && !strings.Contains(err.Error(), "sample_rate") {
		t.Errorf("%v is not a RangeError", err)
	}
}

// TestLimitsReadFile: a sidecar (or config) that does not end, or is too
// large, is refused after reading at most the limit.
func TestLimitsReadFile(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, err := ReadMeta("/dev/zero")
		if !errors.Is(err, ErrRange) || !strings.Contains(err.Error(), "/dev/zero: size = more than 16777216 bytes") {
			t.Errorf("ReadMeta(/dev/zero) = %v", err)
		}
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, bytes.Repeat([]byte(" "), 1025), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFileLimit(big, 1024); !errors.Is(err, ErrRange) || !strings.Contains(err.Error(), "size = 1025 bytes, want at most 1024 bytes") {
		t.Errorf("ReadFileLimit(1025 bytes, 1024) = %v", err)
	}
	if b, err := ReadFileLimit(big, 1025); err != nil || len(b) != 1025 {
		t.Errorf("ReadFileLimit(1025 bytes, 1025) = %d bytes, %v", len(b), err)
	}
	if _, err := ReadFileLimit(dir, 1024); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("ReadFileLimit(dir) = %v", err)
	}
}

// TestLimitsFIFO: a named pipe nobody writes to is refused as a raw or
// wire recording, and reads as empty as a sidecar: nothing blocks.
func TestLimitsFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "recording.dat")
	if err := mkfifo(fifo); err != nil {
		t.Skip(err)
	}
	if _, err := OpenRaw(fifo, RawConfig{Channels: 2, Rate: 30000, Gain: 1}); err == nil || !strings.Contains(err.Error(), "a named pipe (FIFO), not a regular file") {
		t.Errorf("OpenRaw(fifo) = %v", err)
	}
	if _, err := OpenWireFile(fifo); err == nil || !strings.Contains(err.Error(), "a named pipe (FIFO), not a regular file") {
		t.Errorf("OpenWireFile(fifo) = %v", err)
	}
	if _, err := ReadMeta(fifo); err == nil || !strings.Contains(err.Error(), "unexpected end of JSON input") {
		t.Errorf("ReadMeta(fifo) = %v", err)
	}
}

// TestLimitsRaw: a raw file's configuration is bounded.
func TestLimitsRaw(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeRaw(t, dir, 4, 10, 1)
	for _, c := range []struct {
		cfg  RawConfig
		want string
	}{
		{RawConfig{Channels: 4, Rate: 1e12, Gain: 1}, "sample rate = 1e+12, want 1..200000 Hz"},
		{RawConfig{Channels: 9000, Rate: 30000, Gain: 1}, "channels = 9000, want 1..8192 channels"},
		{RawConfig{Channels: 4, Rate: 30000, Gain: 1, BlockSamples: 1 << 30}, "samples per block = 1073741824, want 0..8388608"},
	} {
		if _, err := OpenRaw(path, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestLimitsWireFrames: a data frame announcing more channels, a higher
// rate or a larger gain than the limits is a bad frame, skipped whole, and
// the frames around it are delivered.
func TestLimitsWireFrames(t *testing.T) {
	good := AppendData(nil, 0, 30000, 0.195, 2, []int16{1, 2}, 0)
	cases := map[string][]byte{
		"channels": AppendData(nil, 1, 30000, 0.195, MaxChannels+1, make([]int16, MaxChannels+1), 0),
		"rate":     AppendData(nil, 1, 4_000_000_000, 0.195, 2, []int16{1, 2}, 0),
		"gain":     AppendData(nil, 1, 30000, 1e9, 2, []int16{1, 2}, 0),
	}
	for name, bad := range cases {
		d := NewDecoder(bytes.NewReader(append(append(bytes.Clone(good), bad...), good...)))
		n := 0
		for {
			f, err := d.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("%s: %v", name, err)
				}
				break
			}
			if f.Channels != 2 || f.Rate != 30000 {
				t.Fatalf("%s: delivered %d channels at %d Hz", name, f.Channels, f.Rate)
			}
			n++
		}
		ev := d.TakeEvents(nil)
		if n != 2 || d.Stats().BadFrames != 1 || len(ev) == 0 || ev[0].Kind != EventBadFrame || !strings.Contains(ev[0].Detail, "data frame: ") {
			t.Errorf("%s: %d frames, stats %+v, events %v", name, n, d.Stats(), ev)
		}
	}
}

func TestLimitsLineLimit(t *testing.T) {
	in := "a,b\n" + strings.Repeat("x", 10) + "\nshort\n"
	got, err := io.ReadAll(LineLimit(strings.NewReader(in), 10))
	if err != nil || string(got) != in {
		t.Fatalf("10-byte lines: %q, %v", got, err)
	}
	got, err = io.ReadAll(LineLimit(strings.NewReader(in), 9))
	if !errors.Is(err, ErrRange) || string(got) != "a,b\n"+strings.Repeat("x", 9) {
		t.Fatalf("9-byte limit: %q, %v", got, err)
	}
	// An endless line is cut after the limit.
	got, err = io.ReadAll(io.LimitReader(LineLimit(zeros{}, 1<<16), 1<<30))
	if !errors.Is(err, ErrRange) || len(got) != 1<<16 {
		t.Fatalf("zeros: %d bytes, %v", len(got), err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
