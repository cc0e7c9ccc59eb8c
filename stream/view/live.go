package view

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

// Tracer is what the live detail reads from the sorter; *sort.Sorter
// implements it.
type Tracer interface {
	// Watch sets the channels whose band-passed signal is kept.
	Watch(channels []int) error
	// Trace appends the last n band-passed samples (µV) of a watched
	// channel to dst, and returns the device index one past the last.
	Trace(ch, n int, dst []float32) (out []float32, end uint64, ok bool)
	// Noise appends every channel's noise σ in µV to dst.
	Noise(dst []float32) []float32
	// SnippetLen returns the samples of a waveform and those before its
	// extremum.
	SnippetLen() (n, pre int)
}

// Defaults for LiveConfig's zero fields.
const (
	DefaultTraceSpan    = time.Second
	DefaultTraceColumns = 600
	DefaultWaveforms    = 300
	DefaultMaxWatch     = 8
	DefaultMaxSelect    = 4
	DefaultDetailRate   = 10
	DefaultScanChannels = 16
	// maxPending bounds the spikes of watched channels waiting for the
	// next detail tick; beyond it they are counted and left out.
	maxPending = 8192
	// maxNewWaveforms bounds the waveforms of one channel sent per tick.
	maxNewWaveforms = 100
)

// LiveConfig configures the in-process detail of a View (AttachLive).
type LiveConfig struct {
	// Channels and Rate describe the stream. Required.
	Channels int
	Rate     float64
	// Sign is the sorter's detection polarity: the threshold line is
	// drawn below zero (Negative), above (Positive) or both.
	Sign sort.Sign
	// Threshold returns the detection threshold in noise σ now (it may
	// change while running); nil draws no threshold line.
	Threshold func() float64
	// R2 returns the live decoder's R² per output (named Outputs), over
	// the last R2Window of device time, and whether a decoder runs; nil
	// when there is none.
	R2       func() ([]float64, bool)
	Outputs  []string
	R2Window time.Duration
	// TraceSpan is the device time the trace panel shows; default 1 s, at
	// most sort.WatchLen samples.
	TraceSpan time.Duration
	// TraceColumns is the number of min/max columns the trace is
	// decimated to server-side; default 600.
	TraceColumns int
	// Waveforms is the number of recent waveforms kept and drawn per
	// watched channel; default 300.
	Waveforms int
	// MaxWatch caps the channels watched at once, the union of every
	// browser's selection and the default channel; default 8.
	MaxWatch int
	// MaxSelect caps one browser's selection; default 4.
	MaxSelect int
	// DetailRate is the number of detail updates per second; default 10.
	DetailRate float64
	// ScanChannels is the number of channels whose raw samples are
	// checked for saturation and flat lines in each block; default 16.
	ScanChannels int
}

func (c LiveConfig) withDefaults() LiveConfig {
	orDefault(&c.TraceSpan, DefaultTraceSpan)
	orDefault(&c.TraceColumns, DefaultTraceColumns)
	orDefault(&c.Waveforms, DefaultWaveforms)
	orDefault(&c.MaxWatch, DefaultMaxWatch)
	orDefault(&c.MaxSelect, DefaultMaxSelect)
	orDefault(&c.DetailRate, DefaultDetailRate)
	orDefault(&c.ScanChannels, DefaultScanChannels)
	return c
}

