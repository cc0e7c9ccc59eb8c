package device

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeRaw writes channels x n random int16 samples to a file in dir and
// returns its path and the samples.
func writeRaw(t *testing.T, dir string, channels, n int, seed uint64) (string, []int16) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	s := make([]int16, channels*n)
	b := make([]byte, 2*len(s))
	for i := range s {
		s[i] = int16(rng.IntN(1 << 16))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s[i]))
	}
	path := filepath.Join(dir, "recording.dat")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, s
}

// readAll drains src and checks that its Blocks are contiguous unless an
// Event says why not.
func readAll(t *testing.T, src Source) ([]Block, error) {
	t.Helper()
	var blocks []Block
	for {
		b, err := src.Next(context.Background())
		if err != nil {
			return blocks, err
		}
		if len(blocks) > 0 && len(b.Events) == 0 && b.First != blocks[len(blocks)-1].End() {
			t.Fatalf("block at %d after block ending at %d", b.First, blocks[len(blocks)-1].End())
		}
		blocks = append(blocks, b)
	}
}

func concat(blocks []Block) []int16 {
	var s []int16
	for _, b := range blocks {
		s = append(s, b.Samples...)
	}
	return s
}

func TestRawRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path, want := writeRaw(t, dir, 3, 2500, 1)
	src, err := OpenRaw(path, RawConfig{Channels: 3, Rate: 30000, Gain: 0.195, BlockSamples: 1000, First: 77, Samples: 2500})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	blocks, err := readAll(t, src)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if len(blocks) != 3 || blocks[0].Len() != 1000 || blocks[2].Len() != 500 || blocks[0].First != 77 {
		t.Fatalf("blocks: %d, first %d", len(blocks), blocks[0].First)
	}
	if b := blocks[1]; b.Rate != 30000 || b.Gain != 0.195 || b.Channels != 3 || b.Received.IsZero() {
		t.Fatalf("block %+v", b)
	}
	if got := concat(blocks); !slices.Equal(got, want) {
		t.Fatal("samples differ")
	}
	// Blocks are fresh copies: reading again must not change them.
	kept := slices.Clone(blocks[0].Samples)
	src.Seek(0)
	again, _ := readAll(t, src)
	if !slices.Equal(blocks[0].Samples, kept) || !slices.Equal(concat(again), want) {
		t.Fatal("Seek(0) replay differs or reused kept samples")
	}
	src.Seek(2400)
	b, err := src.Next(context.Background())
	if err != nil || b.First != 77+2400 || b.Len() != 100 || !slices.Equal(b.Samples, want[3*2400:]) {
		t.Fatalf("after Seek(2400): first %d len %d err %v", b.First, b.Len(), err)
	}
}

