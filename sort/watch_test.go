package sort

import (
	"math"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
)

// TestWatchTrace checks that Trace returns exactly the filter's output for
// a watched channel, with the right device end, and refuses unwatched
// channels.
func TestWatchTrace(t *testing.T) {
	const C, rate, n = 40, 30000.0, 3000
	s, err := New(Config{}, C, rate, 0.195)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Watch([]int{3, 37}); err != nil {
		t.Fatal(err)
	}
	if err := s.Watch([]int{C}); err == nil {
		t.Fatal("Watch accepted a channel out of range")
	}
	samples := make([]int16, n*C)
	for i := range n {
		for c := range C {
			samples[i*C+c] = int16(200 * math.Sin(float64(i*(c+1))*0.01))
		}
	}
	if _, err := s.Process(device.Block{First: 500, Channels: C, Rate: rate, Gain: 0.195, Samples: samples}, nil); err != nil {
		t.Fatal(err)
	}
	// The reference: the same filter, run on channel 37 alone.
	cfg := s.Config()
	secs, err := dsp.Butterworth(cfg.Order, cfg.Low, math.Min(cfg.High, 0.45*rate), rate)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFilter(secs, 1)
	want := make([]float32, n)
	for i := range n {
		want[i] = float32(samples[i*C+37]) * 0.195
	}
	f.Settle(0, want[0])
	f.Process(want)
	got, end, ok := s.Trace(37, 1000, nil)
	if !ok || end != 500+n || len(got) != 1000 {
		t.Fatalf("Trace(37) = %d samples, end %d, ok %v; want 1000, %d, true", len(got), end, ok, 500+n)
	}
	for i, v := range got {
		if d := math.Abs(float64(v - want[n-1000+i])); d > 1e-3*(1+math.Abs(float64(v))) {
			t.Fatalf("sample %d: %g, filter alone %g", i, v, want[n-1000+i])
		}
	}
	if _, _, ok := s.Trace(4, 10, nil); ok {
		t.Fatal("Trace of an unwatched channel reported ok")
	}
	if err := s.Watch(nil); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.Trace(37, 10, nil); ok {
		t.Fatal("Trace after Watch(nil) reported ok")
	}
}
