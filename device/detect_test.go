package device

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// spikeSignal returns n samples of channels channels: noise of rms 30
// counts, a DC offset and a slow oscillation, and a negative spike of
// about -600 counts on each channel every 997 samples (channel c shifted
// by 37c samples); it returns the spike times per channel.
func spikeSignal(rng *rand.Rand, channels, n int) ([]int16, [][]uint64) {
	s := make([]int16, channels*n)
	times := make([][]uint64, channels)
	shape := []float64{-0.1, -0.4, -0.9, -1, -0.7, -0.2, 0.2, 0.35, 0.3, 0.2, 0.1}
	for c := range channels {
		dc := rng.NormFloat64() * 2000
		for t := range n {
			v := dc + 400*math.Sin(float64(t)*2*math.Pi*3/30000+float64(c)) + 30*rng.NormFloat64()
			s[t*channels+c] = int16(v)
		}
		for t0 := 200 + 37*c; t0+len(shape) < n; t0 += 997 {
			for i, a := range shape {
				s[(t0+i)*channels+c] += int16(600 * a)
			}
			times[c] = append(times[c], uint64(t0+3))
		}
	}
	return s, times
}

func TestDetectorFindsSpikes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const C, n, first = 4, 60000, 3_000_000 // first: a multiple of the bin
	s, times := spikeSignal(rng, C, n)
	set := DefaultSettings(30000, C)
	set.Mode = ModeSpikes
	set.Thresholds[0] = Thresholds(s[:C*30000], C, 30000, -5)
	for c, th := range set.Thresholds[0] {
		if th > -100 || th < -250 {
			t.Errorf("channel %d threshold %d counts, want about -5 × the filtered noise", c, th)
		}
	}
	d, err := NewDetector(set, C)
	if err != nil {
		t.Fatal(err)
	}
	d.Push(first, s)
	ev := d.TakeEvents(nil)
	found := make([]int, C)
	for _, e := range ev {
		if len(e.Snippet) != set.Pre+1+set.Post {
			t.Fatalf("snippet of %d samples", len(e.Snippet))
		}
		if v := int(e.Snippet[set.Pre]) << e.Shift; v > int(set.Thresholds[0][e.Channel]) {
			t.Fatalf("event on channel %d at %d: extremum %d above the threshold", e.Channel, e.Sample, v)
		}
		for _, tt := range times[e.Channel] {
			if d := int64(e.Sample) - int64(first+tt); d >= -3 && d <= 3 {
				found[e.Channel]++
				break
			}
		}
	}
	for c := range C {
		if found[c] != len(times[c]) {
			t.Errorf("channel %d: %d of %d spikes found (%d events in all)", c, found[c], len(times[c]), len(ev))
		}
	}
	if len(ev) > C*len(times[0])*11/10 {
		t.Errorf("%d events for %d spikes", len(ev), C*len(times[0]))
	}
	// Features: 100 bins of 20 ms; the crossings of each channel match
	// its spikes.
	if d.Bins() != n/set.BinSamples {
		t.Fatalf("%d bins, want %d", d.Bins(), n/set.BinSamples)
	}
	start, f := d.TakeBins(0)
	if start != first {
		t.Fatalf("first bin at %d, want %d", start, first)
	}
	for c := range C {
		total := 0
		for b := range f.Bins() {
			total += f.Count(b, 0, c)
		}
		if total < len(times[c]) || total > len(times[c])*11/10 {
			t.Errorf("channel %d: %d crossings for %d spikes", c, total, len(times[c]))
		}
	}
	for b := range f.Bins() {
		for c := range C {
			if p := PowerValue(f.Power[b*C+c]); p < 200 || p > 30000 {
				t.Errorf("bin %d channel %d: power %g counts²", b, c, p)
			}
		}
	}
}