// TestRawBuffers: with RawConfig.Buffers the source cycles through that
// many Samples buffers (a block stays intact for Buffers-1 more reads, no
// allocation per block) and reads the same samples; a negative count is
// refused.
func TestRawBuffers(t *testing.T) {
	dir := t.TempDir()
	path, want := writeRaw(t, dir, 5, 2300, 2)
	src, err := OpenRaw(path, RawConfig{Channels: 5, Rate: 30000, Gain: 0.195, BlockSamples: 200, Buffers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got []int16
	var blocks []Block
	for {
		b, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		i := len(blocks)
		for _, h := range blocks[max(0, i-2):] {
			if !slices.Equal(h.Samples, want[5*int(h.First):5*int(h.End())]) {
				t.Fatalf("block at %d overwritten by the read of the block at %d", h.First, b.First)
			}
			if &h.Samples[0] == &b.Samples[0] {
				t.Fatalf("block at %d shares its buffer with the block at %d", h.First, b.First)
			}
		}
		if i >= 3 && &blocks[i-3].Samples[0] != &b.Samples[0] {
			t.Fatalf("block at %d: not the buffer of the block at %d", b.First, blocks[i-3].First)
		}
		got = append(got, b.Samples...)
		blocks = append(blocks, b)
	}
	if !slices.Equal(got, want) {
		t.Fatal("samples differ")
	}
	if n := testing.AllocsPerRun(20, func() {
		src.Seek(0)
		if _, err := src.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}); n > 0 {
		t.Errorf("%v allocations per block", n)
	}
	if _, err := OpenRaw(path, RawConfig{Channels: 5, Rate: 30000, Gain: 0.195, Buffers: -1}); err == nil || !strings.Contains(err.Error(), "buffers") {
		t.Errorf("Buffers -1: %v", err)
	}
}

func TestRawHeader(t *testing.T) {
	dir := t.TempDir()
	path, want := writeRaw(t, dir, 2, 50, 8)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, append([]byte("HDR-16-BYTES-xyz"), b...), 0o644)
	src, err := OpenRaw(path, RawConfig{Channels: 2, Rate: 1000, Gain: 1, Header: 16, Samples: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	blocks, err := readAll(t, src)
	if !errors.Is(err, io.EOF) || !slices.Equal(concat(blocks), want) {
		t.Fatalf("%d blocks, %v", len(blocks), err)
	}
	// Read without skipping the header, the file holds 54 samples, not 50.
	if _, err := OpenRaw(path, RawConfig{Channels: 2, Rate: 1000, Gain: 1, Samples: 50}); !errors.Is(err, ErrSampleCount) {
		t.Fatalf("without the header: %v", err)
	}
	if _, err := OpenRaw(path, RawConfig{Channels: 2, Rate: 1000, Gain: 1, Header: 1000}); !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "header") {
		t.Fatalf("header longer than the file: %v", err)
	}
}

func TestRecordingSidecar(t *testing.T) {
	dir := t.TempDir()
	_, want := writeRaw(t, dir, 4, 300, 2)
	if err := WriteMeta(filepath.Join(dir, "recording.json"), Meta{Channels: 4, Rate: 20000, Gain: 0.2, Samples: 300, DataFile: "recording.dat"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "recording.json")} {
		src, m, err := OpenRecording(p, RawConfig{BlockSamples: 128})
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := readAll(t, src)
		src.Close()
		if !errors.Is(err, io.EOF) || m.Channels != 4 || len(blocks) != 3 || blocks[0].Rate != 20000 || blocks[0].Gain != 0.2 || !slices.Equal(concat(blocks), want) {
			t.Fatalf("%s: %d blocks, meta %+v, %v", p, len(blocks), m, err)
		}
	}
}

// TestRawBadFiles checks that each kind of bad raw file is refused with an
// error naming the file, the byte offset and the kind of problem.
func TestRawBadFiles(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeRaw(t, dir, 4, 12, 3) // 96 bytes
	odd := filepath.Join(dir, "odd.dat")
	os.WriteFile(odd, make([]byte, 101), 0o644)
	cases := []struct {
		name   string
		path   string
		cfg    RawConfig
		target error
		offset int64
		text   string
	}{
		{"partial sample", odd, RawConfig{Channels: 2, Rate: 1000, Gain: 1}, ErrPartialSample, 100, "1 trailing bytes"},
		{"wrong channel count", path, RawConfig{Channels: 5, Rate: 1000, Gain: 1}, ErrPartialSample, 90, "5-channel"},
		{"truncated", path, RawConfig{Channels: 4, Rate: 1000, Gain: 1, Samples: 20}, ErrSampleCount, 96, "recording.json says n_samples=20 but file holds 12"},
		{"too long", path, RawConfig{Channels: 4, Rate: 1000, Gain: 1, Samples: 10}, ErrSampleCount, 80, "recording.json says n_samples=10 but file holds 12"},
		{"wrong channels, size fits", path, RawConfig{Channels: 3, Rate: 1000, Gain: 1, Samples: 12}, ErrSampleCount, 72, "n_samples=12 but file holds 16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, err := OpenRaw(c.path, c.cfg)
			if err == nil {
				src.Close()
				t.Fatal("bad file accepted")
			}
			var fe *FrameError
			if !errors.As(err, &fe) || !errors.Is(err, c.target) || fe.Offset != c.offset {
				t.Fatalf("error %v (offset %v), want %v at byte %d", err, fe, c.target, c.offset)
			}
			msg := err.Error()
			for _, want := range []string{c.path, fmt.Sprintf("byte %d", c.offset), c.text} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
		})
	}
	for _, cfg := range []RawConfig{{Rate: 1, Gain: 1}, {Channels: 1, Gain: 1}, {Channels: 1, Rate: 1}, {Channels: 1, Rate: 1, Gain: 1, Pace: -1}, {Channels: 64, Rate: 1, Gain: 1, BlockSamples: 1 << 30},
		{Channels: 4, Rate: 1, Gain: 1, Gaps: []MetaGap{{Sample: 10, Count: 5}}}, {Channels: 4, Rate: 1, Gain: 1, Gaps: []MetaGap{{Sample: 5, Count: 2}, {Sample: 4, Count: 1}}}} {
		if _, err := OpenRaw(path, cfg); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("config %+v: error %v, want one naming %s", cfg, err, path)
		}
	}
	if _, err := OpenRaw(filepath.Join(dir, "missing.dat"), RawConfig{Channels: 1, Rate: 1, Gain: 1}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRawTruncatedWhileReading(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeRaw(t, dir, 2, 100, 4)
	src, err := OpenRaw(path, RawConfig{Channels: 2, Rate: 1000, Gain: 1, BlockSamples: 40})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 250); err != nil {
		t.Fatal(err)
	}
	_, err = src.Next(context.Background())
	var fe *FrameError
	if !errors.As(err, &fe) || !errors.Is(err, ErrTruncated) || fe.Offset != 250 || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want ErrTruncated at byte 250 naming the file", err)
	}
}

