package offline

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/device"
)

// TestReadAhead: through ReadAhead a raw file that reuses AheadBuffers
// sample buffers reads the same samples, in order, as directly; Stop in
// the middle ends the reader.
func TestReadAhead(t *testing.T) {
	const ch, n = 7, 5000
	want := make([]int16, ch*n)
	raw := make([]byte, 2*len(want))
	for i := range want {
		want[i] = int16(i*7919 + i/3)
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(want[i]))
	}
	path := filepath.Join(t.TempDir(), "r.dat")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	open := func() *device.RawSource {
		src, err := device.OpenRaw(path, device.RawConfig{Channels: ch, Rate: 30000, Gain: 1, BlockSamples: 64, Buffers: AheadBuffers, SkipLayoutCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	src := open()
	a := ReadAhead(context.Background(), src)
	var got []int16
	next := uint64(0)
	for {
		b, err := a.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.First != next {
			t.Fatalf("block at %d, want %d", b.First, next)
		}
		next = b.End()
		got = append(got, b.Samples...)
	}
	a.Stop()
	src.Close()
	if !slices.Equal(got, want) {
		t.Fatal("samples differ")
	}

	src = open()
	a = ReadAhead(context.Background(), src)
	if _, err := a.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	src.Close()
	if _, err := a.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("after Stop: %v", err)
	}
}
