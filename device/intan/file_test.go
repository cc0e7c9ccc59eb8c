package intan_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/intan"
)

// amp is the raw amplifier value testdata/make_intan.py writes for
// timestamp t and amplifier channel c (among the enabled ones).
func amp(t int64, c int) uint16 { return uint16(((t*131+int64(c)*977+12345)%65536 + 65536) % 65536) }

// The test files, made by testdata/make_intan.py from Intan's published
// format description.
var files = []struct {
	name         string
	rhs          bool
	major, minor int
	amps         int
	samples      int64
	t0           int64
	notch        float64
	applied      bool
	perBlock     int
	names        string // the first amplifier channels
}{
	{"v1_0.rhd", false, 1, 0, 4, 180, 0, 0, false, 60, "A-000,A-001,A-003,A-004"},
	{"v1_1.rhd", false, 1, 1, 4, 180, 0, 0, false, 60, "A-000,A-001,A-002,A-003"},
	{"v1_2.rhd", false, 1, 2, 3, 240, -120, 0, false, 60, "A-000,A-001,A-002"},
	{"v1_3.rhd", false, 1, 3, 4, 120, 0, 0, false, 60, "A-000,A-001,A-002,A-003"},
	{"v2_0.rhd", false, 2, 0, 8, 384, 0, 60, false, 128, "A-000,A-001,A-002,A-003,A-004,A-005,B-000,B-001"},
	{"v3_4.rhd", false, 3, 4, 11, 384, 0, 50, true, 128, "A-000,A-001,A-002,A-003,A-004,A-005,A-006,A-007,B-001,B-002,B-003"},
	{"v1_0.rhs", true, 1, 0, 4, 384, 0, 0, false, 128, "A-000,A-001,A-002,A-003"},
	{"v3_4.rhs", true, 3, 4, 6, 256, 256, 60, true, 128, "A-000,A-002,A-003,A-004,B-000,B-001"},
}

// readAll reads a source to the end.
func readAll(t *testing.T, src device.Source) []device.Block {
	t.Helper()
	var out []device.Block
	for {
		b, err := src.Next(context.Background())
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// TestFiles: every header version reads, with the right channels, and
// every sample is the one the generator wrote, whatever else the data
// blocks hold (aux, supply, temperature, ADC, DAC, DC, stimulation,
// digital words).
func TestFiles(t *testing.T) {
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			src, err := intan.OpenFile(filepath.Join("testdata", f.name), intan.FileConfig{BlockSamples: 100})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			h := src.Header()
			if h.RHS != f.rhs || h.Major != f.major || h.Minor != f.minor || len(h.Amplifier) != f.amps || h.Samples() != f.samples ||
				h.NotchHz != f.notch || h.NotchApplied != f.applied || h.SamplesPerBlock != f.perBlock || h.SampleRate != 30000 {
				t.Errorf("header %+v", h)
			}
			if got := strings.Join(src.ChannelNames(), ","); got != f.names {
				t.Errorf("channels %s, want %s", got, f.names)
			}
			if h.Notes[0] != "note one" && h.Notes[1] != "stim" {
				t.Errorf("notes %q", h.Notes)
			}
			shift := max(0, -f.t0)
			var n int64
			for _, b := range readAll(t, src) {
				if len(b.Events) > 0 || b.Gain != intan.Gain || b.First != uint64(f.t0+shift+n) {
					t.Fatalf("block at %d (events %v), want %d", b.First, b.Events, f.t0+shift+n)
				}
				for i := range b.Len() {
					for c := range f.amps {
						if want := int16(int32(amp(f.t0+n+int64(i), c)) - 32768); b.At(i, c) != want {
							t.Fatalf("timestamp %d channel %d: %d, want %d", f.t0+n+int64(i), c, b.At(i, c), want)
						}
					}
				}
				n += int64(b.Len())
			}
			if n != f.samples {
				t.Errorf("%d samples, want %d", n, f.samples)
			}
		})
	}
}

