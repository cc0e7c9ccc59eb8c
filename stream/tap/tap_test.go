package tap

import (
	"strings"
	"testing"

	"github.com/spikeline/spikeline/stream/schema"
)

// TestPrinter: one line per message, a gap and a step back between spike
// batches are called out, an undecodable message is a line saying so,
// and the printer stops at its limit.
func TestPrinter(t *testing.T) {
	var out strings.Builder
	p := NewPrinter(&out, false, 1, 4)
	subj := "spikeline.r.spikes"
	batch := func(first, end uint64) []byte {
		return schema.AppendSpikes(nil, first, end, 30000, 0, []schema.Spike{{Sample: first, Channel: 3, Unit: 2, Amplitude: -50}, {Sample: first + 1, Channel: 4}})
	}
	for _, b := range [][]byte{batch(0, 300), batch(600, 900), batch(0, 300), []byte("junk")} {
		if !p.Print(subj, b) {
			t.Fatalf("not printed:\n%s", out.String())
		}
	}
	if p.Print(subj, batch(300, 600)) {
		t.Error("printed past the limit")
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed at the limit")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for i, want := range []string{"[0,300) 0.000s @30000Hz 2 spikes: ch3 u2 @0 -50.0µV …+1", "MISSING [300,600) 300 samples", "BACKWARDS from 900", "undecodable (4 bytes)"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q: want %q", i, lines[i], want)
		}
	}
}
