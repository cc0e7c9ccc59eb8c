package stream

import (
	"testing"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/stream/streamtest"
)

// TestEstimateDegradedFlag: a decoder estimate over a gap keeps its
// degraded mark through the publisher, binary and JSON.
func TestEstimateDegradedFlag(t *testing.T) {
	for _, degraded := range []bool{false, true} {
		m := schema.EstimateMsg{Header: schema.Header{Sample: 600, Rate: 30000}, Model: "wiener", Names: []string{"vx"}, Values: []float64{1.5}}
		if degraded {
			m.Flags |= schema.FlagDegraded
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := schema.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if g := got.(*schema.EstimateMsg).Degraded(); g != degraded {
			t.Errorf("binary: degraded %v, want %v", g, degraded)
		}
		j, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back schema.EstimateMsg
		if err := back.UnmarshalJSON(j); err != nil {
			t.Fatal(err)
		}
		if back.Degraded() != degraded {
			t.Errorf("JSON %s: degraded %v, want %v", j, back.Degraded(), degraded)
		}
	}

	srv := streamtest.RunServer(t, nil)
	nc := streamtest.Connect(t, srv)
	sub, err := nc.SubscribeSync("spikeline.r.decode.wiener")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	p, err := NewPublisher(t.Context(), Config{URLs: []string{streamtest.URL(srv)}, Rig: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(t.Context())
	p.PublishEstimate("wiener", decode.Estimate{End: 1200, Rate: 30000, Names: []string{"vx"}, Values: []float64{2}, Degraded: true})
	msg, err := sub.NextMsg(5e9)
	if err != nil {
		t.Fatal(err)
	}
	got, err := schema.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if e := got.(*schema.EstimateMsg); !e.Degraded() || e.Sample != 1200 {
		t.Errorf("published estimate: sample %d degraded %v, want 1200 true", e.Sample, e.Degraded())
	}
}
