package sort

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
)

// ErrFormat reports a Block whose channel count or sample rate differs
// from the ones the Sorter was made for.
var ErrFormat = errors.New("sort: block format differs from the sorter's")

// ErrClosed reports use of a closed Sorter.
var ErrClosed = errors.New("sort: sorter is closed")

// Sorter sorts spikes on every channel of a stream of Blocks in real time.
//
// Process filters each Block, detects threshold crossings, aligns and
// matches them to templates and returns the spikes it completed. Spikes
// leave in time order (by sample, then channel) about Lag() samples after
// they were recorded: the snippet after the extremum has to arrive first.
// Templates are learned beside the stream from the first LearnSeconds of
// spikes; until a channel has templates its spikes leave as unit 0.
//
// A Sorter is safe for use by one goroutine calling Process and Flush
// while others call Templates, Noise or Stats.
type Sorter struct {
	cfg      Config
	channels int
	rate     float64
	gain     float64

	pre, post, tail, align, dead int // in samples
	burst                        int // longest interval within a burst, samples
	d, dfull                     int // matched and full snippet lengths
	lag                          int // align + post + tail
	ringLen                      int
	mask                         uint64
	chunk                        int // most rows filtered per step

	noiseM      int // noise values kept per channel
	noiseStride int // rows between noise values
	noiseInit   int // noise values before the first estimate
	noiseAlpha  float32

	shards []*shard
	ref    []float32 // common reference, 3 values per row of the current chunk

	// g is the state of sorting with probe geometry (geo.go); nil
	// without: every channel alone.
	g    *geometry
	hold int // rows spikes are held back beyond the scan (geometry: events resolve slightly out of order)

	mu       sync.Mutex // held by Process/Flush; guards everything below
	tau      uint64     // rows written to the rings
	scan     uint64     // rows scanned for crossings
	started  bool
	expect   uint64 // device index expected next
	segTau   uint64 // tau at the start of the current segment
	segFirst uint64 // device index at segTau
	pending  []Spike
	pendTau  []uint64
	noiseOK  bool
	closed   bool
	stats    Stats

	// learning
	learnFrom, learnAt uint64 // collect snippets in [learnFrom, learnAt)
	collecting         bool
	learning           bool
	relearnAll         bool   // collect on every channel, not only those without templates
	relearnGap         uint64 // rows between the last two learning passes
	learnDone          chan []channelUnits
	learnJobs          []learnJob // snippets the running learning pass owns
	pass               *learnPass // the running live learning pass (nil: none, or inline)
	helpAt             uint64     // stream row from which that pass gets help (learnHelpAfter)
	passScan           uint64     // where the pass started, in rows and wall time
	passWall           time.Time
	nextUnit           int32

	// workers: run sets the phase and its arguments, then every shard
	// runs doPhase once (no closures, so no allocation per step), by
	// whichever goroutine claims it first: its worker, or the caller once
	// it has done its own. So a phase never waits for a worker the Go
	// scheduler has not started yet (a busy core: the background learner,
	// a decoder fit), which bounded the latency tail by the scheduler's
	// 10 ms time slice.
	phase     int
	in        []int16
	inGain    float32
	from, to  uint64
	scanFrom  uint64
	scanTo    uint64
	rows      int
	jobs      []chan struct{} // wake-ups, one buffered per worker
	epoch     atomic.Uint64   // phases started; publishes the phase's arguments
	claims    []atomic.Uint64 // per shard: the last epoch it was claimed for
	remaining atomic.Int64    // shards of the current phase not yet done
	finished  chan struct{}   // the worker that does a phase's last shard says so
}

// filterRows is the number of rows filtered before they are scanned
// (phaseFilterDetect): small enough that they stay in the core's cache.
const filterRows = 64

// epoch is the number of rows between updates of the detection
// thresholds from the tracked noise.
const epoch = 2048

const (
	phaseFilterDetect = iota
	phaseFilter
	phaseReference
	phaseDetect
	phaseDrain
)

// Stats counts what a Sorter has done. All counters only grow.
type Stats struct {
	Samples   uint64 // samples per channel processed
	Spikes    uint64 // spikes emitted
	Sorted    uint64 // spikes emitted with a unit id
	Gaps      uint64 // discontinuities (gaps or resets) handled
	Learned   uint64 // template learning passes completed
	Units     int    // current number of units
	Unmatched uint64 // spikes on channels with templates that matched none
}