// Validate reports the first impossible setting, naming it.
func (c LiveConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Channels < 1:
		return fmt.Errorf("view: live: %d channels: want >= 1", c.Channels)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("view: live: sample rate %g: want > 0", c.Rate)
	case c.TraceSpan < 10*time.Millisecond || c.TraceSpan.Seconds()*c.Rate > sort.WatchLen:
		return fmt.Errorf("view: trace span %v: want 10ms to %v (%d samples at %g Hz)", c.TraceSpan,
			time.Duration(float64(sort.WatchLen)/c.Rate*float64(time.Second)).Truncate(time.Millisecond), sort.WatchLen, c.Rate)
	case c.TraceColumns < 10 || c.TraceColumns > 4000:
		return fmt.Errorf("view: trace columns %d: want 10 to 4000", c.TraceColumns)
	case c.Waveforms < 1 || c.Waveforms > 5000:
		return fmt.Errorf("view: waveforms %d: want 1 to 5000", c.Waveforms)
	case c.MaxWatch < 1 || c.MaxWatch > 64:
		return fmt.Errorf("view: max watched channels %d: want 1 to 64", c.MaxWatch)
	case c.MaxSelect < 1 || c.MaxSelect > c.MaxWatch:
		return fmt.Errorf("view: max selected channels %d: want 1 to the max watched (%d)", c.MaxSelect, c.MaxWatch)
	case !(c.DetailRate >= 1 && c.DetailRate <= 60):
		return fmt.Errorf("view: detail rate %g: want 1 to 60 per second", c.DetailRate)
	case c.ScanChannels < 1:
		return fmt.Errorf("view: scan channels %d: want >= 1", c.ScanChannels)
	case c.R2 != nil && len(c.Outputs) == 0:
		return fmt.Errorf("view: live: R2 given without Outputs")
	}
	return nil
}

// LiveJSON describes the in-process detail to the page (in Hello).
type LiveJSON struct {
	Channels         int      `json:"channels"`
	SnippetLen       int      `json:"snippet_n"` // samples per waveform
	Pre              int      `json:"pre"`       // samples before the extremum
	SamplesPerColumn int      `json:"spp"`       // trace column k covers device samples [k·spp, (k+1)·spp)
	Columns          int      `json:"columns"`   // columns in the trace span
	TraceS           float64  `json:"trace_s"`
	Waveforms        int      `json:"waveforms"`
	MaxSelect        int      `json:"max_select"`
	MaxWatch         int      `json:"max_watch"`
	DetailRate       float64  `json:"detail_rate"`
	Sign             string   `json:"sign"`
	Outputs          []string `json:"outputs,omitempty"`
	R2WindowS        float64  `json:"r2_window_s,omitempty"`
}

// DetailJSON is the data of a "detail" event: the band-passed trace and
// the recent waveforms of the watched channels. Updates carry what is new
// since the previous one; Full marks a snapshot of everything kept (sent
// to a browser when it connects), which replaces what the browser had.
type DetailJSON struct {
	Seq              uint64        `json:"seq"`
	Full             bool          `json:"full,omitempty"`
	End              uint64        `json:"end"`       // device index one past the newest sample read
	Threshold        Num           `json:"threshold"` // detection threshold, noise σ
	Default          int           `json:"default"`   // the channel shown to browsers that selected none
	Watched          []int         `json:"watched"`   // channels watched now, ascending
	Channels         []ChannelJSON `json:"ch"`
	R2               []Num         `json:"r2,omitempty"` // live decoder R² per output (LiveJSON.Outputs)
	WaveformsDropped uint64        `json:"waveforms_dropped"`
}

// ChannelJSON is one watched channel of a DetailJSON.
type ChannelJSON struct {
	Channel int    `json:"ch"`
	Gen     uint64 `json:"gen"`      // changes when the channel is watched anew: columns and ids start over
	SigmaUV Num    `json:"sigma_uv"` // noise σ, µV: the threshold line is at ±Threshold·SigmaUV
	// Min[i] and Max[i] are the extremes (µV) of trace column Col0+i;
	// null for a column whose samples were not read.
	Col0 uint64 `json:"col0"`
	Min  []Num  `json:"min"`
	Max  []Num  `json:"max"`
	// Waveform i (id Wave0+i) is W[i·n:(i+1)·n] (µV), of unit Units[i],
	// with its extremum at device sample Samples[i].
	Wave0   uint64   `json:"wave0"`
	Units   []int32  `json:"units"`
	Samples []uint64 `json:"samples"`
	W       []Num    `json:"w"`
}

type pendSpike struct {
	sample uint64
	ch     int32
	unit   int32
}

