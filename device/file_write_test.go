package device

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestRecoverRecording simulates a crash: the writer synced, wrote more
// (with a gap the sidecar does not list yet), and died in the middle of a
// sample. Readers take the synced part; RecoverRecording makes it final.
func TestRecoverRecording(t *testing.T) {
	dir := t.TempDir()
	w, err := CreateRecording(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := &Block{First: 0, Rate: 1000, Channels: 3, Gain: 1, Samples: make([]int16, 3*10)}
	for i := range b.Samples {
		b.Samples[i] = int16(i + 1)
	}
	w.Write(b)
	b.First = 12 // a gap of 2, synced
	w.Write(b)
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	b.First = 30 // a gap of 8 the sidecar does not know yet
	w.Write(b)
	w.f.Write([]byte{1, 2, 3}) // a torn sample
	w.f.Close()                // no Close: the process died

	m, err := ReadMeta(filepath.Join(dir, RecordingMeta))
	if err != nil || !m.InProgress || m.Synced != 22 || m.Samples != 0 || !slices.Equal(m.Gaps, []MetaGap{{10, 2}}) {
		t.Fatalf("sidecar after the crash: %+v, %v", m, err)
	}
	src, _, err := OpenRecording(dir, RawConfig{})
	if err != nil {
		t.Fatalf("crashed recording: %v", err)
	}
	got, err := readAll(t, src)
	src.Close()
	if !errors.Is(err, io.EOF) || len(concat(got)) != 60 || src.Samples() != 22 || src.Ignored() != (8+10)*6+3 {
		t.Fatalf("crashed recording read: %d samples, %v; Samples %d, Ignored %d", len(concat(got)), err, src.Samples(), src.Ignored())
	}
	m, cut, err := RecoverRecording(dir)
	if err != nil || cut != (8+10)*6+3 || m.Samples != 22 || m.InProgress || m.Synced != 0 {
		t.Fatalf("recover: %+v, cut %d, %v", m, cut, err)
	}
	src, m2, err := OpenRecording(dir, RawConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got, err = readAll(t, src)
	src.Close()
	if !errors.Is(err, io.EOF) || len(concat(got)) != 60 || m2.InProgress || !slices.Equal(m2.Gaps, []MetaGap{{10, 2}}) {
		t.Fatalf("recovered: %d samples, %v, %+v", len(concat(got)), err, m2)
	}
	if _, cut, err := RecoverRecording(dir); err != nil || cut != 0 {
		t.Fatalf("recovering again: %d, %v", cut, err)
	}

	// An older sidecar without n_samples or in_progress: the reader
	// refuses the torn sample, RecoverRecording cuts it.
	legacy := t.TempDir()
	os.WriteFile(filepath.Join(legacy, RecordingMeta), []byte(`{"n_channels":3,"sample_rate":1000,"gain_uv_per_bit":1}`), 0o644)
	os.WriteFile(filepath.Join(legacy, RecordingData), make([]byte, 6*5+4), 0o644)
	if _, _, err := OpenRecording(legacy, RawConfig{}); !errors.Is(err, ErrPartialSample) {
		t.Fatalf("legacy torn recording: %v, want ErrPartialSample", err)
	}
	if m, cut, err := RecoverRecording(legacy); err != nil || cut != 4 || m.Samples != 5 {
		t.Fatalf("legacy recover: %+v, cut %d, %v", m, cut, err)
	}
	// A closed recording that grew afterwards is not "recovered".
	os.WriteFile(filepath.Join(legacy, RecordingData), make([]byte, 6*7), 0o644)
	if _, _, err := RecoverRecording(legacy); err == nil {
		t.Fatal("recovered a closed recording that changed afterwards")
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

// TestSegmenter: what starts a new segment, and why.
func TestSegmenter(t *testing.T) {
	mk := func(first uint64, ch int, rate float64) *Block {
		return &Block{First: first, Rate: rate, Channels: ch, Gain: 0.195, Samples: make([]int16, ch*10)}
	}
	var s Segmenter
	steps := []struct {
		b    *Block
		cut  bool
		want error
	}{
		{mk(100, 2, 1000), true, nil},                   // the first segment
		{mk(110, 2, 1000), false, nil},                  // contiguous
		{mk(200, 2, 1000), false, nil},                  // a short gap
		{mk(5, 2, 1000), true, ErrBackwards},            // a counter reset
		{mk(15, 4, 1000), true, ErrFormatChange},        // more channels
		{mk(25, 4, 2000), true, ErrFormatChange},        // another rate
		{mk(35+120_001, 4, 2000), true, ErrGapTooLarge}, // a gap over 60 s
		{mk(120_046, 4, 2000), false, nil},
	}
	for i, st := range steps {
		cut, why := s.Next(st.b)
		if cut != st.cut || !errors.Is(why, st.want) || (st.want == nil) != (why == nil) {
			t.Errorf("step %d (block at %d): cut %v, %v; want %v, %v", i, st.b.First, cut, why, st.cut, st.want)
		}
	}
	// MaxGaps gaps at most per segment.
	s = Segmenter{}
	for i := range MaxGaps + 1 {
		cut, why := s.Next(mk(uint64(i)*20, 1, 1000))
		if cut != (i == 0) || why != nil {
			t.Fatalf("gap %d: cut %v, %v", i, cut, why)
		}
	}
	if cut, why := s.Next(mk(uint64(MaxGaps+1)*20+5, 1, 1000)); !cut || !errors.Is(why, ErrTooManyGaps) {
		t.Fatalf("gap %d: cut %v, %v", MaxGaps+1, cut, why)
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

// TestRawWriterSyncError: an fsync that fails is returned, with the file.
func TestRawWriterSyncError(t *testing.T) {
	w, err := CreateRecording(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(&Block{Rate: 1000, Channels: 1, Gain: 1, Samples: make([]int16, 10)})
	w.f.Close() // the next fsync fails
	if err := w.Sync(); err == nil || !strings.Contains(err.Error(), "fsync") {
		t.Fatalf("Sync after the file failed: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after the file failed: no error")
	}
}