// New returns a Sorter for channels channels at rate Hz; gain is the
// µV-per-count used when a Block does not carry one.
func New(cfg Config, channels int, rate, gain float64) (*Sorter, error) {
	cfg = cfg.withDefaults()
	if err := device.CheckChannels("", "channels", channels); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := device.CheckRate("", "sample rate", rate); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if math.IsNaN(gain) || math.IsInf(gain, 0) || gain < 0 {
		return nil, fmt.Errorf("%w: gain %v µV/count", ErrConfig, gain)
	}
	if err := cfg.validate(rate); err != nil {
		return nil, err
	}
	if cfg.Part.Total > 0 && cfg.Part.First+channels > cfg.Part.Total {
		return nil, fmt.Errorf("%w: Part: %d channels from %d do not fit in %d", ErrConfig, channels, cfg.Part.First, cfg.Part.Total)
	}
	if gain == 0 {
		gain = 1
	}
	high := math.Min(cfg.High, 0.45*rate)
	if high <= cfg.Low {
		return nil, fmt.Errorf("%w: band %v–%v Hz does not fit below Nyquist at %v Hz", ErrConfig, cfg.Low, cfg.High, rate)
	}
	secs, err := dsp.Butterworth(cfg.Order, cfg.Low, high, rate)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	s := &Sorter{cfg: cfg, channels: channels, rate: rate, gain: gain, nextUnit: 1}
	s.pre = max(1, ms(cfg.Pre, rate))
	s.post = max(2, ms(cfg.Post, rate))
	s.tail = ms(cfg.Tail, rate)
	s.align = ms(cfg.Align, rate)
	s.dead = max(1, ms(cfg.DeadTime, rate))
	s.burst = ms(burstGapMs, rate)
	s.d = s.pre + s.post + 1
	s.dfull = s.d + s.tail
	s.lag = s.align + s.post + s.tail
	if err := s.setupGeometry(); err != nil {
		return nil, err
	}
	if s.g != nil {
		// Phase B looks win rows either side of a crossing on the
		// neighbours, and a unit's trough on its main channel may lie win
		// rows from its trough on the event's channel: both must be
		// filtered, and spikes may come out 2·win rows out of order.
		s.lag += 2 * s.g.win
		s.hold = 2 * s.g.win
	}
	s.ringLen = 1
	for s.ringLen < 2*(s.lag+s.pre)+512 {
		s.ringLen *= 2
	}
	s.mask = uint64(s.ringLen - 1)
	s.chunk = s.ringLen - s.lag - s.pre - 2
	s.noiseM = 1024
	s.noiseStride = max(1, int(cfg.NoiseWindow*rate)/s.noiseM)
	s.noiseInit = s.noiseM / 4
	s.noiseAlpha = 1
	if cfg.NoiseTrack > 0 {
		s.noiseAlpha = float32(math.Min(1, cfg.NoiseWindow/cfg.NoiseTrack))
	}
	s.ref = make([]float32, 3*s.chunk)

	workers := min(cfg.Workers, channels)
	per := (channels + workers - 1) / workers
	for c0 := 0; c0 < channels; c0 += per {
		s.shards = append(s.shards, newShard(s, len(s.shards), c0, min(per, channels-c0), secs))
	}
	if s.g != nil {
		s.finishGeometry()
		if err := s.seedGeometry(cfg.Templates); err != nil {
			return nil, err
		}
	} else if err := s.seed(cfg.Templates); err != nil {
		return nil, err
	}
	s.jobs = make([]chan struct{}, len(s.shards))
	s.claims = make([]atomic.Uint64, len(s.shards))
	s.finished = make(chan struct{}, 1)
	for i := 1; i < len(s.shards); i++ {
		s.jobs[i] = make(chan struct{}, 1)
		go s.worker(i)
	}
	return s, nil
}

// seed installs templates given in the Config.
func (s *Sorter) seed(ts []Template) error {
	for i, t := range ts {
		if t.Channel < 0 || int(t.Channel) >= s.channels {
			return fmt.Errorf("%w: seed template %d (unit %d) on channel %d of %d", ErrConfig, i, t.Unit, t.Channel, s.channels)
		}
		if t.Pre != s.pre || len(t.Waveform) < s.d {
			return fmt.Errorf("%w: seed template %d (unit %d) has Pre %d and %d samples; this sorter needs Pre %d and at least %d",
				ErrConfig, i, t.Unit, t.Pre, len(t.Waveform), s.pre, s.d)
		}
		if t.Unit <= 0 {
			return fmt.Errorf("%w: seed template %d has unit id %d (want > 0)", ErrConfig, i, t.Unit)
		}
		sh := s.shardOf(int(t.Channel))
		w := make([]float32, s.dfull)
		copy(w, t.Waveform)
		u := newUnit(t.Unit, w, s.d)
		u.count = t.Count
		c := int(t.Channel) - sh.c0
		sh.units[c] = append(sh.units[c], u)
		s.nextUnit = max(s.nextUnit, t.Unit+1)
	}
	return nil
}

