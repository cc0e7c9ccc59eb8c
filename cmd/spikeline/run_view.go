package main

import (
	"context"
	"flag"
	"math"
	"net/http"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/view"
)

// runViewOptions configures the live page that 'spikeline run' serves on
// its --http address.
type runViewOptions struct {
	cfg  view.Config
	live view.LiveConfig // Channels, Rate, Sign, Threshold and R2 are filled in by startView
}

// registerRunViewFlags registers the page's flags on run's flag set and
// returns the function that checks them after parsing.
func registerRunViewFlags(fs *flag.FlagSet) func() (runViewOptions, error) {
	frameRate := fs.Float64("view-frame-rate", view.DefaultFrameRate, "frames per second sent to each browser by the live page (1-120)")
	window := fs.Duration("view-window", view.DefaultWindow, "device time shown by the live page's raster and decoder traces (1s-10m)")
	trace := fs.Duration("view-trace", view.DefaultTraceSpan, "device time of the band-passed trace of the selected channels on the live page (10ms up to 65536 samples)")
	waveforms := fs.Int("view-waveforms", view.DefaultWaveforms, "recent waveforms drawn per selected channel on the live page (1-5000)")
	maxWatch := fs.Int("view-max-channels", view.DefaultMaxWatch, "channels whose trace and waveforms the live page follows at once, over all browsers (1-64)")
	detailRate := fs.Float64("view-detail-rate", view.DefaultDetailRate, "updates per second of the live page's trace and waveforms (1-60)")
	return func() (runViewOptions, error) {
		o := runViewOptions{cfg: view.Config{FrameRate: *frameRate, Window: *window, Rig: stream.DefaultRig}}
		if err := (view.Config{Rig: stream.DefaultRig, FrameRate: *frameRate}).Validate(); err != nil {
			return o, usageErrorf("--view-frame-rate: %v", err)
		}
		if err := (view.Config{Rig: stream.DefaultRig, Window: *window}).Validate(); err != nil {
			return o, usageErrorf("--view-window: %v", err)
		}
		if err := o.cfg.Validate(); err != nil {
			return o, usageErrorf("%v", err)
		}
		switch {
		case *trace < 10*time.Millisecond:
			return o, usageErrorf("--view-trace %v: want at least 10ms", *trace)
		case *waveforms < 1 || *waveforms > 5000:
			return o, usageErrorf("--view-waveforms %d: want 1 to 5000", *waveforms)
		case *maxWatch < 1 || *maxWatch > 64:
			return o, usageErrorf("--view-max-channels %d: want 1 to 64", *maxWatch)
		case !(*detailRate >= 1 && *detailRate <= 60):
			return o, usageErrorf("--view-detail-rate %g: want 1 to 60", *detailRate)
		}
		// The longest trace the sorter keeps depends on the sample rate,
		// known once the device speaks: startView shortens a longer one.
		o.live = view.LiveConfig{TraceSpan: *trace, Waveforms: *waveforms, MaxWatch: *maxWatch,
			MaxSelect: min(view.DefaultMaxSelect, *maxWatch), DetailRate: *detailRate}
		return o, nil
	}
}

// startView starts the live page of a running pipeline: it subscribes to
// the pipeline's own subjects over its NATS connection for spikes,
// status, events, templates and decoder output, and takes the rest in
// process (view.Live): the band-passed trace and waveforms of the
// selected channels from the sorter, saturation and flat lines from the
// raw blocks (feedView), and the decoder's R². The handler serves the
// page under "/"; stop ends it.
func (p *pipeline) startView(ctx context.Context) (handler http.Handler, stop func(), err error) {
	cfg := p.opts.view.cfg
	cfg.Rig = p.opts.nats.Rig
	cfg.Logger = p.log
	cfg.MaxBrowsers = p.opts.sec.maxStreams
	v, err := view.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	lc := p.opts.view.live
	lc.Channels, lc.Rate = p.sorter.Channels(), p.sorter.Rate()
	lc.Sign = p.sorter.Config().Sign
	lc.Threshold = func() float64 { return math.Float64frombits(p.thresh.Load()) }
	lc.R2, lc.Outputs, lc.R2Window = p.decoderR2, p.opts.outputs, time.Duration(r2Window*float64(time.Second))
	if longest := time.Duration(float64(sort.WatchLen) / lc.Rate * float64(time.Second)); lc.TraceSpan > longest {
		p.log.Warn("--view-trace longer than the sorter keeps; shortened", "view-trace", lc.TraceSpan, "to", longest.Truncate(time.Millisecond))
		lc.TraceSpan = longest.Truncate(time.Millisecond)
	}
	live, err := v.AttachLive(p.sorter, lc)
	if err != nil {
		return nil, nil, err
	}
	sub, err := stream.NewClient(p.pub.Conn()).Subscribe(cfg.Rig, v.Handler(), stream.SubscribeOptions{})
	if err != nil {
		return nil, nil, err
	}
	v.SetInfo(p.Info())
	p.live = live
	vctx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { v.Run(vctx); close(ran) }()
	// startHTTP puts the Host check in front of every path.
	var h http.Handler = v
	return h, func() {
		sub.Stop()
		cancel()
		<-ran
	}, nil
}

// feedView gives the page what only the pipeline has (called by the
// sorter loop for every block; view.Live.Feed does not allocate and holds
// a lock only to append the spikes of the few watched channels).
func (p *pipeline) feedView(b *device.Block, spikes []sort.Spike) {
	if l := p.live; l != nil {
		l.Feed(b, spikes)
	}
}
