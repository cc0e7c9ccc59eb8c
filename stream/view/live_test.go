package view

import (
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// rampTracer is a Tracer whose band-passed signal is a known function of
// channel and sample, so that columns and waveforms can be checked
// exactly. The test moves its clock.
type rampTracer struct {
	mu         sync.Mutex
	end        uint64
	zeroBefore uint64 // samples before read zero, as the sorter's before a gap
	watched    []int
	watches    int
	n, pre     int
}

func rampValue(ch int, t uint64) float32 { return float32(ch*1000) + float32(t%997) - 499.75 } // never exactly 0

func (r *rampTracer) Watch(channels []int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watched = slices.Clone(channels)
	r.watches++
	return nil
}

func (r *rampTracer) Trace(ch, n int, dst []float32) ([]float32, uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.watched, ch) {
		return dst, 0, false
	}
	n = min(n, sort.WatchLen)
	for t := int64(r.end) - int64(n); t < int64(r.end); t++ {
		if t < 0 || uint64(t) < r.zeroBefore {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, rampValue(ch, uint64(t)))
	}
	return dst, r.end, true
}

func (r *rampTracer) Noise(dst []float32) []float32 {
	for range 8 {
		dst = append(dst, 7.5)
	}
	return dst
}

func (r *rampTracer) SnippetLen() (int, int) { return r.n, r.pre }

func (r *rampTracer) advance(to uint64) {
	r.mu.Lock()
	r.end = to
	r.mu.Unlock()
}

func newLiveRig(t *testing.T, lc LiveConfig) (*View, *Live, *rampTracer) {
	t.Helper()
	v, err := New(Config{Rig: "live"})
	if err != nil {
		t.Fatal(err)
	}
	tr := &rampTracer{n: 45, pre: 15}
	if lc.Channels == 0 {
		lc.Channels = 8
	}
	if lc.Rate == 0 {
		lc.Rate = 30000
	}
	l, err := v.AttachLive(tr, lc)
	if err != nil {
		t.Fatal(err)
	}
	return v, l, tr
}

