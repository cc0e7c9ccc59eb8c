package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/quality"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/view"
)

// A Rig is the live pipeline: device → sorter → decoder → NATS, with
// its control service, live page and recording. New makes one; Run runs it.
type Rig struct {
	cfg    Config
	log    *slog.Logger
	src    *openSource
	model  *decode.Model
	stdout io.Writer
	gain   float64 // µV per count, from the device's first block

	pub    *stream.Publisher
	sorter *sort.Sorter

	started time.Time
	status  atomic.Pointer[stream.Status] // latest status, for the control service
	refit   chan chan error               // refit requests from the control service
	thresh  atomic.Uint64                 // float64 bits of the current threshold

	received    atomic.Uint64        // samples per channel received from the device
	done        atomic.Uint64        // device sample before which every spike is published
	behaviour   chan behaviourSample // from --behaviour-subject
	behDropped  atomic.Uint64        // behaviour samples dropped: the loop fell behind
	behRejected atomic.Uint64        // behaviour messages that were not estimates of len(outputs) values

	spikeRec    *spikeRecorder            // --record: sorted spikes and templates (loop goroutine)
	line        *statusLine               // the live status on stdout
	live        *view.Live                // the live page's in-process feed (nil: no page); set before the loop starts
	units       atomic.Int64              // units the sorter has (for the status line)
	calibrating atomic.Bool               // the live decoder is collecting its calibration data
	items       chan item                 // device → sorter queue
	httpAddr    string                    // where the live page and /metrics are served
	r2          atomic.Pointer[[]float64] // decoder R² per output, over the last r2Window (nil: no decoder yet)
	runFile     stream.RunFile            // the embedded server's credentials, as saved (run_security.go)
	credDir     string

	// Segments of the session (run_segment.go).
	rec        *rawRecorder                // --record: the raw stream (reader goroutine)
	sorterNow  atomic.Pointer[sort.Sorter] // the loop's sorter, for other goroutines (it changes at a format change)
	viewSorter *sort.Sorter                // the first sorter, kept for the live page after a format change
}

// queued returns the blocks waiting between the device and the sorter.
func (p *Rig) queued() int { return len(p.items) }

// decoderR2 returns the live decoder's R² per output against the behaviour
// (NaN where unknown) and whether a decoder is running.
func (p *Rig) decoderR2() ([]float64, bool) {
	if r := p.r2.Load(); r != nil {
		return *r, true
	}
	return nil, false
}

// behaviourSample is one behaviour value vector at a device sample.
type behaviourSample struct {
	sample uint64
	values []float64
}

// subscribeBehaviour feeds behaviour published on subj (estimate schema)
// to the loop, never blocking the NATS goroutine.
func (p *Rig) subscribeBehaviour(subj string) (func() error, error) {
	p.behaviour = make(chan behaviourSample, 4096)
	want := len(p.cfg.Outputs)
	sub, err := p.pub.Conn().Subscribe(subj, func(m *nats.Msg) {
		msg, err := stream.DecodeSubject(m.Subject, m.Data)
		est, ok := msg.(*stream.EstimateMsg)
		if err != nil || !ok || len(est.Values) != want {
			if p.behRejected.Add(1) == 1 {
				p.log.Warn("behaviour message rejected", "subject", m.Subject, "err", err, "want_values", want)
			}
			return
		}
		select {
		case p.behaviour <- behaviourSample{est.Sample, est.Values}:
		default:
			p.behDropped.Add(1)
		}
	})
	if err != nil {
		return nil, err
	}
	return sub.Unsubscribe, nil
}

// item is one block on its way from the device to the sorter, with the
// simulator's behaviour samples that arrived with it.
type item struct {
	block     device.Block
	behaviour []behaviourSample // from the device (the simulator)
	segment   int               // the session segment the block belongs to (1-based)
	why       error             // why the block starts a new segment (device.Segmenter), if it does
}

