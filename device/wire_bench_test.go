package device

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// BenchmarkDecode measures decoding throughput in bytes of wire stream per
// second (b.SetBytes is the size of one frame; one op decodes one frame).
func BenchmarkDecode(b *testing.B) {
	for _, shape := range []struct{ channels, n int }{{64, 32}, {1024, 32}, {32, 1}} {
		b.Run(fmt.Sprintf("ch%dx%d", shape.channels, shape.n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			const frames = 64
			stream, _ := encodeFrames(rng, 0, frames, shape.channels, shape.n)
			r := bytes.NewReader(stream)
			d := NewDecoder(r)
			b.SetBytes(int64(len(stream) / frames))
			b.ReportAllocs()
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
		})
	}
}

// BenchmarkEncode measures encoding throughput (bytes of frame per second).
func BenchmarkEncode(b *testing.B) {
	for _, shape := range []struct{ channels, n int }{{64, 32}, {1024, 32}} {
		b.Run(fmt.Sprintf("ch%dx%d", shape.channels, shape.n), func(b *testing.B) {
			s := make([]int16, shape.channels*shape.n)
			for i := range s {
				s[i] = int16(i * 7)
			}
			e := NewEncoder(io.Discard)
			b.SetBytes(int64(2*len(s) + FrameOverhead))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.WriteData(uint64(i*shape.n), 30000, 0.195, shape.channels, s, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWireSource measures frames to Blocks (decode, copy, events),
// 64 channels x 32 samples per frame (bytes of wire stream per second).
func BenchmarkWireSource(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const frames = 64
	stream, _ := encodeFrames(rng, 0, frames, 64, 32)
	r := bytes.NewReader(stream)
	src := NewWireSource(r)
	ctx := context.Background()
	b.SetBytes(int64(len(stream) / frames))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, err := src.Next(ctx)
		if err == io.EOF {
			r.Reset(stream)
			src.Decoder().Reset(r)
			_, err = src.Next(ctx)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
