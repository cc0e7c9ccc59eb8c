package device

import (
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"testing"
)

// hexDump formats b as lines of 16 hex bytes prefixed by their offset,
// the layout docs/protocol.md uses.
func hexDump(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += 16 {
		fmt.Fprintf(&sb, "%04x:", i)
		for _, c := range b[i:min(i+16, len(b))] {
			fmt.Fprintf(&sb, " %02x", c)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// docExamples are the frames docs/protocol.md shows byte by byte.
func docExamples() map[string][]byte {
	return map[string][]byte{
		"data": AppendData(nil, 1000, 30000, 0.195, 2, []int16{100, -100, 1, -1}, 0),
		"ping": AppendCommand(nil, Command{Seq: 7, Op: OpPing, PingTime: 0x0102030405060708}),
		"pong": AppendReply(nil, Reply{Seq: 7, Op: OpPing, Status: StatusOK, PingTime: 0x0102030405060708, Counter: 1004, Rate: 30000, Channels: 2, Message: "ok"}),

		"compressed": NewCompressor(CompressConfig{}).AppendCompressed(nil, 1000, 30000, 0.195, 2, []int16{100, -100, 102, -98, 101, -99, 103, -101}, 0),
		"spikes": AppendSpikes(nil, 1000, 30, 30000, 0.195, 2, &Spikes{Pre: 1, Post: 2, Snippets: true,
			Events: []SpikeEvent{{Sample: 1003, Channel: 1, Shift: 1, Snippet: []int8{-10, -60, -20, 5}}}}, 0),
		"features": AppendFeatures(nil, 1200, 30000, 0.195, &Features{BinSamples: 600, Levels: 2, CountBits: 4, Channels: 2,
			Power: []uint8{PowerCode(1000), PowerCode(5000)}, Counts: []uint8{3, 0, 5, 1}}, 0),
		"settings":       AppendSettings(nil, 1200, 30000, 0.195, 2, docSettings()),
		"set_thresholds": AppendCommand(nil, Command{Seq: 8, Op: OpSetThresholds, Level: 0, Tenths: 45, Thresholds: []int16{-120, -110}}),
	}
}

// docSettings are the settings of the settings frame docs/protocol.md shows.
func docSettings() *Settings {
	s := DefaultSettings(30000, 2)
	s.Mode, s.Levels = ModeFeatures, 2
	s.Thresholds = [][]int16{{-120, -110}, {-80, -75}}
	s.SigmaTenths = [MaxLevels]uint8{45, 30}
	return s
}

// TestProtocolDoc checks that the worked examples and the CRC check value
// in docs/protocol.md are what this code produces, so a firmware author
// can trust them. Run with SPIKELINE_PRINT_EXAMPLES=1 to print them.
func TestProtocolDoc(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xE3069283 {
		t.Fatalf("CRC-32C check value %#08x, want 0xe3069283", got)
	}
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range docExamples() {
		dump := hexDump(b)
		if os.Getenv("SPIKELINE_PRINT_EXAMPLES") != "" {
			fmt.Printf("%s:\n%s\n", name, dump)
		}
		if !strings.Contains(string(doc), dump) {
			t.Errorf("docs/protocol.md lacks the %s example:\n%s", name, dump)
		}
	}
}
