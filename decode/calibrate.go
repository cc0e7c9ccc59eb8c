package decode

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/spikeline/spikeline/sort"
)

// CalibratorConfig configures a Calibrator. Rate and Outputs are required.
type CalibratorConfig struct {
	Rate       float64   // device sample rate, Hz
	Outputs    []string  // names of the behaviour values, in AddBehaviour order
	BinSeconds float64   // bin width; default DefaultBinSeconds
	Grouping   Grouping  // ByUnit (default), ByChannel or ByUnitAndUnsorted
	Seconds    float64   // calibration length before Ready; default 60
	MaxSeconds float64   // most recent data kept for refits; default 600 (0 keeps the default, <0 keeps all)
	Fit        FitConfig // decoder to fit (default Wiener, DefaultLags)
	// MaxFeatures bounds units × lags of a live Wiener fit: with more
	// columns than MaxFeatures/Lags, fewer lags are used (at least one),
	// and with more columns than MaxFeatures only the MaxFeatures most
	// active are used, so that a fit on a large probe stays seconds of
	// background CPU rather than minutes. Default
	// DefaultCalibratorFeatures; at most MaxWienerFeatures.
	MaxFeatures int
}

// mostActive returns the n columns of b with the most spikes, ascending.
func mostActive(b *Binned, n int) []int32 {
	k := len(b.Keys)
	total := make([]float64, k)
	for i := range b.Len() {
		for j, v := range b.Counts[i*k : (i+1)*k] {
			total[j] += v
		}
	}
	idx := make([]int, k)
	for j := range idx {
		idx[j] = j
	}
	slices.SortStableFunc(idx, func(a, c int) int { return cmp.Compare(total[c], total[a]) })
	keys := make([]int32, 0, n)
	for _, j := range idx[:n] {
		keys = append(keys, b.Keys[j])
	}
	slices.Sort(keys)
	return keys
}

// DefaultCalibratorFeatures is the default CalibratorConfig.MaxFeatures:
// a 512-feature ridge fit with cross-validation on 60 s of 20 ms bins takes
// a few CPU-seconds (1,000 features took 13 s on a loaded 2-core machine;
// 340 features 0.6–1.9 s). With more units, prefer the Kalman filter.
const DefaultCalibratorFeatures = 512

// Calibrator collects spikes and a behaviour stream in the live pipeline,
// fits a decoder once enough has been seen, and keeps collecting so the
// decoder can be refitted on request. It is safe for concurrent use: Fit
// may run in its own goroutine (it takes seconds) while the pipeline keeps
// feeding the Calibrator.
//
// Typical use, in the goroutine that receives spikes:
//
//	cal.Add(spikes); cal.AddBehaviour(s, v); cal.Advance(upTo)
//	if online != nil { online.Add(spikes); est = online.Advance(upTo, est[:0]) }
//	if online == nil && cal.Ready() { go func() { o, err := cal.Fit(); fitted <- o }() }
//	select { case o := <-fitted: cal.CatchUp(o); online = o; default: }
//
// Fit returns an Online already caught up with everything the Calibrator
// had seen when the fit finished; CatchUp brings it up to date with what
// arrived since, so no spike is lost or counted twice.
type Calibrator struct {
	cfg   CalibratorConfig
	width uint64

	mu sync.Mutex
	// The spikes in arrival order, in chunks of calChunk: chunks[0][head:],
	// then the other chunks, all full but the last. The i-th of them has
	// sequence number base+i. Chunks are filled in place and dropped whole,
	// never copied or reused: the pipeline's goroutine appends without
	// moving what it has (a flat slice copied up to 70 MB when it grew or
	// was trimmed, stalling the live path for tens of milliseconds), and a
	// Fit in progress reads the chunks it took without the lock.
	chunks [][]sort.Spike
	head   int
	base   uint64
	beh    *Behaviour
	gaps   []Gap
	upTo   uint64 // all spikes before upTo delivered
	first  uint64 // first behaviour sample
	seen   bool   // a behaviour sample has arrived
	model  *Model
}