func (s *Sorter) shardOf(ch int) *shard {
	per := s.shards[0].n
	return s.shards[ch/per]
}

// Lag returns the number of samples between a spike's extremum and the
// moment it can leave the sorter (alignment window, snippet and tail;
// with geometry also the event window either side).
func (s *Sorter) Lag() int { return s.lag + s.hold }

// SnippetLen returns the samples in a snippet (Pre + 1 + Post) and Pre.
func (s *Sorter) SnippetLen() (n, pre int) { return s.d, s.pre }

// Channels returns the number of channels.
func (s *Sorter) Channels() int { return s.channels }

// Rate returns the sample rate in Hz.
func (s *Sorter) Rate() float64 { return s.rate }

// Config returns the configuration in use, defaults filled in.
func (s *Sorter) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cfg
	c.Templates = nil
	return c
}

// SetThreshold changes the detection threshold, in noise σ, from the next
// Block on: the control knob of a live session. Units already learned
// keep their templates; later learning passes use the new threshold.
func (s *Sorter) SetThreshold(sigma float64) error {
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return fmt.Errorf("%w: threshold %v σ (want > 0)", ErrConfig, sigma)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.cfg.TemplateThreshold *= sigma / s.cfg.Threshold
	s.cfg.Threshold = sigma
	for _, sh := range s.shards {
		sh.applyThreshold()
	}
	return nil
}

// Process sorts one Block and appends the spikes it completed to dst, in
// time order. A Block whose First is not the previous Block's End starts a
// new segment: detection is drained up to the old end, the filter restarts
// from the new first sample, and no signal is joined across the gap.
func (s *Sorter) Process(b device.Block, dst []Spike) ([]Spike, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dst, ErrClosed
	}
	if b.Channels != s.channels {
		return dst, fmt.Errorf("%w: block at sample %d has %d channels, sorter %d", ErrFormat, b.First, b.Channels, s.channels)
	}
	if b.Rate != 0 && math.Abs(b.Rate-s.rate) > 1e-6*s.rate {
		return dst, fmt.Errorf("%w: block at sample %d has rate %v Hz, sorter %v Hz", ErrFormat, b.First, b.Rate, s.rate)
	}
	if len(b.Samples)%b.Channels != 0 {
		return dst, fmt.Errorf("%w: block at sample %d has %d samples, not a multiple of %d channels", ErrFormat, b.First, len(b.Samples), b.Channels)
	}
	n := b.Len()
	if n == 0 {
		return dst, nil
	}
	gain := b.Gain
	if !(gain > 0) || math.IsInf(gain, 0) {
		gain = s.gain
	}
	s.installLearned(false)
	if !s.started || b.First != s.expect {
		if s.started {
			dst = s.drain(dst)
			s.stats.Gaps++
		}
		s.started = true
		s.segTau, s.segFirst = s.tau, b.First
		for _, sh := range s.shards {
			sh.settle(b.Samples[:s.channels], float32(gain))
		}
	}
	s.expect = b.End()
	for off := 0; off < n; {
		m := min(s.chunk, n-off)
		// Steps end where the scan reaches an epoch boundary, where noise
		// estimates take effect.
		if b := (s.scan/epoch+1)*epoch + uint64(s.lag); b > s.tau {
			m = int(min(uint64(m), b-s.tau))
		}
		if s.collecting && s.learnAt+uint64(s.lag) > s.tau {
			// End a step exactly where the learning window closes, so
			// results do not depend on block sizes.
			m = int(min(uint64(m), s.learnAt+uint64(s.lag)-s.tau))
		}
		off += m
		s.step(b.Samples[(off-m)*s.channels:off*s.channels], float32(gain))
		if s.scan%epoch == 0 && s.noiseOK {
			if s.g != nil {
				// Which units may have their largest trough where depends
				// on the noise, and tracking moves their troughs.
				s.buildCand()
			}
			for _, sh := range s.shards {
				sh.applySigma()
			}
		}
		dst = s.emit(dst, s.scan-min(s.scan, uint64(s.hold)))
		s.maybeLearn()
	}
	s.stats.Samples += uint64(n)
	return dst, nil
}

