package intan

import (
	"bufio"
	"context"
	"net"
	"testing"
)

// FuzzWaveform drives arbitrary bytes from the waveform port through the
// block parser: errors or Blocks, never a panic, and every Block whole
// frames of the channels streamed.
func FuzzWaveform(f *testing.F) {
	words := make([]uint16, 2*FramesPerBlock)
	good := AppendWaveformBlock(nil, 7, words)
	f.Add(good)
	f.Add(append(append([]byte{1, 2, 3}, good...), good[:100]...))
	f.Add(append(AppendWaveformBlock(nil, 0xfffffff0, words), AppendWaveformBlock(nil, 3, words)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		go func() {
			a.Write(data)
			a.Close()
		}()
		defer b.Close()
		s := &RHXSource{words: 2, blockLen: WaveformBlockBytes(2), wave: b, r: bufio.NewReader(b)}
		s.info.SampleRate, s.info.BlocksPerWrite = 30000, 1
		for range 50 {
			blk, err := s.read(context.Background())
			if err != nil {
				return
			}
			if blk.Channels != 2 || len(blk.Samples)%2 != 0 || blk.Len() == 0 {
				t.Fatalf("block %+v", blk)
			}
		}
	})
}