func (p *Rig) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.started = time.Now()
	p.refit = make(chan chan error)

	// The first block says what the device is sending.
	first, err := p.src.Next(ctx)
	if err != nil {
		return p.src.firstError(err)
	}
	p.gain = first.Gain
	p.sorter, err = sort.New(p.cfg.Sort, first.Channels, first.Rate, first.Gain)
	if err != nil {
		return err
	}
	p.sorterNow.Store(p.sorter)
	defer func() {
		p.sorter.Close() // the last segment's (run_segment.go)
		if p.viewSorter != nil {
			p.viewSorter.Close()
		}
	}()
	p.thresh.Store(math.Float64bits(p.sorter.Config().Threshold))
	if err := p.armStimulation(first.Channels); err != nil {
		return err
	}

	p.pub, err = stream.NewPublisher(ctx, p.cfg.NATS)
	if err != nil {
		return err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		if err := p.pub.Close(cctx); err != nil {
			p.log.Warn("closing NATS", "err", err)
		}
	}()
	removeCreds, err := p.saveCredentials()
	if err != nil {
		return err
	}
	defer removeCreds()
	p.warnOpenControl()
	svcOpts := stream.ServiceOptions{Version: p.cfg.Version, Audit: p.audit}
	if creds := p.pub.Credentials(); creds != nil {
		svcOpts.Roles, svcOpts.RequireVerified = creds.Roles(), true
	}
	svc, err := stream.StartService(p.pub.Conn(), p.cfg.NATS.Rig, p, svcOpts)
	if err != nil {
		return err
	}
	defer svc.Stop()

	if p.cfg.BehaviourSubject != "" {
		unsub, err := p.subscribeBehaviour(p.cfg.BehaviourSubject)
		if err != nil {
			return fmt.Errorf("--behaviour-subject: %w", err)
		}
		defer unsub()
		p.src.hasBehaviour = true
	}
	subj := p.pub.Subjects()
	fmt.Fprintf(p.stdout, "spikeline: %s, %d channels at %g Hz (%.4g µV/count)\n", p.src.name, first.Channels, first.Rate, first.Gain)
	fmt.Fprintf(p.stdout, "spikeline: NATS %s — subjects %s, control %s.*\n", stream.RedactURL(p.pub.URL()), subj.All(), subj.Control())
	decodeSubj, _ := subj.Decode(p.Info().Models[1])
	if p.src.hasBehaviour {
		behSubj, _ := subj.Decode(BehaviourModel)
		decodeSubj += " (behaviour " + behSubj + ")"
	}
	fmt.Fprintf(p.stdout, "spikeline: spikes on %s, decoder on %s, status %s, events %s, templates %s\n",
		subj.Spikes(), decodeSubj, subj.Status(), subj.Events(), subj.Templates())
	fmt.Fprintf(p.stdout, "spikeline: watch with: spikeline tap --nats %s --rig %s\n", stream.RedactURL(p.pub.URL()), subj.Rig())
	p.printAccess()
	if p.cfg.HTTP != "" {
		stopHTTP, err := p.startHTTP(ctx)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}

	if p.rec != nil {
		fmt.Fprintf(p.stdout, "spikeline: recording raw data and sorted spikes into %s\n", p.cfg.Record)
	}

	// Reader: device → bounded queue. Blocks are copied into recycled
	// buffers, since sources reuse theirs.
	queue := p.cfg.Queue
	if b := 2 * len(first.Samples); b > 0 && queue > device.MaxQueueBytes/b {
		// The queue's memory is bounded in bytes too.
		queue = max(1, device.MaxQueueBytes/b)
		p.log.Warn("--queue shortened to fit its memory bound", "blocks", p.cfg.Queue, "block_bytes", b, "now", queue, "max_bytes", device.MaxQueueBytes)
	}
	items := make(chan item, queue)
	p.items = items
	free := make(chan []int16, queue+2)
	readErr := make(chan error, 1)
	go func() {
		defer close(items)
		b := first
		// --duration counts samples received, not the device counter,
		// which may jump (gaps, resets).
		var want, got uint64
		var segs segments
		if p.cfg.Duration > 0 {
			want = uint64(p.cfg.Duration.Seconds() * first.Rate)
		}
		for {
			var buf []int16
			select {
			case buf = <-free:
			default:
			}
			it := item{block: b}
			it.segment, it.why = segs.next(&b)
			it.block.Samples = append(buf[:0], b.Samples...)
			it.block.Events = slices.Clone(b.Events)
			it.behaviour = p.src.takeBehaviour()
			select {
			case items <- it:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			if p.rec != nil {
				if err := p.rec.write(&b, it.segment); err != nil {
					readErr <- err
					return
				}
			}
			got += uint64(b.Len())
			p.received.Store(got)
			if want > 0 && got >= want {
				readErr <- io.EOF
				return
			}
			var err error
			if b, err = p.src.Next(ctx); err != nil {
				readErr <- err
				return
			}
		}
	}()

	err = p.loop(items, free)
	cancel()
	rerr := <-readErr
	if err == nil && rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, context.Canceled) {
		err = fmt.Errorf("reading %s: %w", p.src.name, rerr)
	}
	p.summary()
	return err
}

