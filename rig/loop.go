package rig

import (
	"errors"
	"slices"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/quality"
	"github.com/spikeline/spikeline/stream/schema"
)

// sortLoop is the state of the sorter and decoder goroutine (Rig.loop):
// it owns the Sorter's output, the decoder and everything they produce.
type sortLoop struct {
	p        *Rig
	spikes   []sort.Spike
	ests     []decode.Estimate
	online   *decode.Online
	cal      *decode.Calibrator
	fitted   chan fitResult
	fitting  bool
	waiters  []chan error
	learned  uint64
	nextTmpl uint64 // device sample of the next periodic template snapshot
	lastEnd  uint64
	done     uint64 // spikes before this sample have all been published
	rate     float64
	nextStat time.Time
	win      statusWindow
	retryAt  uint64           // no automatic fit before this sample (after a failed one)
	qual     *quality.Tracker // live unit quality metrics, published with the templates
	qualFrom uint64
	units    []quality.Unit
	// periodic template snapshots for the snapshot goroutine (startSnapshots)
	snapshots chan *schema.TemplateBatch
	score     *r2Tracker
	r2        []float64
	seg       int // the session segment being sorted (segment.go)
	behEvery  uint64
	lag       uint64
}

type fitResult struct {
	online *decode.Online
	err    error
}

// loop is the sorter and decoder goroutine: it sorts the blocks from
// items in order, publishes what comes out and hands the blocks' buffers
// back on free. It returns when items is closed (after flushing the
// sorter) or on the first error.
func (p *Rig) loop(items <-chan item, free chan<- []int16) error {
	l := &sortLoop{p: p, fitted: make(chan fitResult, 1), nextStat: time.Now().Add(p.cfg.StatusEvery),
		score: newR2Tracker(len(p.cfg.Outputs), int(r2Window*50)+1)}
	l.win.reset(p.sorter.Channels())
	l.behEvery = max(uint64(p.sorter.Rate()/50), 1) // behaviour published at 50 Hz
	l.lag = uint64(p.sorting().Lag())
	defer l.startSnapshots()() // the last snapshot is out before the loop returns
	defer func() {
		// A fit in progress holds the calibration data and a core: it
		// ends before the pipeline does.
		if l.fitting {
			p.log.Info("waiting for the decoder fit in progress to finish")
			<-l.fitted
		}
	}()
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-items:
			// On a signal the reader stops and closes items: the blocks
			// already queued are still sorted, then the sorter is flushed.
		case w := <-p.refit:
			l.refit(w)
			continue
		case bt, ok := <-p.remoteSorting().batches():
			if ok {
				if err := l.remoteBatch(&bt); err != nil { // remote.go
					return err
				}
			}
			continue
		}
		if !ok {
			// End of stream: flush what the sorter still holds.
			if err := l.flush(); err != nil {
				return err
			}
			p.publishStatus(&l.win, l.lastEnd, l.rate)
			return nil
		}
		if err := l.block(&it, free); err != nil {
			return err
		}
	}
}

// block sorts one block and publishes, records and decodes what it
// gives.
func (l *sortLoop) block(it *item, free chan<- []int16) error {
	p, b := l.p, &it.block
	if it.segment != l.seg {
		if l.seg != 0 {
			if err := l.newSegment(it); err != nil {
				return err
			}
		}
		l.seg = it.segment
		l.rate = 0 // the segment starts below, as the stream did
	}
	if l.rate == 0 {
		if err := l.startStream(b); err != nil {
			return err
		}
	}
	if err := l.sort(b); err != nil {
		return err
	}
	select {
	case free <- b.Samples:
	default:
	}
	if err := l.templates(b); err != nil {
		return err
	}
	l.behaviour(it)
	l.decode(b)
	if now := time.Now(); now.After(l.nextStat) {
		l.nextStat = now.Add(p.cfg.StatusEvery)
		if l.online != nil {
			l.r2 = l.score.r2(l.r2)
			r := slices.Clone(l.r2)
			p.r2.Store(&r)
		}
		p.publishStatus(&l.win, b.End(), b.Rate)
	}
	return nil
}

// refit answers a refit request of the control service once a fit ends.
func (l *sortLoop) refit(w chan error) {
	if l.cal == nil {
		w <- errors.New("no behaviour stream to calibrate from")
		return
	}
	l.waiters = append(l.waiters, w)
	l.startFit()
}