// TestDetectorBlockSizes checks that what the Detector finds does not
// depend on how the samples are cut into Pushes, and that a gap restarts
// it.
func TestDetectorBlockSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const C, n = 3, 20000
	s, _ := spikeSignal(rng, C, n)
	set := DefaultSettings(30000, C)
	set.Levels = 2
	set.Thresholds = [][]int16{Thresholds(s, C, 30000, -4.5), Thresholds(s, C, 30000, -3)}
	run := func(cuts []int) ([]SpikeEvent, Features) {
		d, err := NewDetector(set, C)
		if err != nil {
			t.Fatal(err)
		}
		off := 0
		for _, k := range cuts {
			k = min(k, n-off)
			d.Push(uint64(off), s[off*C:(off+k)*C])
			off += k
		}
		d.Push(uint64(off), s[off*C:])
		_, f := d.TakeBins(0)
		return d.TakeEvents(nil), f
	}
	ev0, f0 := run(nil)
	if len(ev0) == 0 || f0.Bins() != n/600 {
		t.Fatalf("%d events, %d bins", len(ev0), f0.Bins())
	}
	for _, cuts := range [][]int{{1, 1, 1, 7, 600, 601}, {32, 32, 32, 32, 32}, {19999}} {
		ev, f := run(cuts)
		if !reflect.DeepEqual(ev, ev0) || !reflect.DeepEqual(f, f0) {
			t.Fatalf("cuts %v change the result", cuts)
		}
	}
	// A gap: the bins that straddle it are dropped, events restart.
	d, _ := NewDetector(set, C)
	d.Push(0, s[:9000*C])
	d.Push(9300, s[9000*C:])
	start, f := d.TakeBins(0)
	if start != 0 || f.Bins() != 9000/600 {
		t.Fatalf("before the gap: bins from %d, %d bins", start, f.Bins())
	}
	start, f = d.TakeBins(0)
	if start != 9600 || f.Bins() != (20300-9600)/600 {
		t.Fatalf("after the gap: bins from %d, %d bins", start, f.Bins())
	}
}

func TestPowerCode(t *testing.T) {
	prev := -1.0
	for v := uint64(0); v < 1<<21; v += 1 + v/97 {
		c := PowerCode(v)
		p := PowerValue(c)
		if p < prev {
			t.Fatalf("PowerValue not monotonic at %d", v)
		}
		prev = p
		if v < 16 && p != float64(v) {
			t.Fatalf("PowerValue(PowerCode(%d)) = %g", v, p)
		}
		if v >= 16 && v < 31<<14 && math.Abs(p-float64(v)) > 0.035*float64(v) {
			t.Fatalf("PowerValue(PowerCode(%d)) = %g, more than 3.5%% off", v, p)
		}
	}
	if PowerCode(1<<40) != 255 {
		t.Fatal("large powers must saturate")
	}
}

// TestV2FramesRoundTrip encodes spike, feature and settings frames and
// decodes them with the Decoder, through a WireSource too.
func TestV2FramesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const C, n = 4, 12000
	s, _ := spikeSignal(rng, C, n)
	set := DefaultSettings(30000, C)
	set.Mode = ModeSpikes
	set.Thresholds[0] = Thresholds(s, C, 30000, -4.5)
	d, _ := NewDetector(set, C)
	var stream []byte
	stream = AppendSettings(stream, 0, 30000, 0.195, C, set)
	var want []SpikeEvent
	const frame = 300
	for off := 0; off < n; off += frame {
		d.Push(uint64(off), s[off*C:(off+frame)*C])
		ev := d.TakeEvents(nil)
		want = append(want, ev...)
		stream = AppendSpikes(stream, uint64(off), frame, 30000, 0.195, C, &Spikes{Pre: set.Pre, Post: set.Post, Snippets: true, Events: ev}, 0)
	}
	for d.Bins() > 0 {
		start, f := d.TakeBins(1)
		stream = AppendFeatures(stream, start, 30000, 0.195, &f, 0)
	}
	src := NewWireSource(bytes.NewReader(stream))
	var got []SpikeEvent
	var bins int
	var settings *Settings
	next := uint64(0)
	for {
		b, err := src.Next(t.Context())
		if err != nil {
			break
		}
		if b.Settings != nil {
			settings = b.Settings
		}
		switch {
		case b.Spikes != nil:
			if b.First != next || b.Span != frame || b.End() != next+frame || b.Len() != 0 {
				t.Fatalf("spike block %d+%d (end %d), want %d", b.First, b.Span, b.End(), next)
			}
			next = b.End()
			got = append(got, b.Spikes.Events...)
		case b.Features != nil:
			bins += b.Features.Bins()
		default:
			t.Fatalf("block without spikes or features: %+v", b)
		}
	}
	if !reflect.DeepEqual(settings, set) {
		t.Fatalf("settings %+v, want %+v", settings, set)
	}
	if len(got) == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("%d events decoded, %d sent", len(got), len(want))
	}
	if bins != n/set.BinSamples {
		t.Fatalf("%d bins, want %d", bins, n/set.BinSamples)
	}
	// The feature frames start behind the spike frames' end: the stream
	// goes back, a reset; nothing else is an anomaly.
	st := src.Stats()
	if st.BadFrames+st.CRCErrors+st.SkippedBytes+st.Gaps != 0 || st.Resets != 1 {
		t.Fatalf("stats %+v", st)
	}
}