// summary prints what the run did, for the person at the bench.
func (p *Rig) summary() {
	p.line.end()
	st, l, ps := p.sorter.Stats(), p.src.stats(), p.pub.Stats()
	fmt.Fprintf(p.stdout, "spikeline: %.1f s of device time on %d channels; %d spikes, %d sorted into %d units\n",
		float64(p.received.Load())/p.sorter.Rate(), p.sorter.Channels(), st.Spikes, st.Sorted, st.Units)
	fmt.Fprintf(p.stdout, "spikeline: link: %d frames, %d CRC errors, %d bytes skipped, %d gaps (%d samples lost), %d resets, %d reconnects\n",
		l.Frames, l.CRCErrors, l.SkippedBytes, l.Gaps, l.LostSamples, l.Resets, l.Reconnects)
	fmt.Fprintf(p.stdout, "spikeline: NATS: %d messages sent, %d dropped, %d refused\n", ps.Sent, ps.Dropped, ps.Errors)
	if n := p.behDropped.Load() + p.behRejected.Load(); n > 0 {
		fmt.Fprintf(p.stdout, "spikeline: behaviour: %d samples dropped, %d messages rejected\n", p.behDropped.Load(), p.behRejected.Load())
	}
}

// loop is the sorter and decoder goroutine: it owns the Sorter, the
// decoder and everything they produce.
func (p *Rig) loop(items <-chan item, free chan<- []int16) error {
	var (
		spikes   []sort.Spike
		ests     []decode.Estimate
		online   *decode.Online
		cal      *decode.Calibrator
		fitted   = make(chan fitResult, 1)
		fitting  bool
		waiters  []chan error
		learned  uint64
		nextTmpl uint64 // device sample of the next periodic template snapshot
		lastEnd  uint64
		done     uint64 // spikes before this sample have all been published
		rate     float64
		outputs  = p.cfg.Outputs
		nextStat = time.Now().Add(p.cfg.StatusEvery)
		win      statusWindow
		retryAt  uint64           // no automatic fit before this sample (after a failed one)
		qual     *quality.Tracker // live unit quality metrics, published with the templates
		qualFrom uint64
		units    []quality.Unit
		score    = newR2Tracker(len(p.cfg.Outputs), int(r2Window*50)+1)
		r2       []float64
		seg      int // the session segment being sorted (run_segment.go)
	)
	channels := p.sorter.Channels()
	win.reset(channels)
	behEvery := max(uint64(p.sorter.Rate()/50), 1) // behaviour published at 50 Hz
	lag := uint64(p.sorter.Lag())

	defer func() {
		// A fit in progress holds the calibration data and a core: it
		// ends before the pipeline does.
		if fitting {
			p.log.Info("waiting for the decoder fit in progress to finish")
			<-fitted
		}
	}()
	// A template snapshot carries the units' quality metrics over
	// [qualFrom, done): the session so far (docs/quality.md).
	publishTemplates := func(ts []sort.Template, sample uint64, rate float64) {
		qual.Retain(ts)
		units = qual.Metrics(units[:0], ts, p.sorter.Noise(nil), done)
		p.pub.PublishTemplateBatch(&stream.TemplateBatch{Header: stream.Header{Flags: stream.FlagFullSnapshot, Sample: sample, Rate: rate},
			Templates: ts, Quality: units, QualityFrom: qualFrom})
	}
	startFit := func() {
		if fitting || cal == nil {
			return
		}
		fitting = true
		go func() {
			o, err := cal.Fit()
			fitted <- fitResult{o, err}
		}()
	}
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-items:
			// On a signal the reader stops and closes items: the blocks
			// already queued are still sorted, then the sorter is flushed.
		case w := <-p.refit:
			if cal == nil {
				w <- errors.New("no behaviour stream to calibrate from")
				continue
			}
			waiters = append(waiters, w)
			startFit()
			continue
		}
		// flush ends a segment: what the sorter still holds is published,
		// recorded and decoded.
		flush := func() error {
			spikes = p.sorter.Flush(spikes[:0])
			if lastEnd > done {
				p.pub.PublishSpikes(done, lastEnd, rate, spikes)
			}
			if p.spikeRec != nil {
				if err := p.spikeRec.add(spikes); err != nil {
					return err
				}
				if st := p.sorter.Stats(); st.Learned > 0 {
					if err := p.spikeRec.templates(lastEnd, rate, p.sorter.Templates()); err != nil {
						return err
					}
				}
			}
			if online != nil && lastEnd > done {
				// The bins the flushed spikes complete.
				m := online.Model()
				online.Add(spikes)
				ests = online.Advance(lastEnd, ests[:0])
				for _, e := range ests {
					p.pub.PublishEstimate(string(m.Kind), e)
					score.addEstimate(e.End, m.BinSamples, e.Values, e.Degraded)
				}
			}
			return nil
		}
		if !ok {
			// End of stream: flush what the sorter still holds.
			if err := flush(); err != nil {
				return err
			}
			p.publishStatus(&win, lastEnd, rate)
			return nil
		}
		b := &it.block
		if it.segment != seg {
			if seg != 0 {
				// A new segment (a format change, a counter reset, a long
				// gap): the old one is flushed, the sorter restarted if
				// the format changed, the decoder set on the new clock.
				if err := flush(); err != nil {
					return err
				}
				if fitting {
					r := <-fitted
					fitting = false
					if r.err == nil {
						online = r.online
					}
					for _, w := range waiters {
						w <- r.err
					}
					waiters = waiters[:0]
				}
				ns, err := p.startSegment(b, it.segment, it.why)
				if err != nil {
					return err
				}
				var keep *decode.Model // the live decoder, fitted on this format
				if online != nil && p.model == nil && ns == nil {
					keep = online.Model()
				}
				online, retryAt = nil, 0
				score = newR2Tracker(len(p.cfg.Outputs), int(r2Window*50)+1)
				if ns != nil {
					cal, learned, nextTmpl = nil, 0, 0
					p.calibrating.Store(false)
					p.r2.Store(nil)
					channels, lag = ns.Channels(), uint64(ns.Lag())
					behEvery = max(uint64(ns.Rate()/50), 1)
					win.reset(channels)
				} else if cal != nil {
					if cal, err = p.newCalibrator(b.Rate); err != nil {
						return err
					}
				}
				if keep != nil {
					if online, err = decode.NewOnline(keep, b.First); err != nil {
						return err
					}
				}
			}
			seg = it.segment
			rate = 0 // the segment starts below, as the stream did
		}
		if rate == 0 {
			done = b.First // the device need not start at sample 0
			var err error
			if qual, err = quality.NewTracker(quality.Params{}, b.Rate, b.First); err != nil {
				return err
			}
			qualFrom = b.First
			if p.model != nil {
				var err error
				if online, err = decode.NewOnline(p.model, b.First); err != nil {
					return err
				}
			}
		}
		rate = b.Rate
		lastEnd = b.End()
		p.pub.PublishLinkEvents(b)
		var err error
		spikes, err = p.sorter.Process(*b, spikes[:0])
		if err != nil {
			return err
		}
		qual.Add(spikes)
		// Every spike before complete has now left the sorter: the batch
		// covers [done, complete), and bins before complete can close.
		complete := max(b.End(), lag) - lag
		if complete > done {
			p.pub.PublishSpikes(done, complete, b.Rate, spikes)
			done = complete
			p.done.Store(done)
			if p.cfg.OnBatch != nil {
				p.cfg.OnBatch(complete, b.Received)
			}
		}
		win.latency = append(win.latency, time.Since(b.Received))
		p.feedView(b, spikes)
		if p.spikeRec != nil {
			if err := p.spikeRec.add(spikes); err != nil {
				return err
			}
			if r := uint64(b.Rate); r > 0 && b.First/r != b.End()/r {
				if err := p.spikeRec.sync(); err != nil {
					return err
				}
			}
		}
		win.samples += uint64(b.Len())
		for _, s := range spikes {
			if int(s.Channel) < len(win.counts) {
				win.counts[s.Channel]++
			}
		}
		select {
		case free <- b.Samples:
		default:
		}

		// Templates: a full snapshot whenever learning produced new ones,
		// and every templateEvery of device time for late subscribers.
		if b.End() >= nextTmpl && learned > 0 {
			publishTemplates(p.sorter.Templates(), b.End(), b.Rate)
			nextTmpl = b.End() + uint64(templateEvery*b.Rate)
		}
		if st := p.sorter.Stats(); st.Learned != learned {
			learned = st.Learned
			p.units.Store(int64(st.Units))
			ts := p.sorter.Templates()
			publishTemplates(ts, b.End(), b.Rate)
			if p.spikeRec != nil {
				if err := p.spikeRec.templates(b.End(), b.Rate, ts); err != nil {
					return err
				}
			}
			nextTmpl = b.End() + uint64(templateEvery*b.Rate)
			if cal == nil && online == nil && p.src.hasBehaviour {
				if cal, err = p.newCalibrator(b.Rate); err != nil {
					return err
				}
				p.log.Info("templates learned; calibrating the decoder", "units", st.Units, "seconds", p.cfg.Calibrate)
				p.calibrating.Store(true)
			}
		}

		// Behaviour: published as it is, and fed to the calibrator.
		for _, bs := range it.behaviour {
			if cal != nil {
				cal.AddBehaviour(bs.sample, bs.values)
			}
			score.addBehaviour(bs.sample, bs.values)
		}
		// Behaviour from --behaviour-subject is taken every block, before
		// the calibrator exists too, so the queue never overflows.
	drain:
		for p.behaviour != nil {
			select {
			case bs := <-p.behaviour:
				if cal != nil {
					cal.AddBehaviour(bs.sample, bs.values)
				}
				score.addBehaviour(bs.sample, bs.values)
			default:
				break drain
			}
		}
		if n := len(it.behaviour); n > 0 && b.End()/behEvery != b.First/behEvery {
			// At 50 Hz on the device clock: enough for displays.
			last := it.behaviour[n-1]
			p.pub.PublishEstimate(BehaviourModel, decode.Estimate{End: b.End(), Rate: b.Rate, Names: outputs, Values: last.values})
		}

		for _, e := range b.Events {
			if e.Kind == device.EventGap {
				g := decode.Gap{Start: e.Sample - e.Count, End: e.Sample}
				if cal != nil {
					cal.MarkGap(g)
				}
				if online != nil {
					online.MarkGap(g)
				}
			}
		}
		if cal != nil {
			cal.Add(spikes)
			cal.Advance(done)
			if online == nil && cal.Ready() && done >= retryAt {
				startFit()
			}
		}
		select {
		case r := <-fitted:
			fitting = false
			if r.err != nil {
				// Try again once another calibration period of data is
				// in (a refit request may come sooner).
				retryAt = done + uint64(p.cfg.Calibrate*b.Rate)
				p.log.Warn("decoder fit failed; retrying later", "err", r.err, "retry_in_s", p.cfg.Calibrate)
			} else {
				cal.CatchUp(r.online)
				online = r.online
				p.calibrating.Store(false)
				m := online.Model()
				p.log.Info("decoder fitted", "kind", m.Kind, "inputs", len(m.Keys), "lags", m.Lags)
				p.pub.PublishEvents(b.End(), b.Rate, []stream.Event{{Kind: stream.EventRefit, Sample: b.End(), Unit: -1, Channel: -1, Detail: string(m.Kind)}})
			}
			for _, w := range waiters {
				w <- r.err
			}
			waiters = waiters[:0]
		default:
		}
		if online != nil {
			online.Add(spikes)
			ests = online.Advance(done, ests[:0])
			m := online.Model()
			for _, e := range ests {
				p.pub.PublishEstimate(string(m.Kind), e)
				score.addEstimate(e.End, m.BinSamples, e.Values, e.Degraded)
			}
		}

		if now := time.Now(); now.After(nextStat) {
			nextStat = now.Add(p.cfg.StatusEvery)
			if online != nil {
				r2 = score.r2(r2)
				r := slices.Clone(r2)
				p.r2.Store(&r)
			}
			p.publishStatus(&win, b.End(), b.Rate)
		}
	}
}