func (l *sortLoop) startFit() {
	if l.fitting || l.cal == nil {
		return
	}
	l.fitting = true
	cal := l.cal
	// On a goroutine of normal priority. An idle-priority thread (as
	// template learning uses, internal/background) gets nothing while the
	// hot path fills the cores and cannot be raised again without
	// privilege: under the race detector on two busy cores the fit never
	// finished in a 20-s run. A fit is one call of about a CPU-second at
	// 1,024 channels, every refit; learning is the long background work.
	go func() {
		o, err := cal.Fit()
		l.fitted <- fitResult{o, err}
	}()
}

// flush ends a segment: what the sorter still holds is published,
// recorded and decoded.
func (l *sortLoop) flush() error {
	p := l.p
	l.spikes = p.sorting().Flush(l.spikes[:0])
	if l.lastEnd > l.done {
		p.pub.PublishSpikes(l.done, l.lastEnd, l.rate, p.realSpikes(l.spikes))
	}
	if p.spikeRec != nil {
		if err := p.spikeRec.add(p.realSpikes(l.spikes)); err != nil {
			return err
		}
		if st := p.sorting().Stats(); st.Learned > 0 {
			if err := p.spikeRec.templates(l.lastEnd, l.rate, p.sorting().Templates()); err != nil {
				return err
			}
		}
	}
	if l.online != nil && l.lastEnd > l.done {
		// The bins the flushed spikes complete.
		l.online.Add(l.spikes)
		l.estimates(l.lastEnd)
	}
	return nil
}

// estimates advances the live decoder to sample end and publishes (and
// scores) the estimates of the bins that closed.
func (l *sortLoop) estimates(end uint64) {
	m := l.online.Model()
	l.ests = l.online.Advance(end, l.ests[:0])
	for _, e := range l.ests {
		l.p.pub.PublishEstimate(string(m.Kind), e)
		l.score.addEstimate(e.End, m.BinSamples, e.Values, e.Degraded)
	}
}

// newSegment starts a new segment (a format change, a counter reset, a
// long gap) at it: the old one is flushed, the sorter restarted if the
// format changed, the decoder set on the new clock.
func (l *sortLoop) newSegment(it *item) error {
	p, b := l.p, &it.block
	if err := l.flush(); err != nil {
		return err
	}
	if l.fitting {
		r := <-l.fitted
		l.fitting = false
		if r.err == nil {
			l.online = r.online
		}
		for _, w := range l.waiters {
			w <- r.err
		}
		l.waiters = l.waiters[:0]
	}
	ns, err := p.startSegment(b, it.segment, it.why)
	if err != nil {
		return err
	}
	var keep *decode.Model // the live decoder, fitted on this format
	if l.online != nil && p.model == nil && ns == nil {
		keep = l.online.Model()
	}
	l.online, l.retryAt = nil, 0
	l.score = newR2Tracker(len(p.cfg.Outputs), int(r2Window*50)+1)
	if ns != nil {
		l.cal, l.learned, l.nextTmpl = nil, 0, 0
		p.calibrating.Store(false)
		p.r2.Store(nil)
		l.lag = uint64(ns.Lag())
		l.behEvery = max(uint64(ns.Rate()/50), 1)
		l.win.reset(ns.Channels())
	} else if l.cal != nil {
		if l.cal, err = p.newCalibrator(b.Rate); err != nil {
			return err
		}
	}
	if keep != nil {
		if l.online, err = decode.NewOnline(keep, b.First); err != nil {
			return err
		}
	}
	return nil
}

// startStream starts the stream (or a segment) at b: the device need not
// start at sample 0.
func (l *sortLoop) startStream(b *device.Block) error {
	l.done = b.First
	var err error
	if l.qual, err = quality.NewTracker(quality.Params{}, b.Rate, b.First); err != nil {
		return err
	}
	l.qualFrom = b.First
	if l.p.model != nil {
		if l.online, err = decode.NewOnline(l.p.model, b.First); err != nil {
			return err
		}
	}
	return nil
}

