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