type fitResult struct {
	online *decode.Online
	err    error
}

// statusWindow accumulates what a status message reports between two.
type statusWindow struct {
	start   time.Time
	samples uint64
	counts  []uint64
	latency []time.Duration
}

func (w *statusWindow) reset(channels int) {
	w.start = time.Now()
	w.samples = 0
	w.counts = slices.Grow(w.counts[:0], channels)[:channels]
	clear(w.counts)
	w.latency = w.latency[:0]
}

func (p *Rig) publishStatus(w *statusWindow, sample uint64, rate float64) {
	el := time.Since(w.start).Seconds()
	st := &stream.Status{
		Header:    stream.Header{Sample: sample, Rate: rate},
		Link:      p.src.stats(),
		Uptime:    time.Since(p.started),
		Threshold: math.Float64frombits(p.thresh.Load()),
	}
	if el > 0 {
		st.SampleRate = float64(w.samples) / el
	}
	sec := float64(w.samples) / max(rate, 1)
	var total uint64
	st.RateHz = make([]float32, len(w.counts))
	for i, c := range w.counts {
		total += c
		if sec > 0 {
			st.RateHz[i] = float32(float64(c) / sec)
		}
	}
	if sec > 0 {
		st.SpikeRate = float64(total) / sec
	}
	if n := len(w.latency); n > 0 {
		slices.Sort(w.latency)
		st.LatencyP50 = w.latency[n/2]
		st.LatencyP99 = w.latency[min(n-1, n*99/100)]
		st.LatencyMax = w.latency[n-1]
	}
	st.NoiseUV = p.sorter.Noise(nil)
	p.pub.PublishStatus(st)
	p.status.Store(st)
	w.reset(len(w.counts))
	if el >= p.cfg.StatusEvery.Seconds()/2 { // not the short last window at the end
		r2, _ := p.decoderR2()
		p.line.show(st, p.sorter.Channels(), int(p.units.Load()), p.cfg.Outputs, r2, p.calibrating.Load())
	}
}

