package sort

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spikeline/spikeline/device"
)

// falsePositives counts spikes at or after from on a channel that have no
// true spike of that channel within 0.4 ms.
func (s *synth) falsePositives(spikes []Spike, from uint64) (fp, total int) {
	delta := uint64(0.4e-3 * s.rate)
	byCh := make([][]uint64, s.channels)
	for _, tr := range s.truth {
		c := s.units[tr.unit].channel
		byCh[c] = append(byCh[c], tr.sample)
	}
	for _, sp := range spikes {
		if sp.Sample < from {
			continue
		}
		total++
		list := byCh[sp.Channel]
		lo, hi := 0, len(list)
		for lo < hi {
			m := (lo + hi) / 2
			if list[m]+delta < sp.Sample {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo == len(list) || list[lo] > sp.Sample+delta {
			fp++
		}
	}
	return fp, total
}

// TestSorterLobesNotExtraSpikes: the later lobes of large spikes (here
// the causal band-pass turns a repolarisation bump into a second negative
// lobe of about half the trough) are explained by the template and never
// come out as spikes of their own.
func TestSorterLobesNotExtraSpikes(t *testing.T) {
	s := newSynth(synthConfig{channels: 4, seconds: 25, unitsPerChan: []int{1},
		noiseUV: 10, ampMin: 260, ampMax: 260, fixedWidth: 0.16, seed: 3})
	// At 4.5σ rather than the default 4σ: what is counted here is lobes,
	// and at 4σ this quiet signal (few spikes) also has as many unsorted
	// noise crossings (about 0.3 per second and channel).
	cfg := Config{Deterministic: true, LearnSeconds: 8, Threshold: 4.5}
	spikes, so := runSorter(t, s, cfg, 600)
	from := uint64(9 * s.rate)
	fp, total := s.falsePositives(spikes, from)
	for _, u := range s.score(spikes, from, so.Noise(nil)) {
		t.Logf("unit %d snr %.1f recall %.3f accuracy %.3f", u.unit, u.snr, u.recall, u.accuracy)
		if u.accuracy < 0.95 {
			t.Errorf("unit %d: accuracy %.3f", u.unit, u.accuracy)
		}
	}
	t.Logf("%d of %d spikes after learning are not true spikes", fp, total)
	if float64(fp) > 0.03*float64(total) {
		t.Errorf("%d of %d spikes are extra (later lobes?)", fp, total)
	}
	// Before templates exist the dead time alone cannot stop them: check
	// that the test signal really has lobes that cross the threshold.
	early, _ := s.falsePositives(spikes[:0], 0)
	_ = early
	noLearn, _ := runSorter(t, s, Config{Deterministic: true, LearnSeconds: 1000, Threshold: 4.5}, 600)
	fp0, total0 := s.falsePositives(noLearn, from)
	t.Logf("without templates: %d of %d spikes extra", fp0, total0)
	if fp0 < total0/10 {
		t.Errorf("test signal too easy: only %d of %d extra spikes without templates", fp0, total0)
	}
}

// TestSorterGap: a gap in the stream is neither papered over nor fatal:
// spike samples stay on the device clock and nothing is found inside it.
func TestSorterGap(t *testing.T) {
	s := defaultSynth(20, 4)
	cfg := Config{Deterministic: true, LearnSeconds: 5}
	so, err := New(cfg, s.channels, s.rate, s.gain)
	if err != nil {
		t.Fatal(err)
	}
	gapFrom, gapTo := uint64(12*s.rate), uint64(13*s.rate)
	var out []Spike
	for _, b := range s.blocks(450) {
		if b.End() > gapFrom && b.First < gapTo {
			continue // lost
		}
		if out, err = so.Process(b, out); err != nil {
			t.Fatal(err)
		}
	}
	out = so.Flush(out)
	checkOrder(t, out)
	if g := so.Stats().Gaps; g != 1 {
		t.Errorf("Stats().Gaps = %d, want 1", g)
	}
	for _, sp := range out {
		if sp.Sample >= gapFrom-450 && sp.Sample < gapTo {
			lastBefore := (gapFrom / 450) * 450
			if sp.Sample >= lastBefore {
				t.Errorf("spike at %d inside the gap [%d, %d)", sp.Sample, lastBefore, gapTo)
			}
		}
	}
	// After the gap, spikes are still where the truth says.
	var after []Spike
	for _, sp := range out {
		if sp.Sample >= gapTo+uint64(0.05*s.rate) {
			after = append(after, sp)
		}
	}
	fp, total := s.falsePositives(after, 0)
	if total == 0 || float64(fp) > 0.05*float64(total) {
		t.Errorf("after the gap %d of %d spikes are off the truth", fp, total)
	}
	sc := s.score(after, gapTo+uint64(0.05*s.rate), so.Noise(nil))
	for _, u := range sc {
		if u.snr >= 5 && u.recall < 0.8 {
			t.Errorf("unit %d after the gap: recall %.2f", u.unit, u.recall)
		}
	}
}

// TestSorterPositive: with Sign Positive the inverted recording gives the
// same spike times as the original with Sign Negative.
func TestSorterPositive(t *testing.T) {
	s := defaultSynth(12, 5)
	cfg := Config{Deterministic: true, LearnSeconds: 4}
	neg, _ := runSorter(t, s, cfg, 300)
	inv := *s
	inv.samples = make([]int16, len(s.samples))
	for i, v := range s.samples {
		inv.samples[i] = -max(v, -32767)
	}
	cfg.Sign = Positive
	pos, _ := runSorter(t, &inv, cfg, 300)
	if len(pos) == 0 || len(neg) == 0 {
		t.Fatal("no spikes")
	}
	same := 0
	j := 0
	for _, a := range neg {
		for j < len(pos) && (pos[j].Sample < a.Sample || pos[j].Sample == a.Sample && pos[j].Channel < a.Channel) {
			j++
		}
		if j < len(pos) && pos[j].Sample == a.Sample && pos[j].Channel == a.Channel {
			same++
			if pos[j].Amplitude <= 0 {
				t.Fatalf("positive spike with amplitude %v", pos[j].Amplitude)
			}
		}
	}
	t.Logf("negative %d, positive %d, same %d", len(neg), len(pos), same)
	if float64(same) < 0.97*float64(len(neg)) {
		t.Errorf("only %d of %d spikes found again on the inverted signal", same, len(neg))
	}
	cfg.Sign = Both
	both, _ := runSorter(t, s, cfg, 300)
	if float64(len(both)) < 0.97*float64(len(neg)) {
		t.Errorf("Sign Both: %d spikes, Negative %d", len(both), len(neg))
	}
}

// TestSorterReference: large common-mode transients on every channel come
// out as spikes without a reference and are removed by CAR and CMR.
func TestSorterReference(t *testing.T) {
	cfg := synthConfig{channels: 16, seconds: 12, unitsPerChan: []int{1, 2},
		noiseUV: 10, ampMin: 80, ampMax: 160, dc: 1000, seed: 6, artifactRate: 7}
	from := uint64(6.5 * 30000) // after learning
	clean := newSynth(cfg)
	base, _ := runSorter(t, clean, Config{Deterministic: true, LearnSeconds: 6}, 300)
	fp0, total0 := clean.falsePositives(base, from)
	t.Logf("no artifacts, no reference: %d of %d spikes extra", fp0, total0)
	cfg.artifactUV = 400
	s := newSynth(cfg)
	for _, ref := range []Reference{RefNone, RefAverage, RefMedian} {
		spikes, _ := runSorter(t, s, Config{Deterministic: true, LearnSeconds: 6, Reference: ref}, 300)
		fp, total := s.falsePositives(spikes, from)
		t.Logf("artifacts, reference %v: %d of %d spikes extra", ref, fp, total)
		switch ref {
		case RefNone:
			if fp < fp0+16*30 {
				t.Errorf("no reference: only %d extra spikes from the artifacts", fp)
			}
		default:
			if float64(fp) > float64(fp0)+0.01*float64(total) {
				t.Errorf("reference %v: %d of %d spikes extra (%d without artifacts)", ref, fp, total, fp0)
			}
		}
	}
}

// TestSorterSeededTemplates: the second pass of an offline sort, seeded
// with the first pass's templates, sorts from the first spike and keeps
// their unit ids.
func TestSorterSeededTemplates(t *testing.T) {
	s := defaultSynth(16, 7)
	_, first := runSorter(t, s, Config{Deterministic: true, LearnSeconds: 8}, 1000)
	ts := first.Templates()
	if len(ts) == 0 {
		t.Fatal("no templates learned")
	}
	ids := map[int32]bool{}
	for _, tp := range ts {
		ids[tp.Unit] = true
	}
	spikes, second := runSorter(t, s, Config{Deterministic: true, Templates: ts}, 1000)
	from := uint64(0.3 * s.rate)
	sorted := 0
	for _, sp := range spikes {
		if sp.Sample < from {
			continue
		}
		if sp.Unit != 0 {
			sorted++
			if !ids[sp.Unit] {
				t.Fatalf("unit %d is not a seeded template's", sp.Unit)
			}
		}
	}
	n := 0
	for _, sp := range spikes {
		if sp.Sample >= from {
			n++
		}
	}
	t.Logf("%d of %d spikes sorted from the start", sorted, n)
	if float64(sorted) < 0.9*float64(n) {
		t.Errorf("only %d of %d spikes sorted with seeded templates", sorted, n)
	}
	for _, u := range s.score(spikes, from, second.Noise(nil)) {
		if u.snr >= 5 && u.accuracy < 0.8 {
			t.Errorf("unit %d: accuracy %.3f with seeded templates", u.unit, u.accuracy)
		}
	}
	// Seeds must fit the sorter.
	bad := ts[0]
	bad.Pre = 3
	if _, err := New(Config{Templates: []Template{bad}}, s.channels, s.rate, s.gain); err == nil {
		t.Error("a seed template with the wrong Pre was accepted")
	}
}

// TestSorterRelearnKeepsIDs: periodic re-learning (with slow drift) keeps
// each neuron's unit id.
func TestSorterRelearnKeepsIDs(t *testing.T) {
	s := newSynth(synthConfig{channels: 6, seconds: 40, unitsPerChan: []int{1, 2, 3},
		noiseUV: 10, ampMin: 80, ampMax: 180, seed: 8, drift: 0.25})
	cfg := Config{Deterministic: true, LearnSeconds: 6, RelearnEvery: 10}
	spikes, so := runSorter(t, s, cfg, 500)
	if st := so.Stats(); st.Learned < 3 {
		t.Fatalf("%d learning passes, want >= 3", st.Learned)
	}
	// The dominant sorted id of each true unit, early and late.
	dominant := func(from, to uint64) map[int]int32 {
		delta := uint64(12)
		count := map[int]map[int32]int{}
		j := 0
		for _, tr := range s.truth {
			if tr.sample < from || tr.sample >= to {
				continue
			}
			for j < len(spikes) && spikes[j].Sample+delta < tr.sample {
				j++
			}
			for k := j; k < len(spikes) && spikes[k].Sample <= tr.sample+delta; k++ {
				if int(spikes[k].Channel) == s.units[tr.unit].channel && spikes[k].Unit != 0 {
					if count[tr.unit] == nil {
						count[tr.unit] = map[int32]int{}
					}
					count[tr.unit][spikes[k].Unit]++
					break
				}
			}
		}
		out := map[int]int32{}
		for u, m := range count {
			best := 0
			for id, n := range m {
				if n > best {
					best, out[u] = n, id
				}
			}
		}
		return out
	}
	early := dominant(uint64(7*s.rate), uint64(15*s.rate))
	late := dominant(uint64(32*s.rate), uint64(40*s.rate))
	for u := range s.units {
		if early[u] == 0 || early[u] != late[u] {
			t.Errorf("unit %d: id %d early, %d late", u, early[u], late[u])
		}
	}
	for _, u := range s.score(spikes, uint64(7*s.rate), so.Noise(nil)) {
		t.Logf("unit %d snr %.1f accuracy %.3f", u.unit, u.snr, u.accuracy)
	}
}

// TestSorterOddInput: nothing a device can send makes the sorter panic.
func TestSorterOddInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ch := range []int{1, 3, 64} {
		so, err := New(Config{LearnSeconds: 0.2, NoiseWindow: 0.05}, ch, 20000, 0.195)
		if err != nil {
			t.Fatal(err)
		}
		var out []Spike
		first := uint64(0)
		for i := range 400 {
			n := rng.IntN(200)
			if i%7 == 0 {
				n = 1
			}
			b := device.Block{First: first, Rate: 20000, Channels: ch, Gain: 0.195, Samples: make([]int16, n*ch)}
			switch i % 5 {
			case 0: // flat
			case 1: // saturated square wave
				for k := range b.Samples {
					if (k/ch/10)%2 == 0 {
						b.Samples[k] = 32767
					} else {
						b.Samples[k] = -32768
					}
				}
			default:
				for k := range b.Samples {
					b.Samples[k] = int16(rng.IntN(65536) - 32768)
				}
			}
			switch i % 11 {
			case 3:
				b.Gain = math.NaN()
			case 4:
				b.First += 1000 // gap
			case 5:
				if first > 500 {
					b.First -= 500 // counter went backwards
				}
			}
			out, err = so.Process(b, out[:0])
			if err != nil {
				t.Fatalf("block %d: %v", i, err)
			}
			for _, sp := range out {
				if math.IsNaN(float64(sp.Amplitude)) || int(sp.Channel) >= ch {
					t.Fatalf("bad spike %+v", sp)
				}
			}
			first = b.End()
		}
		so.Flush(nil)
		so.Templates()
		so.Close()
	}
}

// TestSorterManyChannels runs 4,096 channels briefly.
func TestSorterManyChannels(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const ch = 4096
	src := defaultSynth(1.5, 9)
	n := len(src.samples) / src.channels
	samples := make([]int16, n*ch)
	for t := range n {
		for c := range ch {
			samples[t*ch+c] = src.samples[t*src.channels+c%src.channels]
		}
	}
	so, err := New(Config{LearnSeconds: 1}, ch, src.rate, src.gain)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	var out []Spike
	for off := 0; off < n; off += 300 {
		m := min(300, n-off)
		b := device.Block{First: uint64(off), Rate: src.rate, Channels: ch, Gain: src.gain, Samples: samples[off*ch : (off+m)*ch]}
		if out, err = so.Process(b, out); err != nil {
			t.Fatal(err)
		}
	}
	out = so.Flush(out)
	checkOrder(t, out)
	perCh := make([]int, ch)
	for _, sp := range out {
		perCh[sp.Channel]++
	}
	for c := range ch {
		if perCh[c] != perCh[c%src.channels] {
			t.Fatalf("channel %d found %d spikes, its copy %d found %d", c, perCh[c], c%src.channels, perCh[c%src.channels])
		}
	}
	if len(out) == 0 {
		t.Fatal("no spikes")
	}
}

// TestSorterOverlap: a second unit firing 0.4–0.9 ms after the first
// (inside its snippet and its dead time) is found in the residual once
// the first spike is explained.
func TestSorterOverlap(t *testing.T) {
	s := newSynth(synthConfig{channels: 4, seconds: 30, unitsPerChan: []int{2},
		noiseUV: 10, ampMin: 120, ampMax: 200, seed: 10, overlap: 0.3})
	cfg := Config{Deterministic: true, LearnSeconds: 8}
	spikes, so := runSorter(t, s, cfg, 600)
	from := uint64(9 * s.rate)
	// Recall of the overlapped second-unit spikes: those within 1 ms
	// after a first-unit spike.
	var overlapped, found int
	delta := uint64(12)
	byCh := make([][]Spike, s.channels)
	for _, sp := range spikes {
		byCh[sp.Channel] = append(byCh[sp.Channel], sp)
	}
	for i, tr := range s.truth {
		if tr.sample < from || i == 0 {
			continue
		}
		u := s.units[tr.unit]
		prev := -1
		for k := i - 1; k >= 0 && s.truth[k].sample+30 >= tr.sample; k-- {
			if s.units[s.truth[k].unit].channel == u.channel && s.truth[k].unit != tr.unit {
				prev = k
			}
		}
		if prev < 0 {
			continue
		}
		overlapped++
		for _, sp := range byCh[u.channel] {
			if sp.Sample+delta >= tr.sample && sp.Sample <= tr.sample+delta && sp.Sample > s.truth[prev].sample+delta/2 {
				found++
				break
			}
		}
	}
	t.Logf("overlapped spikes found: %d of %d", found, overlapped)
	if overlapped < 50 {
		t.Fatalf("only %d overlaps in the test signal", overlapped)
	}
	// Measured: 169 of 255 (66%); with a blind 1 ms dead time after every
	// spike instead, 6 of 255.
	if float64(found) < 0.6*float64(overlapped) {
		t.Errorf("found %d of %d overlapped spikes", found, overlapped)
	}
	for _, u := range s.score(spikes, from, so.Noise(nil)) {
		t.Logf("unit %d snr %.1f recall %.3f accuracy %.3f", u.unit, u.snr, u.recall, u.accuracy)
	}
}

// TestSorterConcurrentReaders: Templates, Noise and Stats may be called
// from other goroutines while Process runs and learning proceeds in the
// background (run with -race).
func TestSorterConcurrentReaders(t *testing.T) {
	s := defaultSynth(8, 11)
	so, err := New(Config{LearnSeconds: 2}, s.channels, s.rate, s.gain)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			so.Templates()
			so.Noise(nil)
			so.Stats()
		}
	}()
	var out []Spike
	for _, b := range s.blocks(300) {
		if out, err = so.Process(b, out[:0]); err != nil {
			t.Fatal(err)
		}
	}
	so.Flush(nil)
	<-done
	if st := so.Stats(); st.Learned == 0 || st.Units == 0 {
		t.Errorf("no learning in the background: %+v", st)
	}
}
