package quality

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// golden is testdata/spikeinterface_metrics.json (scripts/golden/quality.py).
type golden struct {
	MadeWith map[string]string `json:"made_with"`
	Rate     float64           `json:"rate"`
	Samples  uint64            `json:"samples"`
	Units    []struct {
		Unit       int                 `json:"unit"`
		Spikes     []uint64            `json:"spikes"`
		Amplitudes []float64           `json:"amplitudes"`
		Channel    int                 `json:"channel"`
		Template   []float64           `json:"template"`
		Noise      float64             `json:"noise"`
		Metrics    map[string]*float64 `json:"metrics"`
	} `json:"units"`
}

func readGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/spikeinterface_metrics.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Units) == 0 {
		t.Fatal("no units in the golden file")
	}
	return g
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// metricsMap returns m by SpikeInterface column name.
func metricsMap(m Metrics) map[string]float64 {
	return map[string]float64{
		"num_spikes":           float64(m.NumSpikes),
		"firing_rate":          m.FiringRate,
		"presence_ratio":       m.PresenceRatio,
		"snr":                  m.SNR,
		"isi_violations_ratio": m.ISIViolationsRatio,
		"isi_violations_count": float64(m.ISIViolationsCount),
		"rp_contamination":     m.RPContamination,
		"rp_violations":        float64(m.RPViolations),
		"amplitude_cutoff":     m.AmplitudeCutoff,
		"amplitude_median":     m.AmplitudeMedian,
	}
}

// TestGoldenSpikeInterface checks every metric of every unit against
// SpikeInterface's compute_quality_metrics on the same spikes, amplitudes,
// template and noise. Every value must be equal to the last bit.
func TestGoldenSpikeInterface(t *testing.T) {
	g := readGolden(t)
	t.Logf("golden made with %v", g.MadeWith)
	var p Params
	for _, u := range g.Units {
		in := Input{Spikes: u.Spikes, Amplitudes: f32s(u.Amplitudes), Template: f32s(u.Template), Noise: float32(u.Noise)}
		m, err := p.Compute(in, g.Samples, g.Rate)
		if err != nil {
			t.Fatalf("unit %d: %v", u.Unit, err)
		}
		got := metricsMap(m)
		for name, want := range u.Metrics {
			v, ok := got[name]
			if !ok {
				t.Errorf("unit %d: no metric %s", u.Unit, name)
				continue
			}
			if want == nil {
				if !math.IsNaN(v) {
					t.Errorf("unit %d: %s = %v, SpikeInterface NaN", u.Unit, name, v)
				}
				continue
			}
			if math.IsNaN(v) || v != *want {
				t.Errorf("unit %d: %s = %.17g, SpikeInterface %.17g", u.Unit, name, v, *want)
			}
		}
	}
}
