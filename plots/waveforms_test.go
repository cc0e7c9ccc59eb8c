package plots

import (
	"math"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

func TestSummaryPanels(t *testing.T) {
	var spikes []sort.Spike
	// Channel c has unit c+1 with 10*(c+1) spikes, except channel 4
	// (only unsorted spikes).
	for c := range 4 {
		for i := range 10 * (c + 1) {
			spikes = append(spikes, sort.Spike{Sample: uint64(100 * i), Channel: int32(c), Unit: int32(c + 1)})
		}
	}
	spikes = append(spikes, sort.Spike{Sample: 5, Channel: 4, Unit: 0})
	// A template without spikes on channel 0.
	templates := []sort.Template{{Unit: 9, Channel: 0, Pre: 1, Waveform: []float32{0, -1, 0}}}
	panels, shown, withUnits, units := ChoosePanels(spikes, templates, 2)
	if shown != 2 || withUnits != 4 || units != 5 {
		t.Fatalf("shown %d of %d channels, %d units", shown, withUnits, units)
	}
	// The two busiest: channels 2 (30 spikes) and 3 (40), in channel order.
	if panels[0].Channel != 2 || panels[1].Channel != 3 {
		t.Fatalf("panels on channels %d, %d", panels[0].Channel, panels[1].Channel)
	}
	if n := len(panels[1].Units[0].Picks); n != PanelWaves {
		t.Errorf("unit 4 has %d picks, want %d", n, PanelWaves)
	}
	if n := len(panels[0].Units[0].Picks); n != 30 {
		t.Errorf("unit 3 has %d picks, want all 30", n)
	}
}

func TestAlignWaves(t *testing.T) {
	// A template with its trough at Pre = 3, and waveforms cut 2 samples
	// late: alignment must shift them back.
	tmpl := sort.Template{Unit: 1, Pre: 3, Waveform: []float32{0, 1, -3, -10, -2, 4, 1}}
	pre, post, margin := 3, 3, 4
	u := &PanelUnit{Unit: 1, Template: &tmpl}
	for range 5 {
		w := make([]float32, pre+post+1+2*margin)
		for k, v := range tmpl.Waveform {
			w[margin+2+k] = v // 2 samples late
		}
		u.Waves = append(u.Waves, w)
	}
	AlignWaves(u, pre, post, margin)
	for _, w := range u.Waves {
		if len(w) != pre+post+1 {
			t.Fatalf("cropped to %d samples", len(w))
		}
		for k, v := range tmpl.Waveform {
			if math.Abs(float64(w[k]-v)) > 0 {
				t.Fatalf("aligned wave %v, template %v", w, tmpl.Waveform)
			}
		}
	}
}
