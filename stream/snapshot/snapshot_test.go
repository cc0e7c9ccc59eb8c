package snapshot

import (
	"math"
	"testing"
	"time"

	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// TestCollector feeds the collector by hand: channel markers,
// rates, missed batches, and the decoder scored against the behaviour
// interpolated at its bin centres.
func TestCollector(t *testing.T) {
	o := Options{Rig: "hand", URL: "nats://x", Duration: time.Second, Window: 10 * time.Second, Truth: rig.BehaviourModel}
	c := NewCollector(o)
	const rate = 1000.0
	noise := []float32{7, 7, 0.2, 40, 7, 7}
	c.onStatus("hand", &schema.Status{Header: schema.Header{Sample: 1000, Rate: rate}, Uptime: time.Second,
		NoiseUV: noise, RateHz: []float32{10, 0, 0, 5, 0, 2}})
	c.onStatus("hand", &schema.Status{Header: schema.Header{Sample: 2000, Rate: rate}, Uptime: 2 * time.Second,
		Link: schema.LinkStats{CRCErrors: 3}, NoiseUV: noise, RateHz: []float32{20, 0, 0, 5, 0, 4}})
	c.onSpikes("hand", &schema.SpikeBatch{Header: schema.Header{Sample: 0, Rate: rate}, End: 100,
		Spikes: []sort.Spike{{Sample: 10, Channel: 0, Unit: 1}, {Sample: 20, Channel: 5, Unit: 0}}})
	c.onSpikes("hand", &schema.SpikeBatch{Header: schema.Header{Sample: 150, Rate: rate}, End: 200}) // 50 samples missed
	c.onTemplates("hand", &schema.TemplateBatch{Header: schema.Header{Flags: schema.FlagFullSnapshot, Rate: rate},
		Templates: []sort.Template{{Unit: 1, Channel: 0, Pre: 1, Waveform: []float32{0, -35, 10}, PeakUV: -35}}})
	// Behaviour every 20 samples: vx = sample/1000; the decoder's 10-sample
	// bins report the value at their centre (R² 1), or at their end (not).
	for s := uint64(0); s <= 2000; s += 20 {
		c.onEstimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: s, Rate: rate}, Model: rig.BehaviourModel,
			Names: []string{"vx"}, Values: []float64{float64(s) / 1000}})
	}
	for e := uint64(10); e <= 1990; e += 10 {
		c.onEstimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "good",
			Names: []string{"vx"}, Values: []float64{(float64(e) - 5) / 1000}})
		c.onEstimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "noisy",
			Names: []string{"vx"}, Values: []float64{math.Sin(float64(e))}})
		c.onEstimate("hand", &schema.EstimateMsg{Header: schema.Header{Sample: e, Rate: rate}, Model: "stuck",
			Names: []string{"vx"}, Values: []float64{1}})
	}
	s, err := c.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", MarkSilent, MarkQuiet, MarkNoisy, MarkSilent, ""}
	for i, ch := range s.ChannelStats {
		if ch.Marker != want[i] {
			t.Errorf("channel %d (noise %.1f, rate %.1f): marker %q, want %q", i, ch.NoiseUV, ch.RateHz, ch.Marker, want[i])
		}
	}
	if s.ChannelStats[0].RateHz != 15 || s.ChannelStats[5].RateHz != 3 {
		t.Errorf("rates %v: want the mean of the status messages", s.ChannelStats)
	}
	if s.Health == nil || s.Health.MissedBatches != 1 || s.Health.MissedSamples != 50 || s.Health.LinkDuring.CRCErrors != 3 {
		t.Errorf("health %+v", s.Health)
	}
	if len(s.Units) != 1 || s.Units[0].SNR != 5 {
		t.Errorf("units %+v: want unit 1 with SNR 35/7", s.Units)
	}
	if len(s.Decoders) != 3 || s.Decoders[0].Model != "good" || s.Decoders[1].Model != "noisy" || s.Decoders[2].Model != "stuck" {
		t.Fatalf("decoders %+v", s.Decoders)
	}
	g := s.Decoders[0]
	if g.BinMS != 10 || g.Outputs[0].R2 == nil || *g.Outputs[0].R2 < 0.9999 || g.Outputs[0].Bins < 190 {
		t.Errorf("good decoder %+v: want bins of 10 ms, R² 1", g)
	}
	if n := s.Decoders[1].Outputs[0]; n.R2 == nil || *n.R2 > 0 {
		t.Errorf("noisy decoder %+v: want R² < 0", n)
	}
	// A constant output has an R² but no correlation.
	if st := s.Decoders[2].Outputs[0]; st.R2 == nil || st.Corr != nil {
		t.Errorf("stuck decoder %+v: want an R², no r", st)
	}
}