// step filters m rows into the rings and scans what became complete.
func (s *Sorter) step(in []int16, gain float32) {
	m := len(in) / s.channels
	s.in, s.inGain, s.rows = in, gain, m
	s.from = s.tau
	s.tau += uint64(m)
	s.to = s.tau
	s.scanFrom, s.scanTo = s.scan, s.scan
	if s.tau > uint64(s.lag) {
		s.scanTo = max(s.scan, s.tau-uint64(s.lag))
	}
	if s.cfg.Reference == RefNone {
		s.run(phaseFilterDetect)
	} else {
		s.run(phaseFilter)
		s.run(phaseReference)
		s.run(phaseDetect)
	}
	if s.g != nil {
		s.resolve(s.scanTo)
	}
	s.scan = s.scanTo
	s.in = nil
	s.noiseCheck(s.from, s.tau)
}

// doPhase runs the current phase on one shard.
func (s *Sorter) doPhase(sh *shard) {
	switch s.phase {
	case phaseFilterDetect:
		// Filter and scan in pieces of filterRows rows, so the rows a
		// scan reads are still in cache from being filtered. Identical to
		// filtering all rows and then scanning: every scanned row's
		// snippet (up to Lag() rows ahead) is filtered before the scan
		// reaches it, and each new row is sampled for the noise before
		// any template is subtracted from it.
		C := s.channels
		scan := s.scanFrom
		for a := s.from; a < s.to; {
			b := min(a+filterRows, s.to)
			sh.filter(s.in[int(a-s.from)*C:int(b-s.from)*C], s.inGain, a)
			end := s.scanTo
			if b < s.to {
				end = scan
				if b > uint64(s.lag) {
					end = min(s.scanTo, max(scan, b-uint64(s.lag)))
				}
			}
			sh.detect(a, b, scan, end, nil)
			scan, a = end, b
		}
	case phaseFilter:
		sh.filter(s.in, s.inGain, s.from)
	case phaseReference:
		per := (s.rows + len(s.shards) - 1) / len(s.shards)
		i0 := sh.index * per
		i1 := min(s.rows, i0+per)
		if i0 < i1 {
			sh.referenceRows(s.from, i0, i1, s.ref)
		}
	case phaseDetect:
		sh.detect(s.from, s.to, s.scanFrom, s.scanTo, s.ref[:3*s.rows])
	case phaseDrain:
		sh.pad(s.from, s.to)
		sh.detect(s.to, s.to, s.scanFrom, s.scanTo, nil)
	}
}

// drain pads every channel with zeros for Lag() samples and scans to the
// end of the real signal, as at the end of a segment.
func (s *Sorter) drain(dst []Spike) []Spike {
	s.from = s.tau
	s.tau += uint64(s.lag)
	s.to = s.tau
	s.scanFrom, s.scanTo = s.scan, s.tau-uint64(s.lag)
	s.run(phaseDrain)
	if s.g != nil {
		s.resolve(s.scanTo)
	}
	s.scan = s.scanTo
	// Everything found is complete now.
	return s.emit(dst, math.MaxUint64)
}

// Flush ends the stream: it scans the last samples (padding the snippets
// that run past the end with zeros), returns the remaining spikes and, if
// no learning pass has completed yet, learns now from what was collected so
// that Templates reports templates (the spikes already returned stay unit 0).
// Process may be called after Flush; it starts a new segment.
func (s *Sorter) Flush(dst []Spike) []Spike {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.started {
		return dst
	}
	dst = s.drain(dst)
	s.started = false
	if s.collecting && !s.learning && s.stats.Learned == 0 {
		// The stream ended before the first learning pass: learn from
		// what was collected so Templates reports something. (A partial
		// re-learning window is not worth a pass.)
		s.startLearn(true)
	}
	s.installLearned(true)
	return dst
}

// emit moves pending spikes with extremum before tau to dst, in order.
func (s *Sorter) emit(dst []Spike, before uint64) []Spike {
	for _, sh := range s.shards {
		for i, sp := range sh.out {
			s.pending = append(s.pending, sp)
			s.pendTau = append(s.pendTau, sh.outTau[i])
		}
		sh.out = sh.out[:0]
		sh.outTau = sh.outTau[:0]
	}
	if len(s.pending) == 0 {
		return dst
	}
	start := len(dst)
	k := 0
	for i, sp := range s.pending {
		if s.pendTau[i] < before {
			dst = append(dst, sp)
		} else {
			s.pending[k], s.pendTau[k] = sp, s.pendTau[i]
			k++
		}
	}
	s.pending, s.pendTau = s.pending[:k], s.pendTau[:k]
	out := dst[start:]
	slices.SortFunc(out, func(a, b Spike) int {
		if a.Sample != b.Sample {
			if a.Sample < b.Sample {
				return -1
			}
			return 1
		}
		return int(a.Channel) - int(b.Channel)
	})
	s.stats.Spikes += uint64(len(out))
	for _, sp := range out {
		if sp.Unit != 0 {
			s.stats.Sorted++
		}
	}
	return dst
}