// chanState is what is kept for one watched channel.
type chanState struct {
	ch       int
	gen      uint64
	from     uint64    // device index from which its trace is real
	colStart uint64    // first column computed
	colNext  uint64    // next column to compute
	colMin   []float32 // ring of Columns, indexed by column % Columns
	colMax   []float32
	wave     []float32 // ring of Waveforms × n
	waveUnit []int32
	waveAt   []uint64
	waveNext uint64 // id of the next waveform
	carry    []pendSpike
	// this tick's news
	newCol0  uint64
	newWave0 uint64
}

type selection struct {
	chans []int
	seq   uint64
}

// Live feeds a View with what only the pipeline has: the band-passed
// trace and waveforms of a few selected channels (through a Tracer),
// saturation and flat-line checks of the raw samples, and the decoder's
// R². Create it with View.AttachLive; the pipeline calls Feed for every
// block.
type Live struct {
	cfg    LiveConfig
	tr     Tracer
	n, pre int
	spp    uint64
	span   uint64 // samples in the trace span
	rails  *railScan

	// written by Feed
	end    atomic.Uint64
	counts []atomic.Uint32
	watch  atomic.Pointer[[]bool]

	pmu      sync.Mutex
	pend     []pendSpike
	pendDrop atomic.Uint64

	mu      sync.Mutex // guards everything below
	spare   []pendSpike
	sel     map[uint64]selection
	selSeq  uint64
	def     int
	score   []float64
	watched []int
	chans   map[int]*chanState
	seq     uint64
	gen     uint64
	buf     []float32
	noise   []float32
	dropped uint64
	readEnd uint64 // newest device index read from the sorter
}

// AttachLive gives v an in-process feed of the pipeline's detail; call it
// before Run. The page then shows the probe's saturated and flat channels,
// the trace and waveforms of the selected channels and the decoder's R².
func (v *View) AttachLive(tr Tracer, cfg LiveConfig) (*Live, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n, pre := tr.SnippetLen()
	span := uint64(cfg.TraceSpan.Seconds() * cfg.Rate)
	spp := max(1, span/uint64(cfg.TraceColumns))
	l := &Live{
		cfg: cfg, tr: tr, n: n, pre: pre, spp: spp, span: spp * uint64(cfg.TraceColumns),
		rails:  newRailScan(cfg.Channels, cfg.ScanChannels),
		counts: make([]atomic.Uint32, cfg.Channels),
		pend:   make([]pendSpike, 0, maxPending),
		spare:  make([]pendSpike, 0, maxPending),
		sel:    map[uint64]selection{},
		score:  make([]float64, cfg.Channels),
		chans:  map[int]*chanState{},
	}
	l.mu.Lock()
	err := l.applyWatchLocked()
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	v.live = l
	v.hub.setLive(l)
	return l, nil
}

// info describes l to the page.
func (l *Live) info() *LiveJSON {
	j := &LiveJSON{Channels: l.cfg.Channels, SnippetLen: l.n, Pre: l.pre, SamplesPerColumn: int(l.spp), Columns: l.cfg.TraceColumns,
		TraceS: float64(l.span) / l.cfg.Rate, Waveforms: l.cfg.Waveforms, MaxSelect: l.cfg.MaxSelect, MaxWatch: l.cfg.MaxWatch,
		DetailRate: l.cfg.DetailRate, Sign: l.cfg.Sign.String()}
	if l.cfg.R2 != nil {
		j.Outputs = l.cfg.Outputs
		j.R2WindowS = l.cfg.R2Window.Seconds()
	}
	return j
}

