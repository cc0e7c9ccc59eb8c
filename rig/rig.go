package rig

import (
	"context"
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
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
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
	// events sorts a version-2 device's spike events or takes its
	// features, in place of the sorter (modes.go); nil for samples.
	events      eventSorter
	featureMode bool

	started time.Time
	status  atomic.Pointer[schema.Status] // latest status, for the control service
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
		msg, err := schema.DecodeSubject(m.Subject, m.Data)
		est, ok := msg.(*schema.EstimateMsg)
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

// run runs the pipeline on the opened device p.src.
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
	if err := p.setupEvents(&first); err != nil {
		p.sorter.Close()
		return err
	}
	defer func() {
		p.sorter.Close() // the last segment's (segment.go)
		if p.viewSorter != nil {
			p.viewSorter.Close()
		}
	}()
	p.thresh.Store(math.Float64bits(p.sorter.Config().Threshold))
	if err := p.armStimulation(first.Channels); err != nil {
		return err
	}
	stopNATS, err := p.startNATS(ctx)
	if err != nil {
		return err
	}
	defer stopNATS()
	p.announce(&first)
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
	stopRemote, err := p.startRemote(ctx, &first) // remote.go
	if err != nil {
		return err
	}
	defer stopRemote()

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
		readErr <- p.read(ctx, first, items, free)
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

// startNATS connects the publisher (starting the embedded server), saves
// its credentials, starts the control service and subscribes to the
// behaviour subject. stop undoes it all in reverse order.
func (p *Rig) startNATS(ctx context.Context) (_ func(), err error) {
	var undo []func()
	stop := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if p.pub, err = stream.NewPublisher(ctx, p.cfg.NATS); err != nil {
		return nil, err
	}
	undo = append(undo, func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		if err := p.pub.Close(cctx); err != nil {
			p.log.Warn("closing NATS", "err", err)
		}
	})
	removeCreds, err := p.saveCredentials()
	if err != nil {
		return nil, err
	}
	undo = append(undo, removeCreds)
	p.warnOpenControl()
	svcOpts := stream.ServiceOptions{Version: p.cfg.Version, Audit: p.audit}
	if creds := p.pub.Credentials(); creds != nil {
		svcOpts.Roles, svcOpts.RequireVerified = creds.Roles(), true
	}
	svc, err := stream.StartService(p.pub.Conn(), p.cfg.NATS.Rig, p, svcOpts)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { svc.Stop() })
	if p.cfg.BehaviourSubject != "" {
		unsub, err := p.subscribeBehaviour(p.cfg.BehaviourSubject)
		if err != nil {
			return nil, fmt.Errorf("--behaviour-subject: %w", err)
		}
		undo = append(undo, func() { unsub() })
		p.src.hasBehaviour = true
	}
	return stop, nil
}

// announce says what runs where, for the person at the bench.
func (p *Rig) announce(first *device.Block) {
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
}

// read is the reader goroutine: from the first block on, it copies each
// block into a recycled buffer (from free) and queues it with its
// segment and behaviour, records the raw stream, and stops at
// Config.Duration of samples received, at the device's end or error, or
// when ctx ends.
func (p *Rig) read(ctx context.Context, first device.Block, items chan<- item, free <-chan []int16) error {
	b := first
	// Config.Duration counts samples received, not the device counter,
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
			return ctx.Err()
		}
		if p.rec != nil && len(b.Samples) > 0 {
			if err := p.rec.write(&b, it.segment); err != nil {
				return err
			}
		}
		got += b.End() - b.First // samples, or the span of spike events or features
		p.received.Store(got)
		if want > 0 && got >= want {
			return io.EOF
		}
		var err error
		if b, err = p.src.Next(ctx); err != nil {
			return err
		}
	}
}

// Info, Stats, Refit, SetThreshold and DeviceCommand implement
// stream.Controller for the control service.

// templateEvery is the period, in seconds of device time, of the full
// template snapshots that late subscribers start from.
const templateEvery = 10.0

// BehaviourModel is the model name under which the measured (or, for the
// simulator, the true) behaviour is published: spikeline.<rig>.decode.behaviour.
const BehaviourModel = "behaviour"