// TestFileChannels: a subset of channels, in the order asked.
func TestFileChannels(t *testing.T) {
	src, err := intan.OpenFile("testdata/v3_4.rhd", intan.FileConfig{Channels: []int{9, 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if got := strings.Join(src.ChannelNames(), ","); got != "B-002,A-000" {
		t.Errorf("channels %s", got)
	}
	b := readAll(t, src)[0]
	if b.At(5, 0) != int16(int32(amp(5, 9))-32768) || b.At(5, 1) != int16(int32(amp(5, 0))-32768) {
		t.Errorf("samples %v", b.Samples[:4])
	}
}

// TestFileGap: a jump in the timestamps ends a Block, and the next one
// reports the samples lost.
func TestFileGap(t *testing.T) {
	src, err := intan.OpenFile("testdata/gap.rhd", intan.FileConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bs := readAll(t, src)
	if len(bs) != 2 || bs[0].First != 0 || bs[0].Len() != 256 || bs[1].First != 1256 || bs[1].Len() != 256 {
		t.Fatalf("blocks %d", len(bs))
	}
	e := bs[1].Events
	if len(e) != 1 || e[0].Kind != device.EventGap || e[0].Count != 1000 || e[0].Sample != 1256 || !strings.Contains(e[0].Detail, "gap.rhd") {
		t.Errorf("events %v", e)
	}
	if bs[1].At(0, 1) != int16(int32(amp(1256, 1))-32768) {
		t.Errorf("after the gap: %d", bs[1].At(0, 1))
	}
}

// TestFileBadInput: a truncated data block, a file that is not Intan's,
// a header cut short: errors naming the file and byte offset.
func TestFileBadInput(t *testing.T) {
	dir := t.TempDir()
	orig, err := os.ReadFile("testdata/v2_0.rhd")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		want []string
		is   error
	}{
		{"truncated.rhd", orig[:len(orig)-100], []string{"truncated.rhd", "byte 8608", "2 whole data blocks of 3522 bytes", "3422 bytes of a truncated one"}, intan.ErrTruncated},
		{"wire.rhd", []byte{0xa5, 0x5a, 0xc3, 0x3c, 1, 2, 3, 4}, []string{"wire.rhd", "byte 0", "magic number 0x3cc35aa5"}, intan.ErrFormat},
		{"short.rhd", orig[:60], []string{"short.rhd", "byte 52", "note 1", "the header is cut short"}, intan.ErrFormat},
		{"empty.rhd", nil, []string{"empty.rhd", "byte 0"}, intan.ErrFormat},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := intan.OpenFile(p, intan.FileConfig{})
		if err == nil {
			t.Errorf("%s: opened", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
		if !errors.Is(err, c.is) {
			t.Errorf("%s: %v is not %v", c.name, err, c.is)
		}
	}
}

// TestNeoSameSamples: neo's IntanRawIO (python3-neo) reads the same
// amplifier samples as spikeline from every test file.
func TestNeoSameSamples(t *testing.T) {
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import neo.rawio, numpy").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("no python3 with neo: apt-get install python3-neo to cross-check with neo's IntanRawIO")
	}
	out := t.TempDir()
	args := []string{"testdata/neo_intan.py", out}
	for _, f := range files {
		args = append(args, filepath.Join("testdata", f.name))
	}
	cmd := exec.Command(py, args...)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("neo: %v", err)
	}
	var res struct {
		Neo   string
		Files map[string]struct {
			Names   []string
			Gains   []float64
			Offsets []float64
			Rate    float64
			Size    int64
		}
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		n := res.Files[f.name]
		if strings.Join(n.Names, ",") != f.names || n.Size != f.samples || n.Rate != 30000 || n.Gains[0] != 0.195 || n.Offsets[0] != -32768*0.195 {
			t.Errorf("%s: neo %s sees %+v", f.name, res.Neo, n)
		}
		raw, err := os.ReadFile(filepath.Join(out, f.name+".u16"))
		if err != nil {
			t.Fatal(err)
		}
		src, err := intan.OpenFile(filepath.Join("testdata", f.name), intan.FileConfig{})
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for _, b := range readAll(t, src) {
			for _, v := range b.Samples {
				if want := binary.LittleEndian.Uint16(raw[2*i:]); uint16(v)^0x8000 != want {
					t.Fatalf("%s: value %d: spikeline %d, neo %d", f.name, i, uint16(v)^0x8000, want)
				}
				i++
			}
		}
		src.Close()
		if 2*i != len(raw) {
			t.Errorf("%s: spikeline read %d values, neo %d", f.name, i, len(raw)/2)
		}
	}
}
