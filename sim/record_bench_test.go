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

// BenchmarkWriteRecording times what `spikeline sim --channels 1024`
// does: the generator of BenchmarkGenerate plus writing every file of a
// recording (raw data, ground truth, sidecars), 5 s of signal per
// operation into the same directory. samples/cpu_s counts channel-samples
// per CPU-second of the whole process (all goroutines, user and system:
// the kernel's copy into the page cache included), the figure that does
// not depend on the load of a shared machine; x_realtime is seconds of
// signal per second of wall time (the target is >= 20).
func BenchmarkWriteRecording(b *testing.B) {
	const channels, seconds = 1024, 5
	dir := b.TempDir()
	cfg := Config{Channels: channels, Seed: 1}
	samples := uint64(seconds * 30000)
	var total float64
	cpu0 := cpuTime()
	for b.Loop() {
		if err := WriteRecording(context.Background(), dir, cfg, samples, nil); err != nil {
			b.Fatal(err)
		}
		total += float64(samples) * channels
	}
	cpu := (cpuTime() - cpu0).Seconds()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(total/cpu, "samples/cpu_s")
	b.ReportMetric(total/sec, "samples/s")
	b.ReportMetric(total/channels/30000/sec, "x_realtime")
}