func TestWireFile(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	stream, frames := encodeFrames(rng, 500, 10, 8, 16)
	path := filepath.Join(dir, "link.spkw")
	os.WriteFile(path, stream, 0o644)
	w, err := OpenWireFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readAll(t, w)
	w.Close()
	if !errors.Is(err, io.EOF) || len(blocks) != 10 || blocks[0].First != 500 || blocks[0].Rate != 30000 || blocks[0].Gain != float64(float32(0.195)) {
		t.Fatalf("%d blocks, %v", len(blocks), err)
	}
	for i, b := range blocks {
		if !slices.Equal(b.Samples, frames[i].samples) {
			t.Fatalf("block %d samples differ", i)
		}
	}

	// Cut inside the last frame: the error names the file and the frame's offset.
	cut := filepath.Join(dir, "cut.spkw")
	os.WriteFile(cut, stream[:len(stream)-10], 0o644)
	w, _ = OpenWireFile(cut)
	blocks, err = readAll(t, w)
	w.Close()
	var fe *FrameError
	want := fmt.Sprintf("%s: byte %d: truncated frame", cut, frames[9].off)
	if len(blocks) != 9 || !errors.As(err, &fe) || !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), want) {
		t.Fatalf("%d blocks, error %v; want 9 and %q", len(blocks), err, want)
	}

	// A damaged frame: reported as events by default, an error when Strict.
	bad := slices.Clone(stream)
	bad[frames[4].off+HeaderSize+3] ^= 0x40
	damaged := filepath.Join(dir, "damaged.spkw")
	os.WriteFile(damaged, bad, 0o644)
	w, _ = OpenWireFile(damaged)
	blocks, err = readAll(t, w)
	w.Close()
	if !errors.Is(err, io.EOF) || len(blocks) != 9 || w.Stats().CRCErrors != 1 || w.Stats().LostSamples != 16 {
		t.Fatalf("%d blocks, %v, stats %+v", len(blocks), err, w.Stats())
	}
	ev := blocks[4].Events
	if len(ev) != 3 || ev[0].Kind != EventCRC || ev[0].Offset != int64(frames[4].off) || ev[1].Kind != EventResync || ev[2].Kind != EventGap || ev[2].Count != 16 {
		t.Fatalf("events on the block after the damage: %v", ev)
	}
	w, _ = OpenWireFile(damaged)
	w.Strict = true
	blocks, err = readAll(t, w)
	w.Close()
	want = fmt.Sprintf("%s: byte %d: frame CRC-32C mismatch", damaged, frames[4].off)
	if len(blocks) != 4 || err == nil || err.Error() != "device: "+want {
		t.Fatalf("strict: %d blocks, error %v; want 4 and %q", len(blocks), err, want)
	}

	if _, err := OpenWireFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// BenchmarkRawRead measures reading a raw 64-channel file into Blocks of
// 1024 samples (bytes of file per second).
func BenchmarkRawRead(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "bench.dat")
	const channels, n = 64, 1 << 15
	if err := os.WriteFile(path, make([]byte, 2*channels*n), 0o644); err != nil {
		b.Fatal(err)
	}
	src, err := OpenRaw(path, RawConfig{Channels: channels, Rate: 30000, Gain: 0.195})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	b.SetBytes(2 * channels * DefaultBlockSamples)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := src.Next(ctx); err == io.EOF {
			src.Seek(0)
		} else if err != nil {
			b.Fatal(err)
		}
	}
}
