package sort

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/device"
)

func defaultSynth(seconds float64, seed uint64) *synth {
	return newSynth(synthConfig{
		channels: 8, seconds: seconds, unitsPerChan: []int{1, 2, 3, 2},
		noiseUV: 10, ampMin: 70, ampMax: 180, lfp: 300, hum: 40, dc: 2000, seed: seed,
	})
}

func checkOrder(t *testing.T, spikes []Spike) {
	t.Helper()
	for i := 1; i < len(spikes); i++ {
		a, b := spikes[i-1], spikes[i]
		if b.Sample < a.Sample || b.Sample == a.Sample && b.Channel <= a.Channel {
			t.Fatalf("spikes %d and %d out of order: %+v then %+v", i-1, i, a, b)
		}
	}
}

func TestSorterAccuracySynthetic(t *testing.T) {
	s := defaultSynth(40, 1)
	cfg := Config{Deterministic: true}
	spikes, so := runSorter(t, s, cfg, 300)
	checkOrder(t, spikes)
	from := uint64((cfg.withDefaults().LearnSeconds + 1) * s.rate)
	sc := s.score(spikes, from, so.Noise(nil))
	var sum float64
	var n, good int
	for _, u := range sc {
		t.Logf("unit %2d ch %d snr %5.1f recall %.3f accuracy %.3f", u.unit, s.units[u.unit].channel, u.snr, u.recall, u.accuracy)
		if u.snr >= 5 {
			sum += u.accuracy
			n++
			if u.accuracy >= 0.8 {
				good++
			}
		}
	}
	st := so.Stats()
	t.Logf("%d units learned, %d spikes (%d sorted, %d unmatched on sorted channels)", st.Units, st.Spikes, st.Sorted, st.Unmatched)
	if n == 0 {
		t.Fatal("no units with SNR >= 5")
	}
	mean := sum / float64(n)
	t.Logf("mean accuracy %.3f over %d units with SNR >= 5; %d well detected", mean, n, good)
	if mean < 0.9 || float64(good) < 0.9*float64(n) {
		t.Errorf("mean accuracy %.3f (want >= 0.90), %d of %d well detected", mean, good, n)
	}
}

func TestSorterBlockSizeInvariance(t *testing.T) {
	s := defaultSynth(14, 2)
	cfg := Config{Deterministic: true, LearnSeconds: 5}
	a, _ := runSorter(t, s, cfg, 30)
	b, _ := runSorter(t, s, cfg, 4000)
	if !slices.Equal(a, b) {
		t.Fatalf("block size changes the result: %d spikes with 1 ms blocks, %d with 133 ms", len(a), len(b))
	}
	cfg.Workers = 3
	c, _ := runSorter(t, s, cfg, 777)
	if !slices.Equal(a, c) {
		t.Fatalf("worker count changes the result: %d vs %d spikes", len(a), len(c))
	}
}

func TestSorterFormatErrors(t *testing.T) {
	so, err := New(Config{}, 4, 30000, 0.195)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	for _, b := range []device.Block{
		{First: 0, Rate: 30000, Channels: 3, Samples: make([]int16, 9)},
		{First: 0, Rate: 20000, Channels: 4, Samples: make([]int16, 8)},
		{First: 0, Rate: 30000, Channels: 4, Samples: make([]int16, 7)},
	} {
		if _, err := so.Process(b, nil); !errors.Is(err, ErrFormat) {
			t.Errorf("block %d ch %v Hz %d samples: error %v, want ErrFormat", b.Channels, b.Rate, len(b.Samples), err)
		}
	}
	for _, c := range []Config{{Low: 7000, High: 300}, {Threshold: -1}, {Order: 40}, {MaxUnits: -2}, {Sign: 9}, {Pre: -1}} {
		if _, err := New(c, 4, 30000, 0.195); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v): error %v, want ErrConfig", c, err)
		}
	}
	if _, err := New(Config{}, 0, 30000, 1); !errors.Is(err, ErrConfig) {
		t.Errorf("0 channels: %v", err)
	}
	so.Close()
	if _, err := so.Process(device.Block{Channels: 4, Samples: make([]int16, 4)}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

var _ = fmt.Sprint