// sort runs b through the sorter and publishes, feeds and records the
// spikes that left it.
func (l *sortLoop) sort(b *device.Block) error {
	p := l.p
	l.rate = b.Rate
	l.lastEnd = b.End()
	p.pub.PublishLinkEvents(b)
	var err error
	if l.spikes, err = p.sorting().Process(*b, l.spikes[:0]); err != nil {
		return err
	}
	if p.remoteSorting() == nil {
		// Every spike before complete has now left the sorter: the batch
		// covers [done, complete), and bins before complete can close.
		// (Remote sorting's spikes come on their own: remoteBatch.)
		if err := l.emit(max(b.End(), l.lag)-l.lag, b.Rate, b.Received); err != nil {
			return err
		}
		l.win.latency = append(l.win.latency, time.Since(b.Received))
	}
	p.feedView(b, p.realSpikes(l.spikes))
	if p.spikeRec != nil {
		if r := uint64(b.Rate); r > 0 && b.First/r != b.End()/r {
			if err := p.spikeRec.sync(); err != nil {
				return err
			}
		}
	}
	l.win.samples += b.End() - b.First
	return nil
}

// emit publishes, feeds and records the spikes l.spikes that complete the
// stream up to sample complete (from the block received then).
func (l *sortLoop) emit(complete uint64, rate float64, received time.Time) error {
	p := l.p
	l.qual.Add(p.realSpikes(l.spikes))
	if complete > l.done {
		p.pub.PublishSpikes(l.done, complete, rate, p.realSpikes(l.spikes))
		l.done = complete
		p.done.Store(l.done)
		if p.cfg.OnBatch != nil {
			p.cfg.OnBatch(complete, received)
		}
	}
	if p.spikeRec != nil {
		if err := p.spikeRec.add(p.realSpikes(l.spikes)); err != nil {
			return err
		}
	}
	for _, s := range p.realSpikes(l.spikes) {
		if int(s.Channel) < len(l.win.counts) {
			l.win.counts[s.Channel]++
		}
	}
	return nil
}

// templates publishes a full snapshot whenever learning produced new
// templates, and every templateEvery of device time for late
// subscribers; the first templates start the decoder's calibration.
func (l *sortLoop) templates(b *device.Block) error {
	p := l.p
	if b.End() >= l.nextTmpl && l.learned > 0 {
		// The same templates again, for late subscribers: encoded and
		// published off the loop (l.snapshots).
		l.snapshot(p.sorting().Templates(), b.End(), b.Rate)
		l.nextTmpl = b.End() + uint64(templateEvery*b.Rate)
	}
	st := p.sorting().Stats()
	if st.Learned == l.learned {
		return nil
	}
	l.learned = st.Learned
	p.units.Store(int64(st.Units))
	ts := p.sorting().Templates()
	l.publishTemplates(ts, b.End(), b.Rate)
	if p.spikeRec != nil {
		if err := p.spikeRec.templates(b.End(), b.Rate, ts); err != nil {
			return err
		}
	}
	l.nextTmpl = b.End() + uint64(templateEvery*b.Rate)
	if l.cal == nil && l.online == nil && p.src.hasBehaviour {
		var err error
		if l.cal, err = p.newCalibrator(b.Rate); err != nil {
			return err
		}
		p.log.Info("templates learned; calibrating the decoder", "units", st.Units, "seconds", p.cfg.Calibrate)
		p.calibrating.Store(true)
	}
	return nil
}

// snapshot publishes a periodic template snapshot like publishTemplates,
// but hands the encoding and publishing to the snapshot goroutine (the
// loop computes the quality metrics, which read its tracker): encoding
// thousands of templates took ~16 ms of the loop every templateEvery
// (docs/performance.md, "Background work"). A snapshot still waiting when
// the next comes is replaced by it: each is the whole state.
func (l *sortLoop) snapshot(ts []sort.Template, sample uint64, rate float64) {
	m := l.templateBatch(ts, sample, rate)
	m.Quality = slices.Clone(m.Quality) // l.units is the loop's to reuse
	select {
	case l.snapshots <- m:
	default:
		select {
		case <-l.snapshots: // superseded
		default:
		}
		l.snapshots <- m // the loop is the only sender: there is room now
	}
}

// startSnapshots starts the goroutine that publishes periodic template
// snapshots; the function it returns waits for the last of them.
func (l *sortLoop) startSnapshots() (wait func()) {
	l.snapshots = make(chan *schema.TemplateBatch, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range l.snapshots {
			l.p.pub.PublishTemplateBatch(m)
		}
	}()
	return func() {
		close(l.snapshots)
		<-done
	}
}

