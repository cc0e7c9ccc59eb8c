package schema_test

import (
	"fmt"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

func ExampleDecode() {
	data := schema.AppendSpikes(nil, 600, 1200, 20000, 0, []sort.Spike{{Sample: 610, Channel: 1, Unit: 2, Amplitude: -40}})
	m, err := schema.Decode(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	b := m.(*schema.SpikeBatch)
	fmt.Println(len(data), "bytes:", b.Head().Type, b.First(), b.End, b.Spikes[0].Unit)

	_, err = schema.Decode(data[:40])
	fmt.Println(err)
	// Output:
	// 68 bytes: spikes 600 1200 2
	// schema: decode spikes: byte 40 (count): message truncated: need 4 bytes, 0 left
}
