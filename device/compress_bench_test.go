package device

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the CPU time (user + system) this process has used, so
// that throughput per core can be reported on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchFrames returns frames samples of a neural-like signal (testSignal)
// of channels × n each.
func benchFrames(channels, n, frames int) [][]int16 {
	rng := rand.New(rand.NewPCG(11, 12))
	out := make([][]int16, frames)
	for i := range out {
		out[i] = testSignal(rng, channels, n, false)
	}
	return out
}

// BenchmarkCompress measures the lossless encoder (frame type 4) in MB of
// int16 samples per second and per CPU-second (the target is >= 300 MB/s
// per core), and the compression ratio.
func BenchmarkCompress(b *testing.B) {
	for _, shape := range []struct{ channels, n int }{{32, 30}, {1024, 30}, {16, 240}} {
		b.Run(fmt.Sprintf("ch%dx%d", shape.channels, shape.n), func(b *testing.B) {
			frames := benchFrames(shape.channels, shape.n, 16)
			c := NewCompressor(CompressConfig{})
			var out []byte
			var enc int
			raw := 2 * shape.channels * shape.n
			b.SetBytes(int64(raw))
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out = c.AppendCompressed(out[:0], uint64(i*shape.n), 30000, 0.195, shape.channels, frames[i%len(frames)], 0)
				enc += len(out)
			}
			b.StopTimer()
			cpu := (cpuTime() - cpu0).Seconds()
			b.ReportMetric(float64(raw*b.N)/1e6/cpu, "MB/cpu-s")
			b.ReportMetric(float64(raw*b.N)/float64(enc), "ratio")
		})
	}
}

// BenchmarkDecompress measures decoding of compressed frames through the
// Decoder (CRCs included), in MB of int16 samples out per second and per
// CPU-second (the target is >= 1 GB/s per core).
func BenchmarkDecompress(b *testing.B) {
	for _, shape := range []struct{ channels, n int }{{32, 30}, {1024, 30}, {16, 240}} {
		b.Run(fmt.Sprintf("ch%dx%d", shape.channels, shape.n), func(b *testing.B) {
			frames := benchFrames(shape.channels, shape.n, 16)
			c := NewCompressor(CompressConfig{})
			var stream []byte
			for i, f := range frames {
				stream = c.AppendCompressed(stream, uint64(i*shape.n), 30000, 0.195, shape.channels, f, 0)
			}
			r := bytes.NewReader(stream)
			d := NewDecoder(r)
			raw := 2 * shape.channels * shape.n
			b.SetBytes(int64(raw))
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f, err := d.Next()
				if err == io.EOF {
					r.Reset(stream)
					d.Reset(r)
					f, err = d.Next()
				}
				if err != nil || f.Channels != shape.channels {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(raw*b.N)/1e6/(cpuTime()-cpu0).Seconds(), "MB/cpu-s")
		})
	}
}
