package device

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPacerDue(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	p := Pacer{Speed: 1, now: func() time.Time { return now }}
	block := func(first uint64, n int, rate float64) *Block {
		return &Block{First: first, Rate: rate, Channels: 1, Samples: make([]int16, n)}
	}
	ms := func(d int) time.Time { return start.Add(time.Duration(d) * time.Millisecond) }
	steps := []struct {
		b   *Block
		now time.Time
		due time.Time
	}{
		{block(1000, 100, 1000), ms(0), ms(100)},   // anchor at the first block; due when its last sample is in
		{block(1100, 100, 1000), ms(5), ms(200)},   // contiguous
		{block(1300, 100, 1000), ms(10), ms(400)},  // a gap still takes time
		{block(0, 100, 1000), ms(400), ms(500)},    // reset: re-anchor
		{block(100, 200, 2000), ms(450), ms(550)},  // rate change: re-anchor at 2 kHz
		{block(300, 200, 2000), ms(2000), ms(650)}, // late: due in the past, no waiting
	}
	for i, s := range steps {
		now = s.now
		if got := p.Due(s.b); !got.Equal(s.due) {
			t.Fatalf("step %d: due %v, want %v", i, got.Sub(start), s.due.Sub(start))
		}
	}
	// Twice real time halves the intervals.
	p = Pacer{Speed: 2, now: func() time.Time { return now }}
	now = start
	p.Due(block(0, 100, 1000))
	if got := p.Due(block(100, 100, 1000)); !got.Equal(ms(100)) {
		t.Fatalf("speed 2: due %v, want 100ms", got.Sub(start))
	}
	// MaxLag: a consumer 1 s behind re-anchors instead of bursting.
	p = Pacer{Speed: 1, MaxLag: 500 * time.Millisecond, now: func() time.Time { return now }}
	now = start
	p.Due(block(0, 100, 1000))
	now = ms(1000)
	if got := p.Due(block(100, 100, 1000)); !got.Equal(ms(1100)) {
		t.Fatalf("max lag: due %v, want 1.1s", got.Sub(start))
	}
	if !(&Pacer{}).Due(block(0, 10, 1000)).IsZero() {
		t.Fatal("the zero Pacer paces")
	}
}

// TestPacedRaw checks real-time replay of a raw file: it must not run
// ahead of the recording's clock (a lower bound only; a loaded machine may
// make it slower), and cancellation must end a wait.
func TestPacedRaw(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeRaw(t, dir, 2, 1000, 5) // 1000 samples at 20 kHz = 50 ms
	src, err := OpenRaw(path, RawConfig{Channels: 2, Rate: 20000, Gain: 1, BlockSamples: 100, Pace: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	start := time.Now()
	blocks, err := readAll(t, src)
	if el := time.Since(start); el < 50*time.Millisecond || len(blocks) != 10 || !errors.Is(err, io.EOF) {
		t.Fatalf("10 blocks of 5 ms took %v (%d blocks, %v)", el, len(blocks), err)
	}

	slow, err := OpenRaw(path, RawConfig{Channels: 2, Rate: 20000, Gain: 1, BlockSamples: 1000, Pace: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := slow.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled wait: %v", err)
	}

	// Paced wraps any Source.
	wf := filepath.Join(dir, "w.spkw")
	var stream []byte
	for i := range 4 {
		stream = AppendData(stream, uint64(100*i), 10000, 1, 1, make([]int16, 100), 0)
	}
	os.WriteFile(wf, stream, 0o644)
	w, err := OpenWireFile(wf)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start = time.Now()
	blocks, _ = readAll(t, Paced(w, 1))
	if el := time.Since(start); el < 40*time.Millisecond || len(blocks) != 4 {
		t.Fatalf("4 blocks of 10 ms took %v (%d blocks)", el, len(blocks))
	}
}
