package decode

import "testing"

// BenchmarkFitWiener times a 10-lag ridge fit with 5-fold CV on 100 units,
// 10 minutes of 20 ms bins.
func BenchmarkFitWiener(b *testing.B) {
	p := &population{Units: 100, Base: 30, Mod: 6, Rate: 30000, Width: 600, Bins: 30000, Rho: 0.95, Seed: 3, FirstID: 1}
	spikes, beh := p.generate()
	ds, err := NewDataset(spikes, beh, ByUnit, nil, p.Rate, p.Width, nil)
	if err != nil {
		b.Fatal(err)
	}
	split := ds.SplitRow(0.7)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Fit(ds, split, FitConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFitKalman1024 times a live calibration at the scale of a
// 1,024-channel probe: a Kalman filter on 3,000 units from 60 s of 20 ms
// bins (the Calibrator's default), Q shrunk toward its diagonal.
func BenchmarkFitKalman1024(b *testing.B) {
	p := &population{Units: 3000, Base: 20, Mod: 3, Rate: 30000, Width: 600, Bins: 3000, Rho: 0.95, Seed: 3, FirstID: 1}
	spikes, beh := p.generate()
	ds, err := NewDataset(spikes, beh, ByUnit, nil, p.Rate, p.Width, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Fit(ds, ds.Len(), FitConfig{Kind: Kalman}); err != nil {
			b.Fatal(err)
		}
	}
}
