package main

import (
	"context"
	"flag"
	"net/http"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/view"
)

// runViewOptions configures the live page that 'spikeline run' serves on
// its --http address.
type runViewOptions struct {
	cfg view.Config
}

// registerRunViewFlags registers the page's flags on run's flag set and
// returns the function that checks them after parsing.
func registerRunViewFlags(fs *flag.FlagSet) func() (runViewOptions, error) {
	frameRate := fs.Float64("view-frame-rate", view.DefaultFrameRate, "frames per second sent to each browser by the live page (1-120)")
	window := fs.Duration("view-window", view.DefaultWindow, "device time shown by the live page's raster and decoder traces (1s-10m)")
	return func() (runViewOptions, error) {
		o := runViewOptions{cfg: view.Config{FrameRate: *frameRate, Window: *window, Rig: stream.DefaultRig}}
		if err := o.cfg.Validate(); err != nil {
			return o, usageErrorf("%v", err)
		}
		return o, nil
	}
}

// startView starts the live page of a running pipeline: it subscribes to
// the pipeline's own subjects over its NATS connection. The handler serves
// the page under "/"; stop ends it.
func (p *pipeline) startView(ctx context.Context) (h http.Handler, stop func(), err error) {
	cfg := p.opts.view.cfg
	cfg.Rig = p.opts.nats.Rig
	cfg.Logger = p.log
	v, err := view.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	sub, err := stream.NewClient(p.pub.Conn()).Subscribe(cfg.Rig, v.Handler(), stream.SubscribeOptions{})
	if err != nil {
		return nil, nil, err
	}
	v.SetInfo(p.Info())
	vctx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { v.Run(vctx); close(ran) }()
	return view.LoopbackHosts(v), func() {
		sub.Stop()
		cancel()
		<-ran
	}, nil
}

// feedView gives the page what only the pipeline has (called by the
// sorter loop for every block; it must be cheap).
func (p *pipeline) feedView(b *device.Block, spikes []sort.Spike) {}
