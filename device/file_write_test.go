package device

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRawWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := CreateRecording(dir)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(first uint64, n int) *Block {
		b := &Block{First: first, Rate: 1000, Channels: 2, Gain: 0.195, Samples: make([]int16, 2*n)}
		for i := range b.Samples {
			b.Samples[i] = int16(int(first)*2 + i)
		}
		return b
	}
	blocks := []*Block{mk(500, 10), mk(510, 5), mk(520, 10), mk(530, 0), mk(530, 3)}
	for _, b := range blocks {
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(mk(100, 1)); !errors.Is(err, ErrBackwards) {
		t.Fatalf("backwards block: %v", err)
	}
	bad := mk(533, 1)
	bad.Channels, bad.Samples = 1, bad.Samples[:1]
	if err := w.Write(bad); !errors.Is(err, ErrFormatChange) {
		t.Fatalf("format change: %v", err)
	}
	if err := w.Write(mk(533+60*1000+1, 1)); !errors.Is(err, ErrGapTooLarge) {
		t.Fatalf("huge gap: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	src, m, err := OpenRecording(dir, RawConfig{BlockSamples: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if m.First != 500 || m.Samples != 33 || !slices.Equal(m.Gaps, []MetaGap{{Sample: 515, Count: 5}}) {
		t.Fatalf("meta %+v", m)
	}
	got, err := readAll(t, src)
	if !errors.Is(err, io.EOF) || got[0].First != 500 {
		t.Fatalf("read back: %v", err)
	}
	// The zero-filled gap is stepped over and reported, as it was live.
	var gaps []Event
	for _, b := range got {
		for _, e := range b.Events {
			gaps = append(gaps, e)
			if b.First != 520 {
				t.Errorf("gap event on the block at %d", b.First)
			}
		}
		if b.First < 520 && b.End() > 515 {
			t.Errorf("block %d..%d covers the gap", b.First, b.End())
		}
	}
	if len(gaps) != 1 || gaps[0].Kind != EventGap || gaps[0].Sample != 520 || gaps[0].Count != 5 || gaps[0].Offset != 15*4 {
		t.Fatalf("gap events %v", gaps)
	}
	var want []int16
	want = append(want, blocks[0].Samples...)
	want = append(want, blocks[1].Samples...)
	want = append(want, blocks[2].Samples...)
	want = append(want, blocks[4].Samples...)
	if !slices.Equal(concat(got), want) {
		t.Fatalf("samples read back differ:\n got %v\nwant %v", concat(got), want)
	}

	if _, err := CreateRecording(dir); err == nil {
		t.Fatal("overwrote an existing recording")
	}
}

// TestRecoverRecording simulates a crash: the writer synced, wrote more,
// and died in the middle of a sample.
func TestRecoverRecording(t *testing.T) {
	dir := t.TempDir()
	w, err := CreateRecording(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := &Block{First: 0, Rate: 1000, Channels: 3, Gain: 1, Samples: make([]int16, 3*10)}
	w.Write(b)
	w.Sync()
	b.First = 10
	w.Write(b)
	w.f.Write([]byte{1, 2, 3}) // a torn sample
	w.f.Close()                // no Close: the process died

	if _, _, err := OpenRecording(dir, RawConfig{}); !errors.Is(err, ErrPartialSample) {
		t.Fatalf("crashed recording: %v, want ErrPartialSample", err)
	}
	m, cut, err := RecoverRecording(dir)
	if err != nil || cut != 3 || m.Samples != 20 {
		t.Fatalf("recover: %+v, cut %d, %v", m, cut, err)
	}
	src, _, err := OpenRecording(dir, RawConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got, err := readAll(t, src)
	if !errors.Is(err, io.EOF) || len(concat(got)) != 60 {
		t.Fatalf("recovered: %d samples, %v", len(concat(got)), err)
	}
	if _, cut, err := RecoverRecording(dir); err != nil || cut != 0 {
		t.Fatalf("recovering again: %d, %v", cut, err)
	}
	// An empty recording leaves nothing behind.
	empty := filepath.Join(t.TempDir(), "empty")
	w, _ = CreateRecording(empty)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("empty recording left %v", entries)
	}
}

// BenchmarkRawWrite measures recording 64-channel Blocks of 1024 samples
// (bytes of file per second; page cache, no Sync).
func BenchmarkRawWrite(b *testing.B) {
	w, err := CreateRecording(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	blk := &Block{Rate: 30000, Channels: 64, Gain: 0.195, Samples: make([]int16, 64*1024)}
	b.SetBytes(2 * 64 * 1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		blk.First = uint64(i) * 1024
		if err := w.Write(blk); err != nil {
			b.Fatal(err)
		}
	}
}