// Info, Stats, Refit, SetThreshold and DeviceCommand implement
// stream.Controller for the control service.

func (p *Rig) Info() stream.Info {
	in := stream.Info{
		Rig: p.cfg.NATS.Rig, Version: p.cfg.Version, Device: p.src.name,
		Channels: p.sorterNow.Load().Channels(), Rate: p.sorterNow.Load().Rate(), Gain: p.gain,
		Threshold: math.Float64frombits(p.thresh.Load()), Started: p.started,
		Models: []string{BehaviourModel, string(p.cfg.Decoder)},
	}
	if p.model != nil {
		in.Models[1] = string(p.model.Kind)
	}
	return in
}

func (p *Rig) Stats() stream.Status {
	if s := p.status.Load(); s != nil {
		return *s
	}
	return stream.Status{}
}

func (p *Rig) Refit(ctx context.Context, model string) error {
	if model != "" && model != string(p.cfg.Decoder) {
		return fmt.Errorf("no decoder model %q (have %q)", model, p.cfg.Decoder)
	}
	done := make(chan error, 1)
	select {
	case p.refit <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Rig) SetThreshold(sigma float64) error {
	if err := p.sorterNow.Load().SetThreshold(sigma); err != nil {
		return err
	}
	p.thresh.Store(math.Float64bits(sigma))
	at := p.done.Load()
	p.pub.PublishEvents(at, p.sorterNow.Load().Rate(), []stream.Event{{Kind: stream.EventThreshold, Sample: at, Unit: -1, Channel: -1, Value: sigma}})
	p.log.Info("detection threshold changed", "sigma", sigma)
	return nil
}

func (p *Rig) DeviceCommand(ctx context.Context, op string, args json.RawMessage) (any, error) {
	return p.src.command(ctx, op, args)
}

// templateEvery is the period, in seconds of device time, of the full
// template snapshots that late subscribers start from.
const templateEvery = 10.0

// BehaviourModel is the model name under which the measured (or, for the
// simulator, the true) behaviour is published: spikeline.<rig>.decode.behaviour.
const BehaviourModel = "behaviour"