// Feed takes one block and the spikes the sorter completed with it. It is
// called on the pipeline's hot path for every block: it scans a stripe of
// channels for rails and flat lines, counts the spikes per channel and
// queues those of watched channels, without allocating or waiting for
// anything but a mutex held for an append.
func (l *Live) Feed(b *device.Block, spikes []sort.Spike) {
	l.rails.scan(b)
	l.end.Store(b.End())
	w := l.watch.Load()
	locked := false
	for i := range spikes {
		s := &spikes[i]
		c := int(s.Channel)
		if uint(c) >= uint(len(l.counts)) {
			continue
		}
		if s.Unit > 0 {
			l.counts[c].Add(1) // the default channel is the busiest in sorted spikes
		}
		if w == nil || !(*w)[c] {
			continue
		}
		if !locked {
			l.pmu.Lock()
			locked = true
		}
		if len(l.pend) < cap(l.pend) {
			l.pend = append(l.pend, pendSpike{s.Sample, s.Channel, s.Unit})
		} else {
			l.pendDrop.Add(1)
		}
	}
	if locked {
		l.pmu.Unlock()
	}
}

// Select sets the channels a browser (its id from Hello.Client) wants to
// see; none means the default channel. A channel out of range, a
// repeated one or too many are an error naming them.
func (l *Live) Select(client uint64, chans []int) error {
	if len(chans) > l.cfg.MaxSelect {
		return fmt.Errorf("%d channels selected: at most %d", len(chans), l.cfg.MaxSelect)
	}
	for i, c := range chans {
		if c < 0 || c >= l.cfg.Channels {
			return fmt.Errorf("channel %d: want 0 to %d", c, l.cfg.Channels-1)
		}
		if slices.Contains(chans[:i], c) {
			return fmt.Errorf("channel %d selected twice", c)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(chans) == 0 {
		delete(l.sel, client)
		return nil
	}
	l.selSeq++
	l.sel[client] = selection{chans: slices.Clone(chans), seq: l.selSeq}
	return nil
}

// forget drops a browser's selection (it disconnected).
func (l *Live) forget(client uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.sel, client)
}

// Watched returns the channels watched now and the default channel.
func (l *Live) Watched() (watched []int, def int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.watched), l.def
}

// union returns the channels to watch: the browsers' selections, most
// recent first, then the default channel, at most MaxWatch, ascending.
func (l *Live) unionLocked() []int {
	sels := make([]selection, 0, len(l.sel))
	for _, s := range l.sel {
		sels = append(sels, s)
	}
	slices.SortFunc(sels, func(a, b selection) int { return int(b.seq) - int(a.seq) })
	var u []int
	add := func(c int) {
		if len(u) < l.cfg.MaxWatch && !slices.Contains(u, c) {
			u = append(u, c)
		}
	}
	for _, s := range sels {
		for _, c := range s.chans {
			add(c)
		}
	}
	add(l.def)
	slices.Sort(u)
	return u
}

// applyWatchLocked makes the sorter watch the union of the selections.
func (l *Live) applyWatchLocked() error {
	u := l.unionLocked()
	if slices.Equal(u, l.watched) {
		return nil
	}
	if err := l.tr.Watch(u); err != nil {
		return err
	}
	mask := make([]bool, l.cfg.Channels)
	for _, c := range u {
		mask[c] = true
		if l.chans[c] != nil {
			continue
		}
		// The sorter keeps the channel's signal from now on: its trace
		// is real from the device index Trace reports now.
		var end uint64
		l.buf, end, _ = l.tr.Trace(c, 1, l.buf[:0])
		l.gen++
		st := &chanState{ch: c, gen: l.gen, from: end, colStart: (end + l.spp - 1) / l.spp,
			colMin: make([]float32, l.cfg.TraceColumns), colMax: make([]float32, l.cfg.TraceColumns),
			wave: make([]float32, l.cfg.Waveforms*l.n), waveUnit: make([]int32, l.cfg.Waveforms), waveAt: make([]uint64, l.cfg.Waveforms)}
		st.colNext = st.colStart
		l.chans[c] = st
	}
	for c := range l.chans {
		if !mask[c] {
			delete(l.chans, c)
		}
	}
	l.watched = u
	l.watch.Store(&mask)
	return nil
}

