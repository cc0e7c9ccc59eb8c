package sort

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/spikeline/spikeline/dsp"
)

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

// TestFilterSosfiltGolden runs the float32 multichannel filter on the
// golden input and compares with scipy.signal.sosfilt in float64.
func TestFilterSosfiltGolden(t *testing.T) {
	var g struct {
		Input   []int16
		Filters []struct {
			Order           int
			Low, High, Rate float64
			Output          []float64
		}
	}
	readJSON(t, "testdata/butter_sosfilt.json", &g)
	const channels = 5 // the same input on every channel, scaled by channel
	for _, gf := range g.Filters {
		secs, err := dsp.Butterworth(gf.Order, gf.Low, gf.High, gf.Rate)
		if err != nil {
			t.Fatal(err)
		}
		f := NewFilter(secs, channels)
		n := len(g.Input)
		in := make([]int16, n*channels)
		for i, v := range g.Input {
			for c := range channels {
				in[i*channels+c] = v
			}
		}
		for c := range channels {
			f.Settle(c, float32(g.Input[0])*float32(c+1))
		}
		out := make([]float32, len(in))
		// Uneven pieces exercise state carried across calls.
		for off, step := 0, 1; off < n; off, step = off+step, step*2+1 {
			end := min(n, off+step)
			f.processScaled(in[off*channels:end*channels], out[off*channels:end*channels])
		}
		var maxErr, maxAbs float64
		for i, want := range gf.Output {
			maxAbs = max(maxAbs, math.Abs(want))
			for c := range channels {
				got := float64(out[i*channels+c]) / float64(c+1)
				maxErr = max(maxErr, math.Abs(got-want))
			}
		}
		t.Logf("order %d %v–%v Hz: max |error| %.3g counts on signal up to %.0f", gf.Order, gf.Low, gf.High, maxErr, maxAbs)
		if maxErr > 2e-4*maxAbs {
			t.Errorf("order %d %v–%v Hz: float32 filter differs from scipy by %.3g (signal max %.3g)", gf.Order, gf.Low, gf.High, maxErr, maxAbs)
		}
	}
}

// processScaled filters with gain c+1 on channel c (test helper).
func (f *Filter) processScaled(in []int16, out []float32) {
	n := f.channels
	tmp := make([]float32, n)
	for off := 0; off+n <= len(in); off += n {
		for c := range n {
			tmp[c] = float32(in[off+c]) * float32(c+1)
		}
		f.row(tmp)
		copy(out[off:off+n], tmp)
	}
}

func TestFilterProcessInt16MatchesProcess(t *testing.T) {
	secs, _ := dsp.Butterworth(3, 300, 6000, 30000)
	a, b := NewFilter(secs, 3), NewFilter(secs, 3)
	in := make([]int16, 3*500)
	x := make([]float32, len(in))
	for i := range in {
		in[i] = int16((i*7919)%2001 - 1000)
		x[i] = float32(in[i]) * 0.195
	}
	out := make([]float32, len(in))
	a.ProcessInt16(in, 0.195, out)
	b.Process(x)
	for i := range out {
		if out[i] != x[i] {
			t.Fatalf("sample %d: ProcessInt16 %v, Process %v", i, out[i], x[i])
		}
	}
}

// TestFilterVectorMatchesScalar: the AVX2 kernels (GOEXPERIMENT=simd)
// give bit-identical results to the scalar reference loop; in a scalar
// build both sides are the reference.
func TestFilterVectorMatchesScalar(t *testing.T) {
	t.Logf("SIMD: %v", SIMD())
	secs, _ := dsp.Butterworth(3, 300, 6000, 30000)
	for _, ch := range []int{1, 7, 8, 9, 37, 64} {
		a, b := NewFilter(secs, ch), NewFilter(secs, ch)
		x := make([]float32, ch)
		y := make([]float32, ch)
		in := make([]int16, ch)
		for step := range 3000 {
			for c := range ch {
				in[c] = int16((step*7919+c*104729)%4001 - 2000)
			}
			a.rowInt16(in, 0.195, x)
			for c := range ch {
				y[c] = float32(in[c]) * 0.195
			}
			b.sections(y, 0)
			for c := range ch {
				if x[c] != y[c] {
					t.Fatalf("%d channels, step %d, channel %d: vector %v, scalar %v", ch, step, c, x[c], y[c])
				}
			}
		}
	}
}
