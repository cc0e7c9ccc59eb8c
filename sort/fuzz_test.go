package sort

import (
	"encoding/binary"
	"testing"

	"github.com/spikeline/spikeline/device"
)

// FuzzSorterProcess feeds arbitrary samples, block sizes and gaps to a
// sorter: whatever a device sends, Process must not panic and its spikes
// must stay in time order on existing channels.
func FuzzSorterProcess(f *testing.F) {
	f.Add([]byte{3, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 251, 252})
	f.Add(make([]byte, 600))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		ch := int(data[0]%8) + 1
		so, err := New(Config{LearnSeconds: 0.01, NoiseWindow: 0.01, Deterministic: true}, ch, 8000, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		defer so.Close()
		data = data[1:]
		first := uint64(0)
		var last Spike
		var out []Spike
		for len(data) >= 2 {
			n := int(data[0]%64) + 1
			gap := data[1] % 16
			data = data[2:]
			m := min(n*ch, len(data)/2/ch*ch)
			samples := make([]int16, m)
			for i := range samples {
				samples[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
			}
			data = data[2*m:]
			if gap == 3 {
				first += 100
			}
			b := device.Block{First: first, Rate: 8000, Channels: ch, Gain: 0.5, Samples: samples}
			out, err = so.Process(b, out[:0])
			if err != nil {
				t.Fatal(err)
			}
			first = b.End()
			for _, sp := range out {
				if int(sp.Channel) >= ch || sp.Channel < 0 {
					t.Fatalf("spike on channel %d of %d", sp.Channel, ch)
				}
				if sp.Sample < last.Sample {
					t.Fatalf("spike at %d after one at %d", sp.Sample, last.Sample)
				}
				last = sp
			}
			if m == 0 {
				break
			}
		}
		so.Flush(nil)
	})
}
