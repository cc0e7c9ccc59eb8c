package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// checkPattern fails unless every sample of b is the test pattern's, for
// the channels listed (nil: 0..Channels-1).
func checkPattern(t *testing.T, b device.Block, channels []int) {
	t.Helper()
	for i := range b.Len() {
		for j := range b.Channels {
			c := j
			if channels != nil {
				c = channels[j]
			}
			if got, want := b.At(i, j), sim.PatternValue(b.First+uint64(i), c); got != want {
				t.Fatalf("block at %d: sample %d of channel %d (slot %d) = %d, want %d", b.First, i, c, j, got, want)
			}
		}
	}
}

func nextBlock(t *testing.T, src *device.SerialSource, d time.Duration) (device.Block, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return src.Next(ctx)
}