// pickDefaultLocked follows the busiest channel in sorted spikes (unit >
// 0: a channel of artefacts and noise crossings is not worth showing
// first), decaying with a time constant of about ten seconds, and
// switches only when another channel fires clearly more, so the default
// view does not flicker. Until units are learned it is channel 0.
func (l *Live) pickDefaultLocked() {
	decay := math.Exp(-1 / (10 * l.cfg.DetailRate))
	best := l.def
	for c := range l.counts {
		l.score[c] = l.score[c]*decay + float64(l.counts[c].Swap(0))
		if l.score[c] > l.score[best] {
			best = c
		}
	}
	if l.score[best] > 1.5*l.score[l.def]+1 {
		l.def = best
	}
}

// tick reads what the watched channels gained since the last tick and
// returns the "detail" event carrying it (nil before the first block).
func (l *Live) tick() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pickDefaultLocked()
	// Watch refuses only channels out of range, which Select refuses
	// first.
	_ = l.applyWatchLocked()
	l.pmu.Lock()
	pend := l.pend
	l.pend = l.spare[:0]
	l.pmu.Unlock()
	l.spare = pend
	l.dropped += l.pendDrop.Swap(0)
	end := l.end.Load()
	if end == 0 {
		return nil
	}
	l.noise = l.tr.Noise(l.noise[:0])
	l.readEnd = 0 // of this tick: the device counter may have gone back
	for _, c := range l.watched {
		l.update(l.chans[c], pend, end)
	}
	l.seq++
	return l.detailLocked(false).event()
}

// snapshot returns the "detail" event of everything kept, for a browser
// that just connected.
func (l *Live) snapshot() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.detailLocked(true).event()
}

// update reads the trace of st's channel since the last tick, turns it
// into min/max columns and cuts the waveforms of its new spikes.
func (l *Live) update(st *chanState, pend []pendSpike, end uint64) {
	from := st.colNext * l.spp
	spikes := st.carry
	st.carry = nil
	for _, s := range pend {
		if int(s.ch) == st.ch {
			spikes = append(spikes, s)
		}
	}
	for _, s := range spikes {
		if s.sample >= uint64(l.pre) {
			from = min(from, s.sample-uint64(l.pre))
		}
	}
	from = max(from, st.from)
	// Ask where the sorter is now (it may be well past the last block
	// fed when it catches up after a stall), then for a little more than
	// up to there: it may go on in between.
	if buf, e, ok := l.tr.Trace(st.ch, 1, l.buf[:0]); ok {
		l.buf = buf
		end = max(end, e)
	}
	want := uint64(sort.WatchLen)
	if extra := uint64(l.cfg.Rate / 20); end+extra > from {
		want = min(want, end+extra-from)
	}
	buf, e, ok := l.tr.Trace(st.ch, int(want), l.buf[:0])
	l.buf = buf
	if !ok {
		return
	}
	first := e - min(e, uint64(len(buf)))
	l.readEnd = max(l.readEnd, e)
	if e+l.spp < st.colNext*l.spp {
		// The device counter went back (a reset): start the channel
		// over on the new clock, as a new generation.
		l.gen++
		st.gen, st.from = l.gen, first
		st.colStart = (first + l.spp - 1) / l.spp
		st.colNext, st.waveNext, st.carry = st.colStart, 0, nil
	}
	// Columns: only the last span is worth computing.
	if e > l.span {
		st.colNext = max(st.colNext, (e-l.span)/l.spp)
	}
	st.newCol0 = st.colNext
	C := uint64(l.cfg.TraceColumns)
	for ; (st.colNext+1)*l.spp <= e; st.colNext++ {
		a := st.colNext * l.spp
		lo, hi := float32(math.NaN()), float32(math.NaN())
		if a >= first {
			lo, hi = minMax(buf[a-first : a-first+l.spp])
			if lo == 0 && hi == 0 {
				// The sorter reports samples before its current
				// segment (before a gap) as zeros: no signal.
				lo, hi = float32(math.NaN()), float32(math.NaN())
			}
		}
		st.colMin[st.colNext%C], st.colMax[st.colNext%C] = lo, hi
	}
	if st.colNext-st.colStart > C {
		st.colStart = st.colNext - C
	}
	// Waveforms.
	st.newWave0 = st.waveNext
	W, n := uint64(l.cfg.Waveforms), uint64(l.n)
	for _, s := range spikes {
		if s.sample < uint64(l.pre) {
			continue
		}
		a := s.sample - uint64(l.pre)
		switch {
		case a < max(first, st.from):
			l.dropped++ // no longer (or not yet) in the sorter's trace
		case a > e+l.span:
			l.dropped++ // from another clock (before a reset)
		case a > e || e-a < n:
			if len(st.carry) < maxPending {
				st.carry = append(st.carry, s) // not all read yet
			} else {
				l.dropped++
			}
		case slices.Contains(buf[a-first:a-first+n], 0):
			// An exact zero is a sample the sorter no longer has (before
			// a gap, its trace reads zero): not a waveform to show.
			l.dropped++
		default:
			slot := st.waveNext % W
			copy(st.wave[slot*n:(slot+1)*n], buf[a-first:a-first+n])
			st.waveUnit[slot] = s.unit
			st.waveAt[slot] = s.sample
			st.waveNext++
		}
	}
}

