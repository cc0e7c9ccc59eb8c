package score

import (
	"math"
	"strings"
	"testing"
)

// FuzzReadUnitsCSV: ReadUnitsSNR, the units CSV reader of 'spikeline score', never
// panics, and whatever it accepts has a finite or +inf SNR per unit.
func FuzzReadUnitsCSV(f *testing.F) {
	f.Add("unit_id,channel,n_spikes,peak_uv,noise_uv,snr\n1,0,10,-80.5,7.2,11.2\n2,3,1,-40,0,inf\n")
	f.Add("unit_id,channel,peak_uv,snr,kind\n1,0,abc,4.7,narrow\n")
	f.Add("unit,snr\n1,NaN\n")
	f.Fuzz(func(t *testing.T, in string) {
		snr, err := ReadUnitsSNR(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv:") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for u, v := range snr {
			if math.IsNaN(v) || math.IsInf(v, -1) {
				t.Fatalf("unit %d: snr %v accepted", u, v)
			}
		}
	})
}
