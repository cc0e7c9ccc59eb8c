package sort

import (
	"errors"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/probe"
)

// denseSynth is a recording of a linear probe 20 µm apart where every
// spike also shows on the two channels either side (0.6 and 0.25 of its
// amplitude, one and two samples later).
func denseSynth(seconds float64, seed uint64) *synth {
	return newSynth(synthConfig{
		channels: 10, seconds: seconds, unitsPerChan: []int{1, 0, 2, 0, 1},
		noiseUV: 10, ampMin: 80, ampMax: 200, lfp: 200, hum: 30, dc: 1500, seed: seed,
		spread: []float64{0.6, 0.25},
	})
}

func linear(t *testing.T, channels int, pitch string) *probe.Probe {
	t.Helper()
	p, err := probe.Builtin("linear:"+pitch, channels)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// twoPass sorts s as spikeline sort does (deterministic; pass 1 learns,
// pass 2 sorts seeded with its templates).
func twoPass(t *testing.T, s *synth, cfg Config, block int) ([]Spike, []Template) {
	t.Helper()
	cfg.Deterministic = true
	c1 := cfg
	c1.MaxSnippets, c1.RelearnEvery = 3000, 40
	_, so := runSorter(t, s, c1, block)
	cfg.Templates, cfg.RelearnEvery = so.Templates(), -1
	so.Close()
	spikes, so := runSorter(t, s, cfg, block)
	defer so.Close()
	return spikes, so.Templates()
}

// TestGeometryOneUnitPerNeuron: on a dense probe, without geometry each
// neuron is found on its neighbours too (more units and spikes than
// there are); with it, every neuron is one unit, found on its own
// channel, and each spike is reported once.
func TestGeometryOneUnitPerNeuron(t *testing.T) {
	s := denseSynth(40, 2)
	// Units with at least 10 spikes (a few small clusters of noise
	// crossings just above the threshold take 0-7 spikes each, with or
	// without geometry).
	count := func(spikes []Spike) (units, sorted int) {
		n := map[int32]int{}
		for _, sp := range spikes {
			if sp.Unit != 0 {
				n[sp.Unit]++
				sorted++
			}
		}
		for _, k := range n {
			if k >= 10 {
				units++
			}
		}
		return units, sorted
	}
	alone, _ := twoPass(t, s, Config{}, 4096)
	ua, sa := count(alone)
	spikes, tm := twoPass(t, s, Config{Probe: linear(t, s.channels, "20")}, 4096)
	checkOrder(t, spikes)
	ug, sg := count(spikes)
	t.Logf("%d true units, %d true spikes; per channel: %d units (10 spikes or more), %d sorted spikes; with geometry: %d units, %d sorted spikes, %d templates",
		len(s.units), len(s.truth), ua, sa, ug, sg, len(tm))
	if ua <= len(s.units)+2 {
		t.Fatalf("per channel: %d units for %d neurons; the test recording should make copies on neighbours", ua, len(s.units))
	}
	if ug > len(s.units)+1 || float64(sg) > 1.1*float64(len(s.truth)) {
		t.Errorf("geometry: %d units for %d neurons, %d spikes for %d", ug, len(s.units), sg, len(s.truth))
	}
	for _, u := range s.score(spikes, 0, nil) {
		// Every unit's raw trough is 8 noise σ or more on its channel.
		t.Logf("unit %d (channel %d): accuracy %.3f, recall %.3f", u.unit, s.units[u.unit].channel, u.accuracy, u.recall)
		if u.accuracy < 0.9 {
			t.Errorf("unit %d (channel %d): accuracy %.3f", u.unit, s.units[u.unit].channel, u.accuracy)
		}
	}
	for _, x := range tm {
		if len(x.Channels) < 2 || x.Channels[0] != x.Channel || len(x.Footprint) != len(x.Channels)*len(x.Waveform) ||
			!slices.Equal(x.Footprint[:len(x.Waveform)], x.Waveform) {
			t.Fatalf("template of unit %d: channels %v, %d footprint samples for %d-sample waveforms", x.Unit, x.Channels, len(x.Footprint), len(x.Waveform))
		}
	}
}

// TestGeometryBlockSizeInvariance: with geometry too, results do not
// depend on how the stream is cut into blocks, nor on the number of
// shards.
func TestGeometryBlockSizeInvariance(t *testing.T) {
	s := denseSynth(20, 3)
	cfg := Config{Probe: linear(t, s.channels, "20"), Deterministic: true, LearnSeconds: 5}
	var ref []Spike
	blocks := []int{4096, 997, 30}
	if testing.Short() {
		blocks = blocks[:2] // 30-row blocks take the longest (under -race, -short)
	}
	for i, block := range blocks {
		cfg.Workers = []int{1, 3, 4}[i]
		spikes, so := runSorter(t, s, cfg, block)
		so.Close()
		checkOrder(t, spikes)
		if i == 0 {
			ref = spikes
			continue
		}
		if !slices.Equal(spikes, ref) {
			t.Fatalf("blocks of %d, %d workers: %d spikes, blocks of 4096, 1 worker: %d (or they differ)", block, cfg.Workers, len(spikes), len(ref))
		}
	}
}

// TestGeometryNoNeighbours: a layout with no two channels within the
// radius sorts exactly as without one.
func TestGeometryNoNeighbours(t *testing.T) {
	s := defaultSynth(20, 4)
	a, so := runSorter(t, s, Config{Deterministic: true}, 1000)
	so.Close()
	b, so := runSorter(t, s, Config{Deterministic: true, Probe: linear(t, s.channels, "400")}, 1000)
	so.Close()
	if !slices.Equal(a, b) {
		t.Fatalf("%d spikes without a probe, %d with channels 400 µm apart", len(a), len(b))
	}
}

// TestGeometrySeed: templates with footprints seed a sorter, which reports
// them back; bad ones are refused.
func TestGeometrySeed(t *testing.T) {
	s := denseSynth(20, 5)
	p := linear(t, s.channels, "20")
	_, tm := twoPass(t, s, Config{Probe: p}, 4096)
	if len(tm) == 0 {
		t.Fatal("no templates learned")
	}
	so, err := New(Config{Probe: p, Templates: tm}, s.channels, s.rate, s.gain)
	if err != nil {
		t.Fatal(err)
	}
	back := so.Templates()
	so.Close()
	if len(back) != len(tm) {
		t.Fatalf("%d templates back of %d", len(back), len(tm))
	}
	for i := range tm {
		if back[i].Unit != tm[i].Unit || !slices.Equal(back[i].Footprint, tm[i].Footprint) {
			t.Fatalf("template %d: unit %d, footprint differs from unit %d's", i, back[i].Unit, tm[i].Unit)
		}
		if !slices.Equal(slices.Sorted(slices.Values(back[i].Channels)), slices.Sorted(slices.Values(tm[i].Channels))) {
			t.Fatalf("template %d: channels %v, seeded %v", i, back[i].Channels, tm[i].Channels)
		}
	}
	bad := tm[0]
	bad.Channels = append([]int32{bad.Channel}, 99)
	bad.Footprint = slices.Concat(bad.Waveform, bad.Waveform)
	if _, err := New(Config{Probe: p, Templates: []Template{bad}}, s.channels, s.rate, s.gain); !errors.Is(err, ErrConfig) {
		t.Fatalf("seed on channel 99: %v", err)
	}
	bad.Channels = []int32{bad.Channel, bad.Channel + 1}
	bad.Footprint = bad.Waveform
	if _, err := New(Config{Probe: p, Templates: []Template{bad}}, s.channels, s.rate, s.gain); !errors.Is(err, ErrConfig) {
		t.Fatalf("seed with a short footprint: %v", err)
	}
	if _, err := New(Config{Probe: linear(t, 4, "20")}, s.channels, s.rate, s.gain); !errors.Is(err, ErrConfig) {
		t.Fatalf("a 4-channel probe for %d channels: %v", s.channels, err)
	}
}
