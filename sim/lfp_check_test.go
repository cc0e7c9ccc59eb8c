package sim

import (
	"math"
	"testing"
)

func TestLFPLevel(t *testing.T) {
	cfg := Config{Channels: 32, Seed: 8, MaxUnits: -1, NoNoise: true, NoMains: true, NoDC: true, NoArtifacts: true, Duration: 30 * 30000}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := collect(t, s)
	C := cfg.Channels
	var total float64
	for c := 0; c < C; c++ {
		var sum, ss float64
		n := len(data) / C
		for i := 0; i < n; i++ {
			v := float64(data[i*C+c]) * 0.195
			sum += v
			ss += v * v
		}
		mean := sum / float64(n)
		total += math.Sqrt(ss/float64(n)-mean*mean) / float64(C)
	}
	// 30 s of a process with a 2 Hz corner: the rms is known to ~±25%.
	if math.Abs(total/120-1) > 0.3 {
		t.Errorf("LFP rms %.1f µV, configured 120", total)
	}
	// Channels of one group carry the same LFP; other groups correlate 0.64.
	r := func(a, b int) float64 {
		var x, y []float64
		for i := 0; i < len(data)/C; i++ {
			x = append(x, float64(data[i*C+a]))
			y = append(y, float64(data[i*C+b]))
		}
		return corr(x, y)
	}
	if v := r(0, 5); v < 0.99 {
		t.Errorf("same-group LFP correlation %.3f", v)
	}
	if v := r(0, 20); v < 0.4 || v > 0.85 {
		t.Errorf("cross-group LFP correlation %.3f, want about 0.64", v)
	}
}
