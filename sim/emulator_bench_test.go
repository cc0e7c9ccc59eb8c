package sim_test

import (
	"context"
	"io"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// BenchmarkEmulatorFrames measures the emulator's own cost per data frame
// (framing a 64-channel test pattern, channel subset, encoding, faults),
// unpaced, into io.Discard. One op is one 30-sample frame.
func BenchmarkEmulatorFrames(b *testing.B) {
	for _, bc := range []struct {
		name   string
		faults sim.Faults
	}{
		{"clean", sim.Faults{}},
		{"faults", sim.Faults{CorruptRate: 1e-3, DropRate: 0.01}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const ch, n = 64, 30
			pat := &sim.TestPattern{Channels: ch, Rate: 30000, BlockSamples: 300, Samples: uint64(b.N) * n}
			em := sim.NewEmulator(pat, sim.EmulatorConfig{FrameSamples: n, Unpaced: true, Faults: bc.faults})
			b.SetBytes(int64(device.FrameOverhead + 2*ch*n))
			b.ReportAllocs()
			b.ResetTimer()
			if err := em.WriteStream(context.Background(), io.Discard, 0); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)*n/30000/b.Elapsed().Seconds(), "x_realtime_30kHz")
		})
	}
}