// NewCalibrator checks cfg and returns an empty Calibrator.
func NewCalibrator(cfg CalibratorConfig) (*Calibrator, error) {
	if !(cfg.Rate > 0) {
		return nil, fmt.Errorf("decode: calibrator sample rate %v, want > 0", cfg.Rate)
	}
	if len(cfg.Outputs) == 0 {
		return nil, errors.New("decode: calibrator needs the behaviour output names")
	}
	if cfg.BinSeconds == 0 {
		cfg.BinSeconds = DefaultBinSeconds
	}
	if !(cfg.BinSeconds > 0) {
		return nil, fmt.Errorf("decode: calibrator bin %v s, want > 0", cfg.BinSeconds)
	}
	if cfg.Grouping == "" {
		cfg.Grouping = ByUnit
	}
	if err := cfg.Grouping.valid(); err != nil {
		return nil, err
	}
	if cfg.Seconds == 0 {
		cfg.Seconds = 60
	}
	if !(cfg.Seconds > 0) {
		return nil, fmt.Errorf("decode: calibration length %v s, want > 0", cfg.Seconds)
	}
	if cfg.MaxSeconds == 0 {
		cfg.MaxSeconds = 600
	}
	if cfg.MaxSeconds > 0 && cfg.MaxSeconds < cfg.Seconds {
		return nil, fmt.Errorf("decode: calibrator keeps %v s, less than the calibration length %v s", cfg.MaxSeconds, cfg.Seconds)
	}
	if cfg.Fit.Kind == "" {
		cfg.Fit.Kind = Wiener
	}
	if cfg.Fit.Kind != Wiener && cfg.Fit.Kind != Kalman {
		return nil, fmt.Errorf("decode: calibrator decoder kind %q", cfg.Fit.Kind)
	}
	return &Calibrator{
		cfg:   cfg,
		width: BinSamples(cfg.BinSeconds, cfg.Rate),
		beh:   &Behaviour{Names: slices.Clone(cfg.Outputs)},
	}, nil
}

// calChunk is the number of spikes in one chunk of Calibrator storage
// (384 KiB: a second of 1,024 busy channels fills two or three).
const calChunk = 1 << 14

// Add stores spikes (copied).
func (c *Calibrator) Add(spikes []sort.Spike) {
	c.mu.Lock()
	for len(spikes) > 0 {
		n := len(c.chunks)
		if n == 0 || len(c.chunks[n-1]) == calChunk {
			c.chunks = append(c.chunks, make([]sort.Spike, 0, calChunk))
			n++
		}
		last := c.chunks[n-1]
		k := min(len(spikes), calChunk-len(last))
		c.chunks[n-1] = append(last, spikes[:k]...)
		spikes = spikes[k:]
	}
	c.mu.Unlock()
}

// stored returns the number of spikes stored.
func (c *Calibrator) stored() int {
	n := len(c.chunks)
	if n == 0 {
		return 0
	}
	return (n-1)*calChunk + len(c.chunks[n-1]) - c.head
}

// each calls f on the stored spikes from the i-th on, a chunk at a time.
func (c *Calibrator) each(i int, f func([]sort.Spike)) {
	i += c.head
	for _, ch := range c.chunks[min(i/calChunk, len(c.chunks)):] {
		if i%calChunk < len(ch) {
			f(ch[i%calChunk:])
		}
		i = 0
	}
}

// AddBehaviour stores one behaviour sample (values in Outputs order) at
// device sample index sample; samples must increase.
func (c *Calibrator) AddBehaviour(sample uint64, values []float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.beh.Append(sample, values); err != nil {
		return err
	}
	if !c.seen {
		c.first, c.seen = sample, true
	}
	return nil
}

// MarkGap records samples lost by the device link.
func (c *Calibrator) MarkGap(g Gap) {
	c.mu.Lock()
	if g.End > g.Start {
		c.gaps = append(c.gaps, g)
	}
	c.mu.Unlock()
}

// Advance records that all spikes before upTo have been added, and drops
// data older than MaxSeconds.
func (c *Calibrator) Advance(upTo uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if upTo > c.upTo {
		c.upTo = upTo
	}
	if c.cfg.MaxSeconds < 0 || !c.seen {
		return
	}
	keep := uint64(c.cfg.MaxSeconds * c.cfg.Rate)
	if c.upTo-c.first <= keep+keep/4 {
		return
	}
	// Trim a quarter at a time: spikes by dropping whole chunks and moving
	// head, behaviour into fresh slices (a Fit in progress may still read
	// the old ones).
	cut := c.upTo - keep
	n, more := 0, true
	c.each(0, func(ch []sort.Spike) {
		k := 0
		for more && k < len(ch) && ch[k].Sample < cut {
			k++
		}
		n += k
		more = more && k == len(ch)
	})
	c.head += n
	drop := c.head / calChunk
	c.chunks = slices.Delete(c.chunks, 0, drop) // Fit took a copy of the list
	c.head -= drop * calChunk
	c.base += uint64(n)
	i, _ := slices.BinarySearch(c.beh.Samples, cut)
	nb := &Behaviour{Names: c.beh.Names, Samples: slices.Clone(c.beh.Samples[i:]), Values: slices.Clone(c.beh.Values[i*len(c.beh.Names):])}
	c.beh = nb
	if nb.Len() > 0 {
		c.first = nb.Samples[0]
	}
	c.gaps = slices.DeleteFunc(slices.Clone(c.gaps), func(g Gap) bool { return g.End <= cut })
}

