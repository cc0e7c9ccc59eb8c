package sim

import (
	"context"
	"testing"
)

func BenchmarkWriteRecording16(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if err := WriteRecording(context.Background(), dir, Config{Channels: 16, Seed: 1}, 300000, nil); err != nil {
			b.Fatal(err)
		}
	}
}
