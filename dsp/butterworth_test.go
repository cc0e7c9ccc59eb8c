package dsp

import (
	"encoding/json"
	"math"
	"math/cmplx"
	"os"
	"testing"
)

type goldenSOS struct {
	Cases []struct {
		Order           int
		Low, High, Rate float64
		SOS             [][6]float64
	}
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestButterworthGolden compares the designed sections with
// scipy.signal.butter(..., output="sos") (testdata/butter_sos.json).
func TestButterworthGolden(t *testing.T) {
	var g goldenSOS
	readJSON(t, "testdata/butter_sos.json", &g)
	if len(g.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	for _, c := range g.Cases {
		secs, err := Butterworth(c.Order, c.Low, c.High, c.Rate)
		if err != nil {
			t.Fatalf("order %d %v–%v Hz @ %v: %v", c.Order, c.Low, c.High, c.Rate, err)
		}
		if len(secs) != len(c.SOS) {
			t.Fatalf("order %d %v–%v Hz @ %v: %d sections, scipy %d", c.Order, c.Low, c.High, c.Rate, len(secs), len(c.SOS))
		}
		for i, s := range secs {
			want := c.SOS[i]
			got := [6]float64{s.B0, s.B1, s.B2, 1, s.A1, s.A2}
			for j := range got {
				if math.Abs(got[j]-want[j]) > 1e-10 {
					t.Errorf("order %d %v–%v Hz @ %v: section %d coef %d = %.15g, scipy %.15g",
						c.Order, c.Low, c.High, c.Rate, i, j, got[j], want[j])
				}
			}
		}
		// The cascade is a band-pass: -3 dB at the corners, ~0 dB inside.
		for _, f := range []float64{c.Low, c.High} {
			if db := 20 * math.Log10(cmplx.Abs(Response(secs, f, c.Rate))); math.Abs(db+3.0103) > 0.01 {
				t.Errorf("order %d: %v Hz at %.3f dB, want -3.01", c.Order, f, db)
			}
		}
		if g := cmplx.Abs(Response(secs, math.Sqrt(c.Low*c.High), c.Rate)); math.Abs(g-1) > 1e-3 {
			t.Errorf("order %d: centre gain %v", c.Order, g)
		}
	}
}

func TestButterworthErrors(t *testing.T) {
	for _, c := range []struct {
		order        int
		lo, hi, rate float64
	}{{0, 300, 6000, 30000}, {3, 0, 6000, 30000}, {3, 6000, 300, 30000}, {3, 300, 15000, 30000}, {3, 300, 6000, math.NaN()}} {
		if _, err := Butterworth(c.order, c.lo, c.hi, c.rate); err == nil {
			t.Errorf("Butterworth(%d, %v, %v, %v): no error", c.order, c.lo, c.hi, c.rate)
		}
	}
}