// Collected returns the seconds of behaviour-aligned data collected.
func (c *Calibrator) Collected() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seen || c.upTo <= c.first {
		return 0
	}
	return float64(c.upTo-c.first) / c.cfg.Rate
}

// Ready reports whether Seconds of data have been collected.
func (c *Calibrator) Ready() bool { return c.Collected() >= c.cfg.Seconds }

// Model returns the most recently fitted model, or nil.
func (c *Calibrator) Model() *Model {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.model
}

// Fit fits a decoder on everything collected (within MaxSeconds) and
// returns an Online positioned at the Calibrator's latest Advance, its lag
// history (Wiener) or state (Kalman) primed from the collected data. It
// may be called again at any time to refit.
func (c *Calibrator) Fit() (*Online, error) {
	c.mu.Lock()
	// Chunks are only appended to past the lengths taken here, and
	// dropped whole: safe to read unlocked.
	chunks, head, stored := slices.Clone(c.chunks), c.head, c.stored()
	beh := &Behaviour{Names: c.beh.Names, Samples: c.beh.Samples, Values: c.beh.Values}
	gaps := slices.Clone(c.gaps)
	upTo, first, seen := c.upTo, c.first, c.seen
	c.mu.Unlock()
	spikes := make([]sort.Spike, 0, stored)
	for i, ch := range chunks {
		if i == 0 {
			ch = ch[head:]
		}
		spikes = append(spikes, ch...)
	}

	if !seen {
		return nil, errors.New("decode: calibrator has no behaviour yet")
	}
	start := first / c.width * c.width
	if first > start {
		start += c.width // first whole bin with behaviour
	}
	end := upTo / c.width * c.width
	if end <= start+2*c.width {
		return nil, fmt.Errorf("%w: %.1f s collected", ErrTooFewBins, float64(upTo-first)/c.cfg.Rate)
	}
	b, err := BinSpikes(spikes, c.cfg.Grouping, nil, c.cfg.Rate, c.width, start, end, gaps)
	if err != nil {
		return nil, err
	}
	if len(b.Keys) == 0 {
		return nil, fmt.Errorf("decode: calibrator saw no %s", c.cfg.Grouping.Columns())
	}
	vals, obs := beh.Bin(c.width, b.First, b.Len())
	ds := &Dataset{Bins: b, Outputs: beh.Names, Behaviour: vals, BehaviourObserved: obs}
	fc := c.cfg.Fit
	if fc.Kind != Kalman {
		budget := c.cfg.MaxFeatures
		if budget <= 0 {
			budget = DefaultCalibratorFeatures
		}
		budget = min(budget, MaxWienerFeatures)
		if fc.Lags <= 0 {
			fc.Lags = DefaultLags
		}
		if len(b.Keys) > budget {
			// More columns than the budget even with one lag: keep the
			// budget's most active ones (a large probe's quietest units
			// carry the least), so the fit stays seconds, not minutes.
			keys := mostActive(b, budget)
			if b, err = BinSpikes(spikes, c.cfg.Grouping, keys, c.cfg.Rate, c.width, start, end, gaps); err != nil {
				return nil, err
			}
			ds.Bins = b
		}
		fc.Lags = max(1, min(fc.Lags, budget/len(b.Keys)))
	}
	m, err := Fit(ds, ds.Len(), fc)
	if err != nil {
		return nil, err
	}
	// Start the Online some bins back and replay, so its history is real.
	hist := uint64(m.Lags)
	if m.Kind == Kalman {
		hist = 50
	}
	o0 := start
	if end-start > hist*c.width {
		o0 = end - hist*c.width
	}
	o, err := NewOnline(m, o0)
	if err != nil {
		return nil, err
	}
	o.fed = 0
	for _, g := range gaps {
		o.MarkGap(g)
	}
	c.mu.Lock()
	c.model = m
	c.mu.Unlock()
	c.CatchUp(o)
	o.stats = OnlineStats{} // the replay's early spikes are not news
	return o, nil
}

// CatchUp feeds o every spike and gap the Calibrator received that o has
// not seen (from Fit onward) and advances it to the Calibrator's latest
// Advance, discarding the estimates. Call it from the goroutine that
// feeds o. Spikes already passed to Calibrator.Add reach o through
// CatchUp; if the caller also adds them to o, o drops them as late (they
// precede the upTo CatchUp advanced it to), so nothing is counted twice.
func (c *Calibrator) CatchUp(o *Online) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o.fed < c.base {
		o.fed = c.base // trimmed before o saw them: too old to matter
	}
	c.each(int(o.fed-c.base), o.Add)
	o.fed = c.base + uint64(c.stored())
	for _, g := range c.gaps {
		o.MarkGap(g)
	}
	o.Advance(c.upTo, nil)
}