func decodeDetail(t *testing.T, msg []byte) DetailJSON {
	t.Helper()
	s := string(msg)
	if !strings.HasPrefix(s, "event: detail\ndata: ") {
		t.Fatalf("not a detail event: %.60q", s)
	}
	var d DetailJSON
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(s, "event: detail\ndata: "), "\n\n")), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestLiveColumnsAndWaveforms feeds a Live 1 ms blocks against a tracer
// with a known signal and checks that the min/max columns are aligned on
// the device clock (column k covers [k·spp, (k+1)·spp)) and exact, that
// each column and waveform is sent once, and that waveforms are cut with
// their extremum at Pre.
func TestLiveColumnsAndWaveforms(t *testing.T) {
	v, l, tr := newLiveRig(t, LiveConfig{TraceColumns: 600, Waveforms: 20})
	const ch = 0 // the default channel
	spp := uint64(50)
	if l.spp != spp {
		t.Fatalf("samples per column %d, want 50 (1 s of 30 kHz in 600 columns)", l.spp)
	}
	block := device.Block{First: 1_000_000, Rate: 30000, Channels: 8, Samples: make([]int16, 8*30)}
	cols := map[uint64][2]float64{}
	waves := map[uint64][]float64{}
	var spikeAt []uint64
	nb := 0
	for tick := range 25 {
		for range 40 { // 40 ms per tick
			nb++
			block.First += 30
			tr.advance(block.End())
			var spikes []sort.Spike
			// A spike every 7 ms on the watched channel, reported (as the
			// sorter does) a little after its extremum; one on another
			// channel, which is not kept.
			if nb%7 == 0 {
				s := block.First - 100
				spikes = append(spikes, sort.Spike{Sample: s, Channel: ch, Unit: 3}, sort.Spike{Sample: s, Channel: 5, Unit: 9})
				spikeAt = append(spikeAt, s)
			}
			l.Feed(&block, spikes)
		}
		d := decodeDetail(t, l.tick())
		if d.Default != ch || !slices.Equal(d.Watched, []int{ch}) || len(d.Channels) != 1 {
			t.Fatalf("tick %d: default %d, watched %v, %d channels: want channel %d alone", tick, d.Default, d.Watched, len(d.Channels), ch)
		}
		c := d.Channels[0]
		if float64(c.SigmaUV) != 7.5 {
			t.Errorf("sigma %v, want 7.5", c.SigmaUV)
		}
		for i := range c.Min {
			k := c.Col0 + uint64(i)
			if _, dup := cols[k]; dup {
				t.Fatalf("column %d sent twice", k)
			}
			cols[k] = [2]float64{float64(c.Min[i]), float64(c.Max[i])}
		}
		for i, u := range c.Units {
			id := c.Wave0 + uint64(i)
			if _, dup := waves[id]; dup {
				t.Fatalf("waveform %d sent twice", id)
			}
			if u != 3 {
				t.Errorf("waveform %d of unit %d, want 3", id, u)
			}
			w := make([]float64, 45)
			for j := range w {
				w[j] = float64(c.W[i*45+j])
			}
			waves[id] = append(w, float64(c.Samples[i]))
		}
	}
	end := tr.end
	// Every column from the watch on, up to the last complete one.
	first := slices.Min(slices.Collect(mapsKeys(cols)))
	for k := first; (k+1)*spp <= end; k++ {
		got, ok := cols[k]
		if !ok {
			t.Fatalf("column %d missing (first %d, end sample %d)", k, first, end)
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for s := k * spp; s < (k+1)*spp; s++ {
			x := math.Round(float64(rampValue(ch, s))*10) / 10
			lo, hi = min(lo, x), max(hi, x)
		}
		if got[0] != lo || got[1] != hi {
			t.Fatalf("column %d: min/max %v, want [%v %v]", k, got, lo, hi)
		}
	}
	// Every spike's waveform, in order, cut around its extremum.
	if len(waves) != len(spikeAt) || len(waves) < 100 {
		t.Fatalf("%d waveforms for %d spikes", len(waves), len(spikeAt))
	}
	for id := range uint64(len(waves)) {
		w := waves[id]
		at := uint64(w[45])
		if at != spikeAt[id] {
			t.Fatalf("waveform %d at sample %d, want %d", id, at, spikeAt[id])
		}
		for j := range 45 {
			want := math.Round(float64(rampValue(ch, at-15+uint64(j)))*10) / 10
			if w[j] != want {
				t.Fatalf("waveform %d sample %d: %v, want %v", id, j, w[j], want)
			}
		}
	}
	// A snapshot holds the last span of columns and the last Waveforms.
	snap := decodeDetail(t, l.snapshot())
	c := snap.Channels[0]
	if !snap.Full || len(c.Min) != 600 || len(c.Units) != 20 || c.Wave0 != uint64(len(waves))-20 {
		t.Errorf("snapshot: full %v, %d columns (want 600), %d waveforms from id %d (want 20 from %d)", snap.Full, len(c.Min), len(c.Units), c.Wave0, len(waves)-20)
	}
	if n := v.Stats().Clients; n != 0 {
		t.Errorf("%d clients", n)
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestLiveAfterGap: samples the sorter reads as zero (before a gap) give
// empty columns (null), not a flat line, and no waveforms.
func TestLiveAfterGap(t *testing.T) {
	_, l, tr := newLiveRig(t, LiveConfig{})
	b := device.Block{First: 0, Rate: 30000, Channels: 8, Samples: make([]int16, 8*30)}
	feed := func(blocks int, spikeAt uint64) {
		for range blocks {
			b.First += 30
			tr.advance(b.End())
			l.Feed(&b, []sort.Spike{{Sample: spikeAt, Channel: 0, Unit: 1}})
		}
	}
	feed(100, 1000)
	decodeDetail(t, l.tick())
	// A gap: everything before now reads zero; a spike from before it
	// arrives late.
	feed(50, 4000) // 100 blocks read, 50 more that will read zero
	tr.mu.Lock()
	tr.zeroBefore = tr.end
	tr.mu.Unlock()
	d := decodeDetail(t, l.tick())
	c := d.Channels[0]
	nulls := 0
	for i := range c.Min {
		if math.IsNaN(float64(c.Min[i])) != math.IsNaN(float64(c.Max[i])) {
			t.Fatalf("column %d: min %v, max %v", i, c.Min[i], c.Max[i])
		}
		if math.IsNaN(float64(c.Min[i])) {
			nulls++
		}
	}
	if nulls != 30 || len(c.Units) != 0 || d.WaveformsDropped == 0 {
		t.Errorf("after a gap: %d empty columns of %d (want the 30 of the 50 zeroed blocks), %d waveforms (want 0), %d dropped (want > 0)",
			nulls, len(c.Min), len(c.Units), d.WaveformsDropped)
	}
}

// TestLiveDeviceReset: when the device counter goes back, a watched
// channel starts over as a new generation on the new clock.
func TestLiveDeviceReset(t *testing.T) {
	_, l, tr := newLiveRig(t, LiveConfig{})
	b := device.Block{First: 5_000_000, Rate: 30000, Channels: 8, Samples: make([]int16, 8*30)}
	feed := func(blocks int) {
		for range blocks {
			b.First += 30
			tr.advance(b.End())
			l.Feed(&b, []sort.Spike{{Sample: b.First - 100, Channel: 0, Unit: 1}})
		}
	}
	feed(100)
	d0 := decodeDetail(t, l.tick())
	b.First = 0 // reset
	feed(100)
	d1 := decodeDetail(t, l.tick())
	c0, c1 := d0.Channels[0], d1.Channels[0]
	if c1.Gen == c0.Gen || c1.Col0 > 3000/50 || len(c1.Min) == 0 || len(c1.Units) == 0 || c1.Samples[0] > 3000 {
		t.Errorf("after a reset: gen %d -> %d, columns from %d (%d), %d waveforms from sample %v: want a new generation on the new clock",
			c0.Gen, c1.Gen, c1.Col0, len(c1.Min), len(c1.Units), c1.Samples)
	}
}

// TestLiveSelection checks the browsers' selections: refused when out of
// range, repeated or too many; the sorter watches their union, most
// recent first, up to MaxWatch, with the default channel when there is
// room; a browser that leaves is forgotten.
func TestLiveSelection(t *testing.T) {
	_, l, tr := newLiveRig(t, LiveConfig{MaxWatch: 3, MaxSelect: 2})
	for _, bad := range []struct {
		chans []int
		want  string
	}{
		{[]int{8}, "channel 8: want 0 to 7"},
		{[]int{-1}, "channel -1"},
		{[]int{2, 2}, "channel 2 selected twice"},
		{[]int{1, 2, 3}, "3 channels selected: at most 2"},
	} {
		if err := l.Select(1, bad.chans); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Select(%v): %v, want an error with %q", bad.chans, err, bad.want)
		}
	}
	tr.advance(30000)
	l.Feed(&device.Block{First: 29970, Rate: 30000, Channels: 8, Samples: make([]int16, 8*30)}, nil)
	watched := func() []int {
		t.Helper()
		l.tick()
		w, _ := l.Watched()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if !slices.Equal(w, tr.watched) {
			t.Fatalf("view watches %v, sorter %v", w, tr.watched)
		}
		return w
	}
	if w := watched(); !slices.Equal(w, []int{0}) {
		t.Errorf("no selection: watched %v, want the default [0]", w)
	}
	if err := l.Select(1, []int{5, 6}); err != nil {
		t.Fatal(err)
	}
	if w := watched(); !slices.Equal(w, []int{0, 5, 6}) {
		t.Errorf("one browser: watched %v, want [0 5 6]", w)
	}
	if err := l.Select(2, []int{7, 4}); err != nil {
		t.Fatal(err)
	}
	// The newer selection first, then what is left of room: 7, 4, 5.
	if w := watched(); !slices.Equal(w, []int{4, 5, 7}) {
		t.Errorf("two browsers, cap 3: watched %v, want [4 5 7]", w)
	}
	n := tr.watches
	watched()
	if tr.watches != n {
		t.Errorf("Watch called again without a change")
	}
	l.forget(2)
	if w := watched(); !slices.Equal(w, []int{0, 5, 6}) {
		t.Errorf("after browser 2 left: watched %v, want [0 5 6]", w)
	}
	if err := l.Select(1, nil); err != nil {
		t.Fatal(err)
	}
	if w := watched(); !slices.Equal(w, []int{0}) {
		t.Errorf("selection cleared: watched %v, want [0]", w)
	}
}

// TestLiveDefaultChannel: the default channel follows the busiest one in
// sorted spikes (not in unsorted crossings), and does not switch for a
// channel that fires about as much.
func TestLiveDefaultChannel(t *testing.T) {
	_, l, tr := newLiveRig(t, LiveConfig{})
	b := device.Block{First: 0, Rate: 30000, Channels: 8, Samples: make([]int16, 8*30)}
	feed := func(rates map[int]int) {
		for range 10 {
			b.First += 30
			tr.advance(b.End())
			var spikes []sort.Spike
			for ch, n := range rates {
				unit := int32(1)
				if n < 0 { // unsorted
					n, unit = -n, 0
				}
				for range n {
					spikes = append(spikes, sort.Spike{Sample: b.First, Channel: int32(ch), Unit: unit})
				}
			}
			l.Feed(&b, spikes)
		}
		l.tick()
	}
	for range 5 {
		feed(map[int]int{3: 5, 6: 1, 7: -50})
	}
	if _, def := l.Watched(); def != 3 {
		t.Fatalf("default channel %d, want the busiest in sorted spikes, 3", def)
	}
	for range 5 {
		feed(map[int]int{3: 5, 6: 6})
	}
	if _, def := l.Watched(); def != 3 {
		t.Errorf("default channel switched to %d for a channel firing about as much", def)
	}
}

// TestRailScan: a channel at the rails is reported saturated until a
// second after it leaves them; a constant channel is reported flat once
// it has been constant for a quarter second, and no longer once it moves.
func TestRailScan(t *testing.T) {
	const C, n = 64, 30
	r := newRailScan(C, 16)
	rng := rand.New(rand.NewPCG(1, 2))
	b := device.Block{First: 0, Rate: 30000, Channels: C, Samples: make([]int16, C*n)}
	fill := func(satCh, flatCh int) {
		for i := range n {
			for c := range C {
				x := int16(rng.IntN(200) - 100)
				switch c {
				case satCh:
					if i%3 == 0 {
						x = 32767
					}
				case flatCh:
					x = -1234
				}
				b.Samples[i*C+c] = x
			}
		}
		b.First += n
		r.scan(&b)
	}
	for range 1000 { // 1 s
		fill(9, 40)
	}
	sat, flat := r.flags(b.End(), 30000, 7500, nil, nil)
	if !slices.Equal(sat, []int32{9}) || !slices.Equal(flat, []int32{40}) {
		t.Errorf("saturated %v, flat %v: want [9], [40]", sat, flat)
	}
	for range 600 { // 0.6 s: channel 9 back, 40 moving
		fill(-1, -1)
	}
	sat, flat = r.flags(b.End(), 30000, 7500, nil, nil)
	if !slices.Equal(sat, []int32{9}) || len(flat) != 0 {
		t.Errorf("0.6 s later: saturated %v (want [9], within the last second), flat %v (want none)", sat, flat)
	}
	for range 500 {
		fill(-1, -1)
	}
	if sat, _ = r.flags(b.End(), 30000, 7500, nil, nil); len(sat) != 0 {
		t.Errorf("1.1 s later: saturated %v, want none", sat)
	}
	if a := testing.AllocsPerRun(100, func() { fill(-1, -1) }); a != 0 {
		t.Errorf("scan allocates %v times per block", a)
	}
}

// TestLiveFeedAllocs: the hot-path call does not allocate in steady state.
func TestLiveFeedAllocs(t *testing.T) {
	_, l, tr := newLiveRig(t, LiveConfig{})
	b := device.Block{First: 0, Rate: 30000, Channels: 8, Samples: make([]int16, 8*30)}
	spikes := []sort.Spike{{Sample: 10, Channel: 0, Unit: 1}, {Sample: 12, Channel: 4, Unit: 2}}
	l.tick()
	a := testing.AllocsPerRun(1000, func() {
		b.First += 30
		tr.advance(b.End())
		l.Feed(&b, spikes)
	})
	if a != 0 {
		t.Errorf("Feed allocates %v times per block", a)
	}
}

// TestProbeFlags: the probe markers from status and spikes: silent
// channels once a window has passed, quiet and noisy ones by their noise
// against the median, and, with a Live, saturated and flat ones.
func TestProbeFlags(t *testing.T) {
	v, l, tr := newLiveRig(t, LiveConfig{})
	rate := 30000.0
	win := uint64(v.cfg.Window.Seconds() * rate)
	// Channels 0-5 fire; 6 and 7 never do.
	for s := uint64(1000); s < 1000+win+60000; s += 3000 {
		m := &schema.SpikeBatch{Header: schema.Header{Sample: s, Rate: rate}, End: s + 3000}
		for c := range int32(6) {
			m.Spikes = append(m.Spikes, sort.Spike{Sample: s + uint64(c), Channel: c, Unit: 1})
		}
		v.AddSpikes(m)
	}
	// Channel 7's raw samples sit at the rails.
	b := device.Block{Rate: rate, Channels: 8, Samples: make([]int16, 8*30)}
	for i := range 30 {
		for c := range 8 {
			b.Samples[i*8+c] = int16((i*7+c*3)%50 - 25)
		}
		b.Samples[i*8+7] = -32768
	}
	for range 10 {
		b.First += 30
		tr.advance(b.End())
		l.Feed(&b, nil)
	}
	v.AddStatus(&schema.Status{Header: schema.Header{Sample: 1000 + win + 60000, Rate: rate},
		NoiseUV: []float32{8, 9, 0.2, 7, 80, 8.5, 9, 8}, RateHz: make([]float32, 8)})
	v.step(time.Now(), true, false)
	pr := v.hub.probe
	if pr == nil {
		t.Fatal("no probe in the frame")
	}
	if pr.Channels != 8 || !slices.Equal(pr.Silent, []int32{6, 7}) || !slices.Equal(pr.Quiet, []int32{2}) ||
		!slices.Equal(pr.Noisy, []int32{4}) || !slices.Equal(pr.Saturated, []int32{7}) || !pr.RawChecked || float64(pr.MedianUV) != 8.5 {
		t.Errorf("probe %+v: want 8 channels, silent [6 7], quiet [2], noisy [4], saturated [7], raw checked, median 8.5", *pr)
	}
}

// TestSelectEndpoint checks POST /select: the browser's id from hello,
// clear errors for what is wrong, and 404 from a view without a Live.
func TestSelectEndpoint(t *testing.T) {
	v, l, _ := newLiveRig(t, LiveConfig{})
	hs := httptest.NewServer(v)
	defer hs.Close()
	c, _, err := v.hub.join()
	if err != nil {
		t.Fatal(err)
	}
	defer v.hub.leave(c)
	post := func(form url.Values) (int, string) {
		resp, err := http.PostForm(hs.URL+"/select", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, sb.String()
	}
	id := itoa(c.id)
	for _, tc := range []struct {
		form url.Values
		code int
		want string
	}{
		{url.Values{"client": {id}, "ch": {"3,5"}}, 200, `"selected":[3,5]`},
		{url.Values{"client": {"x"}, "ch": {"3"}}, 400, `client "x"`},
		{url.Values{"client": {"999"}, "ch": {"3"}}, 409, "client 999 is not connected"},
		{url.Values{"client": {id}, "ch": {"3,a"}}, 400, `"a" is not a channel number`},
		{url.Values{"client": {id}, "ch": {"30"}}, 400, "channel 30: want 0 to 7"},
	} {
		code, body := post(tc.form)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST /select %v: %d %q, want %d with %q", tc.form, code, body, tc.code, tc.want)
		}
	}
	if sel := l.sel[c.id]; !slices.Equal(sel.chans, []int{3, 5}) {
		t.Errorf("selection %v, want [3 5]", sel.chans)
	}
	if resp, err := http.Get(hs.URL + "/select"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /select: %v %v, want 405", resp.StatusCode, err)
	}
	v.hub.leave(c)
	if _, ok := l.sel[c.id]; ok {
		t.Errorf("selection kept after the browser left")
	}

	plain, err := New(Config{Rig: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	ps := httptest.NewServer(plain)
	defer ps.Close()
	resp, err := http.PostForm(ps.URL+"/select", url.Values{"client": {"1"}, "ch": {"1"}})
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /select without a Live: %v %v, want 404", resp.StatusCode, err)
	}
}

func itoa(x uint64) string { b, _ := json.Marshal(x); return string(b) }

// BenchmarkLiveFeed is the hot-path cost per 1 ms block of a 1,024-channel
// probe firing 10 spikes/s per channel, with 8 channels watched.
func BenchmarkLiveFeed(b *testing.B) {
	v, err := New(Config{Rig: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	tr := &rampTracer{n: 45, pre: 15}
	l, err := v.AttachLive(tr, LiveConfig{Channels: 1024, Rate: 30000})
	if err != nil {
		b.Fatal(err)
	}
	for c := range 8 {
		l.Select(uint64(c), []int{c * 100})
	}
	l.tick()
	rng := rand.New(rand.NewPCG(3, 4))
	blk := device.Block{Rate: 30000, Channels: 1024, Samples: make([]int16, 1024*30)}
	for i := range blk.Samples {
		blk.Samples[i] = int16(rng.IntN(400) - 200)
	}
	spikes := make([]sort.Spike, 10)
	for i := range spikes {
		spikes[i] = sort.Spike{Sample: uint64(i), Channel: int32(rng.IntN(1024)), Unit: 1}
	}
	spikes[0].Channel = 100 // one on a watched channel
	b.ResetTimer()
	for i := range b.N {
		blk.First = uint64(i) * 30
		l.Feed(&blk, spikes)
		if i%100 == 99 {
			b.StopTimer()
			l.tick() // drain, as the view does 10 times a second
			b.StartTimer()
		}
	}
}

// BenchmarkLiveTick is one detail update (10 a second) of a 1,024-channel
// probe with 8 channels watched, after 100 ms of 1 ms blocks with 10
// spikes/s per channel: reading the traces, columns, waveforms, JSON.
func BenchmarkLiveTick(b *testing.B) {
	v, err := New(Config{Rig: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	tr := &rampTracer{n: 45, pre: 15}
	l, err := v.AttachLive(tr, LiveConfig{Channels: 1024, Rate: 30000})
	if err != nil {
		b.Fatal(err)
	}
	for c := range 8 {
		l.Select(uint64(c), []int{c * 100})
	}
	l.tick()
	rng := rand.New(rand.NewPCG(3, 4))
	blk := device.Block{Rate: 30000, Channels: 1024, Samples: make([]int16, 1024*30)}
	spikes := make([]sort.Spike, 10)
	var bytes int
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for k := range 100 {
			blk.First = uint64(i*100+k+10) * 30
			tr.advance(blk.End())
			for j := range spikes {
				spikes[j] = sort.Spike{Sample: blk.First - 60, Channel: int32(rng.IntN(1024)), Unit: 1}
			}
			spikes[0].Channel = int32(100 * rng.IntN(8)) // some on watched channels
			l.Feed(&blk, spikes)
		}
		b.StartTimer()
		bytes += len(l.tick())
	}
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/tick")
}

// POST /select from another site is refused (403): the page's own origin,
// or no Origin at all (curl), passes.
func TestSelectOrigin(t *testing.T) {
	v, _, _ := newLiveRig(t, LiveConfig{})
	hs := httptest.NewServer(v)
	defer hs.Close()
	c, _, err := v.hub.join()
	if err != nil {
		t.Fatal(err)
	}
	defer v.hub.leave(c)
	for _, tc := range []struct {
		origin, fetchSite string
		code              int
		fwd               string
	}{
		{"https://lab.example", "same-origin", 200, "lab.example"}, // behind a reverse proxy
		{"", "", 200, ""},
		{hs.URL, "same-origin", 200, ""},
		{"http://evil.example", "", 403, ""},
		{"null", "", 403, ""},
		{strings.Replace(hs.URL, "127.0.0.1", "localhost", 1), "", 403, ""},
		{"", "cross-site", 403, ""},
		{"https://lab.example", "", 403, ""},
		{"https://lab.example", "", 403, "other.example"},
	} {
		req, _ := http.NewRequest("POST", hs.URL+"/select", strings.NewReader(url.Values{"client": {itoa(c.id)}, "ch": {"1"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.fetchSite != "" {
			req.Header.Set("Sec-Fetch-Site", tc.fetchSite)
		}
		if tc.fwd != "" {
			req.Header.Set("X-Forwarded-Host", tc.fwd)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.code == 403 && !strings.Contains(string(body), "refused a request from")) {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: %d %q, want %d", tc.origin, tc.fetchSite, resp.StatusCode, body, tc.code)
		}
	}
}