// minMax returns the extremes of x (not empty).
func minMax(x []float32) (lo, hi float32) {
	lo, hi = x[0], x[0]
	for _, v := range x[1:] {
		lo = min(lo, v)
		hi = max(hi, v)
	}
	return lo, hi
}

// detailLocked renders the news of the last tick, or everything kept.
func (l *Live) detailLocked(full bool) *DetailJSON {
	d := &DetailJSON{Seq: l.seq, Full: full, End: max(l.end.Load(), l.readEnd), Default: l.def, Watched: slices.Clone(l.watched),
		WaveformsDropped: l.dropped, Channels: make([]ChannelJSON, 0, len(l.watched))}
	if d.Watched == nil {
		d.Watched = []int{}
	}
	if l.cfg.Threshold != nil {
		d.Threshold = Num(l.cfg.Threshold())
	}
	if l.cfg.R2 != nil {
		if r2, ok := l.cfg.R2(); ok {
			d.R2 = make([]Num, len(r2))
			for i, x := range r2 {
				d.R2[i] = Num(x)
			}
		}
	}
	C, W, n := uint64(l.cfg.TraceColumns), uint64(l.cfg.Waveforms), uint64(l.n)
	for _, c := range l.watched {
		st := l.chans[c]
		cj := ChannelJSON{Channel: c, Gen: st.gen, SigmaUV: Num(math.NaN())}
		if c < len(l.noise) {
			cj.SigmaUV = Num(l.noise[c])
		}
		c0, w0 := st.newCol0, st.newWave0
		if full {
			c0 = st.colStart
			w0 = st.waveNext - min(st.waveNext, W)
		}
		c0 = max(c0, st.colNext-min(st.colNext, C))
		w0 = max(w0, st.waveNext-min(st.waveNext, W))
		if !full {
			w0 = max(w0, st.waveNext-min(st.waveNext, maxNewWaveforms))
		}
		cj.Col0 = c0
		cj.Min = make([]Num, 0, st.colNext-c0)
		cj.Max = make([]Num, 0, st.colNext-c0)
		for k := c0; k < st.colNext; k++ {
			cj.Min = append(cj.Min, round1(st.colMin[k%C]))
			cj.Max = append(cj.Max, round1(st.colMax[k%C]))
		}
		cj.Wave0 = w0
		k := st.waveNext - w0
		cj.Units = make([]int32, 0, k)
		cj.Samples = make([]uint64, 0, k)
		cj.W = make([]Num, 0, k*n)
		for id := w0; id < st.waveNext; id++ {
			slot := id % W
			cj.Units = append(cj.Units, st.waveUnit[slot])
			cj.Samples = append(cj.Samples, st.waveAt[slot])
			for _, x := range st.wave[slot*n : (slot+1)*n] {
				cj.W = append(cj.W, round1(x))
			}
		}
		d.Channels = append(d.Channels, cj)
	}
	return d
}

