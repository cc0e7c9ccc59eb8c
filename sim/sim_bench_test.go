package sim

import (
	"context"
	"testing"
)

// BenchmarkGenerate times the full generator (noise, hum, LFP, mains,
// artifacts, drift, tuned spiking with bursts) for 1,024 channels at
// 30 kHz, one internal chunk per Next. The real-time factor is seconds of
// signal generated per second of wall time (target >= 20).
func BenchmarkGenerate(b *testing.B) {
	for _, channels := range []int{32, 1024} {
		b.Run(itoa(channels)+"ch", func(b *testing.B) {
			s, err := New(Config{Channels: channels, Seed: 1, BlockSamples: 1050})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var samples uint64
			var spikes []sortSpike
			b.ReportAllocs()
			for b.Loop() {
				blk, err := s.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				samples += uint64(blk.Len())
				spikes = s.TakeSpikes(spikes[:0])
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(samples)*float64(channels)/sec, "samples/s")
			b.ReportMetric(float64(samples)/s.Rate()/sec, "x_realtime")
		})
	}
}
