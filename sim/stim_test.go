package sim

import (
	"context"
	"math"
	"testing"

	"github.com/spikeline/spikeline/device"
)

// The simulator plugs into the emulator's optional interfaces.
var (
	_ Stimulator    = (*Sim)(nil)
	_ RateSetter    = (*Sim)(nil)
	_ device.Source = (*Sim)(nil)
)

func TestStimulate(t *testing.T) {
	cfg := quiet(20)
	cfg.MaxUnits = -1
	cfg.GroupChannels = 8
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 7; i++ { // somewhere inside a chunk
		mustNext(t, s, ctx)
	}
	at := s.Emitted()
	st := device.Stim{Channel: 3, Pulses: 5, PhaseUs: 200, InterphaseUs: 50, PeriodUs: 10000, AmplitudeUA: 5, Biphasic: true, CathodicFirst: true}
	if err := s.Stimulate(st); err != nil {
		t.Fatal(err)
	}
	var peak [20]float64
	first := true
	for s.Emitted() < at+30*60 {
		b := mustNext(t, s, ctx)
		for i := 0; i < b.Len(); i++ {
			for c := 0; c < 20; c++ {
				v := float64(b.At(i, c)) * b.Gain
				if math.Abs(v) > math.Abs(peak[c]) {
					peak[c] = v
				}
			}
		}
		if first {
			if v := float64(b.At(0, 3)) * b.Gain; math.Abs(v+2500) > 1 {
				t.Errorf("first sample after Stimulate on channel 3: %.1f µV, want -2500", v)
			}
			first = false
		}
	}
	if math.Abs(peak[3]+2500) > 1 {
		t.Errorf("stimulated channel peak %.1f µV, want -2500", peak[3])
	}
	if r := peak[4] / peak[3]; math.Abs(r-0.15) > 0.01 {
		t.Errorf("neighbour coupling %.3f, want 0.15", r)
	}
	for c := 8; c < 20; c++ {
		if peak[c] != 0 {
			t.Errorf("channel %d outside the group saw %.1f µV", c, peak[c])
		}
	}
	arts := s.Artifacts()
	if len(arts) != 1 || arts[0].Channel != 3 || arts[0].Sample != at {
		t.Errorf("artifacts %+v, want the train on channel 3 at %d", arts, at)
	}
	for _, bad := range []device.Stim{
		{Channel: 20, Pulses: 1, PhaseUs: 100, AmplitudeUA: 1},
		{Channel: 0, Pulses: 0, PhaseUs: 100, AmplitudeUA: 1},
		{Channel: 0, Pulses: 1, PhaseUs: 0, AmplitudeUA: 1},
		{Channel: 0, Pulses: 1, PhaseUs: 100, AmplitudeUA: float32(math.NaN())},
		{Channel: 0, Pulses: 2, PhaseUs: 100, PeriodUs: 50, AmplitudeUA: 1},
		{Channel: 0, Pulses: 60000, PhaseUs: 100, PeriodUs: 1000, AmplitudeUA: 1},
	} {
		if err := s.Stimulate(bad); err == nil {
			t.Errorf("Stimulate(%+v) accepted", bad)
		}
	}
}