// round1 rounds to 0.1 µV, far below any noise, which keeps the JSON
// short.
func round1(x float32) Num { return Num(math.Round(float64(x)*10) / 10) }

// rails returns the channels at a rail within the last second of device
// time and those flat for at least a quarter of a second.
func (l *Live) railFlags() (sat, flat []int32) {
	now := l.end.Load()
	return l.rails.flags(now, uint64(l.cfg.Rate), uint64(l.cfg.Rate/4), []int32{}, []int32{})
}

// event returns d as a "detail" Server-Sent Event. Numbers are written
// directly: through encoding/json (a MarshalJSON call per number, then
// the re-validation of its output) a detail cost several times more.
func (d *DetailJSON) event() []byte {
	n := 256
	for i := range d.Channels {
		c := &d.Channels[i]
		n += 160 + 8*(len(c.Min)+len(c.Max)+len(c.W)) + 12*len(c.Samples)
	}
	b := make([]byte, 0, n)
	b = append(b, "event: detail\ndata: {\"seq\":"...)
	b = strconv.AppendUint(b, d.Seq, 10)
	if d.Full {
		b = append(b, `,"full":true`...)
	}
	b = append(b, `,"end":`...)
	b = strconv.AppendUint(b, d.End, 10)
	b = append(b, `,"threshold":`...)
	b = appendNum(b, d.Threshold, 'g', 5)
	b = append(b, `,"default":`...)
	b = strconv.AppendInt(b, int64(d.Default), 10)
	b = append(b, `,"watched":[`...)
	for i, c := range d.Watched {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(c), 10)
	}
	b = append(b, `],"ch":[`...)
	for i := range d.Channels {
		c := &d.Channels[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ch":`...)
		b = strconv.AppendInt(b, int64(c.Channel), 10)
		b = append(b, `,"gen":`...)
		b = strconv.AppendUint(b, c.Gen, 10)
		b = append(b, `,"sigma_uv":`...)
		b = appendNum(b, c.SigmaUV, 'g', 5)
		b = append(b, `,"col0":`...)
		b = strconv.AppendUint(b, c.Col0, 10)
		b = append(b, `,"min":`...)
		b = appendNums(b, c.Min)
		b = append(b, `,"max":`...)
		b = appendNums(b, c.Max)
		b = append(b, `,"wave0":`...)
		b = strconv.AppendUint(b, c.Wave0, 10)
		b = append(b, `,"units":[`...)
		b = appendInts(b, c.Units)
		b = append(b, `],"samples":[`...)
		for j, x := range c.Samples {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, x, 10)
		}
		b = append(b, `],"w":`...)
		b = appendNums(b, c.W)
		b = append(b, '}')
	}
	b = append(b, ']')
	if d.R2 != nil {
		b = append(b, `,"r2":[`...)
		for i, x := range d.R2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNum(b, x, 'g', 5)
		}
		b = append(b, ']')
	}
	b = append(b, `,"waveforms_dropped":`...)
	b = strconv.AppendUint(b, d.WaveformsDropped, 10)
	return append(b, "}\n\n"...)
}

// appendNum appends x in format f with precision prec, null for NaN and
// infinities, without a trailing ".0".
func appendNum(b []byte, x Num, f byte, prec int) []byte {
	v := float64(x)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	n := len(b)
	b = strconv.AppendFloat(b, v, f, prec, 64)
	if f == 'f' && prec == 1 && len(b)-n >= 2 && b[len(b)-1] == '0' && b[len(b)-2] == '.' {
		b = b[:len(b)-2]
		if string(b[n:]) == "-0" {
			b = append(b[:n], '0')
		}
	}
	return b
}

// appendNums appends a JSON array of values rounded to 0.1 (round1).
func appendNums(b []byte, xs []Num) []byte {
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNum(b, x, 'f', 1)
	}
	return append(b, ']')
}