// publishTemplates publishes a template snapshot with the units' quality
// metrics over [qualFrom, done): the session so far (docs/quality.md).
func (l *sortLoop) publishTemplates(ts []sort.Template, sample uint64, rate float64) {
	l.p.pub.PublishTemplateBatch(l.templateBatch(ts, sample, rate))
}

// templateBatch is a full template snapshot with the units' quality
// metrics, computed into l.units.
func (l *sortLoop) templateBatch(ts []sort.Template, sample uint64, rate float64) *schema.TemplateBatch {
	l.qual.Retain(ts)
	l.units = l.qual.Metrics(l.units[:0], ts, l.p.sorting().Noise(nil), l.done)
	return &schema.TemplateBatch{Header: schema.Header{Flags: schema.FlagFullSnapshot, Sample: sample, Rate: rate},
		Templates: ts, Quality: l.units, QualityFrom: l.qualFrom}
}

// behaviour feeds the behaviour that came with the block, and what
// arrived on Config.BehaviourSubject, to the calibrator and the R²
// tracker, and publishes the device's own at 50 Hz.
func (l *sortLoop) behaviour(it *item) {
	p, b := l.p, &it.block
	add := func(sample uint64, values []float64) {
		if l.cal != nil {
			l.cal.AddBehaviour(sample, values)
		}
		l.score.addBehaviour(sample, values)
	}
	for _, bs := range it.behaviour {
		add(bs.sample, bs.values)
	}
	// Behaviour from the subject is taken every block, before the
	// calibrator exists too, so the queue never overflows.
drain:
	for p.behaviour != nil {
		select {
		case bs := <-p.behaviour:
			add(bs.sample, bs.values)
		default:
			break drain
		}
	}
	if n := len(it.behaviour); n > 0 && b.End()/l.behEvery != b.First/l.behEvery {
		// At 50 Hz on the device clock: enough for displays.
		last := it.behaviour[n-1]
		p.pub.PublishEstimate(BehaviourModel, decode.Estimate{End: b.End(), Rate: b.Rate, Names: p.cfg.Outputs, Values: last.values})
	}
}

// decode marks the block's gaps, feeds the calibrator (starting a fit
// when it is ready), installs a fitted decoder and runs the live one.
func (l *sortLoop) decode(b *device.Block) {
	for _, e := range b.Events {
		if e.Kind == device.EventGap {
			g := decode.Gap{Start: e.Sample - e.Count, End: e.Sample}
			if l.cal != nil {
				l.cal.MarkGap(g)
			}
			if l.online != nil {
				l.online.MarkGap(g)
			}
		}
	}
	l.decodeSpikes(b.End(), b.Rate)
}

// decodeSpikes feeds the spikes up to l.done to the calibrator (starting
// a fit when it is ready), installs a fitted decoder and runs the live
// one; end and rate are the stream's, for the refit event.
func (l *sortLoop) decodeSpikes(end uint64, rate float64) {
	p := l.p
	if l.cal != nil {
		l.cal.Add(l.spikes)
		l.cal.Advance(l.done)
		if l.online == nil && l.cal.Ready() && l.done >= l.retryAt {
			l.startFit()
		}
	}
	select {
	case r := <-l.fitted:
		l.fitting = false
		if r.err != nil {
			// Try again once another calibration period of data is in (a
			// refit request may come sooner).
			l.retryAt = l.done + uint64(p.cfg.Calibrate*rate)
			p.log.Warn("decoder fit failed; retrying later", "err", r.err, "retry_in_s", p.cfg.Calibrate)
		} else {
			l.cal.CatchUp(r.online)
			l.online = r.online
			p.calibrating.Store(false)
			m := l.online.Model()
			p.log.Info("decoder fitted", "kind", m.Kind, "inputs", len(m.Keys), "lags", m.Lags)
			p.pub.PublishEvents(end, rate, []schema.Event{{Kind: schema.EventRefit, Sample: end, Unit: -1, Channel: -1, Detail: string(m.Kind)}})
		}
		for _, w := range l.waiters {
			w <- r.err
		}
		l.waiters = l.waiters[:0]
	default:
	}
	if l.online != nil {
		l.online.Add(l.spikes)
		l.estimates(l.done)
	}
}
