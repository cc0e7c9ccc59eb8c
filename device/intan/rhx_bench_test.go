package intan

import (
	"bufio"
	"context"
	"net"
	"testing"
)

// BenchmarkRHXParse measures the RHX source's parsing of the waveform
// stream (magic, timestamps, offset binary to int16 Blocks) at 512
// channels: bytes over a net.Pipe from a goroutine writing data blocks,
// 10 per write as RHX's default. Reported: channel-samples per second of
// the benchmark's wall time (one op is one data block of 128 samples).
func BenchmarkRHXParse(b *testing.B) {
	const C = 512
	words := make([]uint16, FramesPerBlock*C)
	for i := range words {
		words[i] = uint16(i * 7)
	}
	var write []byte
	for k := range 10 {
		write = AppendWaveformBlock(write, uint32(k*FramesPerBlock), words)
	}
	a, c := net.Pipe()
	defer c.Close()
	go func() {
		ts := uint32(0)
		buf := append([]byte(nil), write...)
		for {
			// Patch the timestamps so that the stream runs on.
			for k := range 10 {
				blk := buf[k*WaveformBlockBytes(C):]
				for i := range FramesPerBlock {
					p := blk[4+i*(4+2*C):]
					t := ts + uint32(k*FramesPerBlock+i)
					p[0], p[1], p[2], p[3] = byte(t), byte(t>>8), byte(t>>16), byte(t>>24)
				}
			}
			ts += 10 * FramesPerBlock
			if _, err := a.Write(buf); err != nil {
				return
			}
		}
	}()
	s := &RHXSource{words: C, blockLen: WaveformBlockBytes(C), wave: c, r: bufio.NewReaderSize(c, 4<<20)}
	s.info.SampleRate, s.info.BlocksPerWrite = 30000, 10
	b.SetBytes(int64(WaveformBlockBytes(C)))
	b.ResetTimer()
	n := 0
	for n < b.N*FramesPerBlock {
		blk, err := s.read(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n += blk.Len()
	}
	b.StopTimer()
	a.Close()
	b.ReportMetric(float64(n)*C/b.Elapsed().Seconds()/1e6, "Msamples/s")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()/30000, "x-realtime-512ch")
}
