package sim

import (
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

// collect runs s to its Duration and returns all samples (time-major),
// ground-truth spikes and behaviour.
func collect(t testing.TB, s *Sim) ([]int16, []sort.Spike, []BehaviourSample) {
	t.Helper()
	ctx := context.Background()
	var data []int16
	var spikes []sort.Spike
	var beh []BehaviourSample
	next := uint64(0)
	for {
		b, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.First != next {
			t.Fatalf("block First = %d, want %d", b.First, next)
		}
		next = b.End()
		data = append(data, b.Samples...)
		spikes = s.TakeSpikes(spikes)
		beh = s.TakeBehaviour(beh)
	}
	return data, spikes, beh
}

func TestReproducible(t *testing.T) {
	cfg := Config{Channels: 8, Seed: 42, Duration: 30000, MinUnits: 1, MaxUnits: 3}
	s1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d1, sp1, b1 := collect(t, s1)
	for _, bs := range []int{1, 7, 30, 1000, 4096} {
		c := cfg
		c.BlockSamples = bs
		s2, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		d2, sp2, b2 := collect(t, s2)
		if !slices.Equal(d1, d2) {
			t.Errorf("BlockSamples %d: samples differ", bs)
		}
		if !slices.Equal(sp1, sp2) {
			t.Errorf("BlockSamples %d: spikes differ (%d vs %d)", bs, len(sp1), len(sp2))
		}
		if !slices.Equal(b1, b2) {
			t.Errorf("BlockSamples %d: behaviour differs", bs)
		}
	}
	if len(d1) != 8*30000 {
		t.Errorf("got %d samples, want %d", len(d1), 8*30000)
	}
	if len(sp1) == 0 {
		t.Error("no ground-truth spikes")
	}
	if len(b1) != 1000 {
		t.Errorf("got %d behaviour samples in 1 s, want 1000", len(b1))
	}
	c := cfg
	c.Seed = 43
	s3, _ := New(c)
	d3, _, _ := collect(t, s3)
	if slices.Equal(d1, d3) {
		t.Error("seeds 42 and 43 gave identical data")
	}
}

// quiet is a config with everything but units off: the ground truth can
// be read straight off the data.
func quiet(channels int) Config {
	return Config{Channels: channels, Seed: 7, MinUnits: 1, MaxUnits: 1,
		NoNoise: true, NoLFP: true, NoMains: true, NoDC: true, NoArtifacts: true, NoDrift: true}
}

func TestGroundTruthTroughs(t *testing.T) {
	cfg := quiet(8)
	cfg.Duration = 5 * 30000
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, spikes, _ := collect(t, s)
	if len(spikes) < 100 {
		t.Fatalf("only %d spikes", len(spikes))
	}
	units := map[int32]Unit{}
	for _, u := range s.Units() {
		units[u.ID] = u
	}
	C := cfg.Channels
	n := len(data) / C
	bad := 0
	for i, sp := range spikes {
		if i > 0 && spikes[i-1].Sample > sp.Sample {
			t.Fatalf("spikes not sorted at %d", i)
		}
		u, ok := units[sp.Unit]
		if !ok || int32(u.Channel) != sp.Channel {
			t.Fatalf("spike %+v: unknown unit or wrong channel", sp)
		}
		at := int(sp.Sample)
		if at < 3 || at+3 >= n {
			continue
		}
		v := float64(data[at*C+int(sp.Channel)]) * s.Config().Gain
		// The trough sample holds the spike's amplitude (up to the tail
		// of an earlier spike of the same unit) and is the local minimum.
		if d := v - float64(sp.Amplitude); d > 0.15*math.Abs(float64(sp.Amplitude))+1 || d < -0.15*math.Abs(float64(sp.Amplitude))-1 {
			bad++
			continue
		}
		for k := at - 3; k <= at+3; k++ {
			if data[k*C+int(sp.Channel)] < data[at*C+int(sp.Channel)] {
				bad++
				break
			}
		}
	}
	if bad > len(spikes)/100 {
		t.Errorf("%d of %d spikes are not at a trough of the data with their amplitude", bad, len(spikes))
	}
	// Between spikes the signal is exactly zero: nothing but units.
	zero := 0
	for _, v := range data {
		if v == 0 {
			zero++
		}
	}
	if zero < len(data)/2 {
		t.Errorf("only %d of %d samples are 0 with everything but units off", zero, len(data))
	}
}

func TestFiringStatistics(t *testing.T) {
	cfg := quiet(32)
	cfg.TunedFraction = -1 // untuned: constant rates
	cfg.NoBursts = true
	secs := 60.0
	if testing.Short() {
		secs = 20
	}
	cfg.Duration = uint64(secs * 30000)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, spikes, _ := collect(t, s)
	byUnit := map[int32][]uint64{}
	for _, sp := range spikes {
		byUnit[sp.Unit] = append(byUnit[sp.Unit], sp.Sample)
	}
	rate := s.Config().Rate
	for _, u := range s.Units() {
		if u.Tuned || u.ModulationHz != 0 {
			t.Fatalf("unit %d tuned with TunedFraction < 0", u.ID)
		}
		ts := byUnit[u.ID]
		// Poisson with an absolute dead time R fires at b/(1+bR).
		want := u.BaselineHz / (1 + u.BaselineHz*u.RefractoryMs/1000) * secs
		got := float64(len(ts))
		if math.Abs(got-want) > 4*math.Sqrt(want)+2 {
			t.Errorf("unit %d: %v spikes in %v s, want %.1f ± %.1f", u.ID, got, secs, want, 4*math.Sqrt(want))
		}
		minISI := math.Inf(1)
		for i := 1; i < len(ts); i++ {
			minISI = math.Min(minISI, float64(ts[i]-ts[i-1]))
		}
		if refr := u.RefractoryMs * rate / 1000; minISI < refr-1 {
			t.Errorf("unit %d: ISI of %v samples < refractory %.1f", u.ID, minISI, refr)
		}
	}
}

func TestBursts(t *testing.T) {
	cfg := quiet(64)
	cfg.TunedFraction = -1
	cfg.Duration = 20 * 30000
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, spikes, _ := collect(t, s)
	last := map[int32]uint64{}
	short := map[int32]int{}
	for _, sp := range spikes {
		if p, ok := last[sp.Unit]; ok && sp.Sample-p < 8*30 {
			short[sp.Unit]++
		}
		last[sp.Unit] = sp.Sample
	}
	bursty, checked := 0, 0
	for _, u := range s.Units() {
		n := 0
		for _, sp := range spikes {
			if sp.Unit == u.ID {
				n++
			}
		}
		if n < 50 {
			continue
		}
		checked++
		// Short ISIs (< 8 ms) from Poisson alone: about b·8ms of them.
		poisson := float64(n) * u.BaselineHz * 0.008
		if u.BurstProb > 0.1 && float64(short[u.ID]) > 2*poisson+5 {
			bursty++
		}
		if u.BurstProb == 0 && float64(short[u.ID]) > 3*poisson+10 {
			t.Errorf("unit %d without bursts has %d short ISIs (Poisson ~%.0f)", u.ID, short[u.ID], poisson)
		}
	}
	if bursty == 0 {
		t.Errorf("no bursty unit among %d shows an excess of short ISIs", checked)
	}
}

// The output does not depend on how many goroutines generate it.
func TestParallelMatchesSerial(t *testing.T) {
	cfg := Config{Channels: 258, Seed: 4, Duration: 6000, ArtifactRate: 20}
	run := func(workers int) ([]int16, []sort.Spike) {
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.setWorkers(workers)
		d, sp, _ := collect(t, s)
		return d, sp
	}
	d1, s1 := run(1)
	d3, s3 := run(3)
	if !slices.Equal(d1, d3) || !slices.Equal(s1, s3) {
		t.Error("1 and 3 workers give different recordings")
	}
}

// An emulator goroutine pumps Next while the test drains ground truth.
func TestConcurrentTake(t *testing.T) {
	s, err := New(Config{Channels: 4, Seed: 2, Duration: 30000, MinUnits: 2, MaxUnits: 2})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := s.Next(context.Background()); err != nil {
				return
			}
		}
	}()
	var spikes []sort.Spike
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		spikes = s.TakeSpikes(spikes)
		_ = s.TakeBehaviour(nil)
		_ = s.Emitted()
	}
	spikes = s.TakeSpikes(spikes)
	for i := 1; i < len(spikes); i++ {
		if spikes[i].Sample < spikes[i-1].Sample {
			t.Fatal("spikes out of order")
		}
	}
	if len(spikes) == 0 || s.Emitted() != 30000 {
		t.Errorf("%d spikes, emitted %d", len(spikes), s.Emitted())
	}
}