// run runs phase on every shard in parallel and waits.
func (s *Sorter) run(phase int) {
	s.phase = phase
	n := len(s.shards)
	s.remaining.Store(int64(n))
	e := s.epoch.Add(1)
	for i := 1; i < n; i++ {
		select {
		case s.jobs[i] <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	if n > 1 && int(s.to-s.from)*s.channels >= n*yieldSamples {
		// The woken workers wait in this P's runnext slot, which another
		// P steals only when idle: while it is busy (the file reader in
		// read(2), a publisher, another process) this goroutine would
		// take their shards too, one after the other. Yielding runs a
		// worker here at once and puts this goroutine on the global
		// queue for the next free P (BenchmarkSorter at 10 ms blocks:
		// +12-26 % samples per second, docs/performance.md). Not for
		// small blocks, where waking another thread costs about as much
		// as the shard.
		runtime.Gosched()
	}
	last := false
	for i := range n { // its own shard first, then any no worker has taken
		if s.claims[i].CompareAndSwap(e-1, e) {
			s.doPhase(s.shards[i])
			last = s.remaining.Add(-1) == 0
		}
	}
	if !last {
		<-s.finished
	}
}

// yieldSamples is the least work per shard, in samples, for which run
// yields to the workers it woke (about 100 µs of the hot path; a 1 ms
// block of 1,024 channels is 15,360 per shard of two).
const yieldSamples = 1 << 15

func (s *Sorter) worker(i int) {
	for range s.jobs[i] {
		e := s.epoch.Load()
		if !s.claims[i].CompareAndSwap(e-1, e) {
			continue // the caller took this shard, or a stale wake-up
		}
		s.doPhase(s.shards[i])
		if s.remaining.Add(-1) == 0 {
			s.finished <- struct{}{}
		}
	}
}

// noiseCheck starts detection and learning once the first noise
// estimate exists (noise value noiseInit-1, taken at a fixed row).
func (s *Sorter) noiseCheck(from, to uint64) {
	if s.noiseOK {
		return
	}
	row := uint64(s.noiseInit-1) * uint64(s.noiseStride)
	if row >= to {
		return
	}
	s.noiseOK = true
	s.learnFrom = row
	s.learnAt = row + uint64(s.cfg.LearnSeconds*s.rate)
	s.collecting = s.needLearn()
	s.setCollect(s.collecting)
}

// needLearn reports whether any channel lacks templates.
func (s *Sorter) needLearn() bool {
	for _, sh := range s.shards {
		for _, us := range sh.units {
			if len(us) == 0 {
				return true
			}
		}
	}
	return s.cfg.RelearnEvery > 0
}

func (s *Sorter) setCollect(on bool) {
	for _, sh := range s.shards {
		sh.collect = on
	}
}

// Noise appends each channel's current noise σ in µV (MAD/0.6745 of the
// filtered signal; 0 until the first estimate) to dst.
func (s *Sorter) Noise(dst []float32) []float32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shards {
		dst = append(dst, sh.sigmaNext...)
	}
	return dst
}

// Templates returns copies of the current templates, by channel then unit.
func (s *Sorter) Templates() []Template {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.g != nil {
		return s.geoTemplates()
	}
	var out []Template
	for _, sh := range s.shards {
		for c, us := range sh.units {
			for _, u := range us {
				out = append(out, Template{
					Unit:     u.id,
					Channel:  int32(sh.c0 + c),
					Pre:      s.pre,
					Waveform: slices.Clone(u.w),
					PeakUV:   u.w[s.pre],
					Count:    u.count,
				})
			}
		}
	}
	return out
}

// Stats returns the counters so far.
func (s *Sorter) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Units = 0
	for _, sh := range s.shards {
		for _, us := range sh.units {
			st.Units += len(us)
		}
		st.Unmatched += sh.unmatched
	}
	if s.g != nil {
		st.Units = len(s.g.units)
	}
	return st
}

// Close stops the workers (waiting for a learning pass in progress). The
// Sorter cannot be used afterwards.
func (s *Sorter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for i := 1; i < len(s.jobs); i++ {
		close(s.jobs[i])
	}
	if s.learning {
		s.joinPass()
		<-s.learnDone
		s.learning = false
	}
	return nil
}
