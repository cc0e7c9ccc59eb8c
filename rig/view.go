package rig

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/view"
)

// startView starts the live page of a running pipeline: it subscribes to
// the pipeline's own subjects over its NATS connection for spikes,
// status, events, templates and decoder output, and takes the rest in
// process (view.Live): the band-passed trace and waveforms of the
// selected channels from the sorter, saturation and flat lines from the
// raw blocks (feedView), and the decoder's R². The handler serves the
// page under "/"; stop ends it.
func (p *Rig) startView(ctx context.Context) (handler http.Handler, stop func(), err error) {
	cfg := p.cfg.View
	cfg.Rig = p.cfg.NATS.Rig
	cfg.Logger = p.log
	cfg.MaxBrowsers = p.cfg.MaxBrowsers
	v, err := view.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	lc := p.cfg.Live
	lc.Channels, lc.Rate = p.sorter.Channels(), p.sorter.Rate()
	lc.Sign = p.sorter.Config().Sign
	lc.Threshold = func() float64 { return math.Float64frombits(p.thresh.Load()) }
	lc.R2, lc.Outputs, lc.R2Window = p.decoderR2, p.cfg.Outputs, time.Duration(r2Window*float64(time.Second))
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
func (p *Rig) feedView(b *device.Block, spikes []sort.Spike) {
	if l := p.live; l != nil {
		l.Feed(b, spikes)
	}
}
