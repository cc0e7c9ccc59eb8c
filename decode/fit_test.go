package decode

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestLagStatsMatchesDense checks the block-Toeplitz Gram against the
// explicit lagged design on data with gaps and missing behaviour (runs of
// many lengths, including runs shorter than the lag window).
func TestLagStatsMatchesDense(t *testing.T) {
	p := &population{Units: 7, Base: 30, Mod: 8, Rate: 30000, Width: 600, Bins: 3000, Rho: 0.9, Seed: 5, FirstID: 1}
	spikes, beh := p.generate()
	gaps := []Gap{{60000, 66000}, {300000, 300001}, {900000, 960000}}
	ds, err := NewDataset(dropGaps(spikes, gaps), beh, ByUnit, nil, p.Rate, p.Width, gaps)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{700, 701, 703, 1200, 1201, 1202, 1203, 1204, 1205, 2000} {
		ds.BehaviourObserved[i] = false
	}
	m := &Model{Keys: ds.Bins.Keys}
	m.Mean, m.Std = countStats(ds.Bins, ds.Len())
	z := zScored(m, ds.Bins)
	for _, lags := range []int{2, 5, 10} {
		rows := usableRows(ds, ds.Len(), lags)
		for _, part := range [][2]int{{0, len(rows)}, {100, 900}, {len(rows) / 2, len(rows)}} {
			r := rows[part[0]:part[1]]
			fast, ref := lagStats(z, ds, r, lags), lagStatsDense(z, ds, r, lags)
			if fast.n != ref.n {
				t.Fatalf("lags %d: n %v vs %v", lags, fast.n, ref.n)
			}
			cmp := func(what string, a, b mat.Matrix) {
				t.Helper()
				ra, ca := a.Dims()
				for i := range ra {
					for j := range ca {
						x, y := a.At(i, j), b.At(i, j)
						if math.Abs(x-y) > 1e-9*(1+math.Abs(y)) {
							t.Fatalf("lags %d rows %v: %s[%d,%d] = %v, dense %v", lags, part, what, i, j, x, y)
						}
					}
				}
			}
			cmp("G", fast.g, ref.g)
			cmp("Sxy", fast.sxy, ref.sxy)
			cmp("Sx", fast.sx, ref.sx)
			for o := range fast.sy {
				if math.Abs(fast.sy[o]-ref.sy[o]) > 1e-9*(1+math.Abs(ref.sy[o])) || math.Abs(fast.syy[o]-ref.syy[o]) > 1e-9*(1+ref.syy[o]) {
					t.Fatalf("lags %d: sy/syy differ", lags)
				}
			}
		}
	}
}
