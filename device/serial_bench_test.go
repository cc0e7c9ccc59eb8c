//go:build linux

package device_test

import (
	"context"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// BenchmarkSerialPTY measures the whole serial path: the emulator sending
// a 64-channel test pattern as fast as it can over a real pseudo-terminal,
// go.bug.st/serial reading it, the Decoder checking it and SerialSource
// handing out Blocks. One op is one 30-sample frame (1 ms at 30 kHz);
// "x_realtime_30kHz" is how many 30 kHz headstages of 64 channels the path
// could carry.
func BenchmarkSerialPTY(b *testing.B) {
	for _, ch := range []int{64, 256} {
		b.Run(itoa(ch)+"ch", func(b *testing.B) {
			pat := &sim.TestPattern{Channels: ch, Rate: 30000, BlockSamples: 300}
			_, link := ptyHeadstage(b, pat, sim.EmulatorConfig{FrameSamples: 30, Unpaced: true})
			src, err := device.OpenSerial(context.Background(), device.SerialConfig{Path: link})
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			ctx := context.Background()
			if _, err := src.Next(ctx); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(device.FrameOverhead + 2*30*ch))
			b.ReportAllocs()
			b.ResetTimer()
			var n uint64
			for range b.N {
				blk, err := src.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				n += uint64(blk.Len())
			}
			b.StopTimer()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds()/30000, "x_realtime_30kHz")
			if st := src.Status(); st.Overruns > 0 {
				b.Logf("%d frames dropped for Next falling behind", st.Overruns)
			}
		})
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}
