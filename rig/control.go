package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

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

func (p *Rig) Stats() schema.Status {
	if s := p.status.Load(); s != nil {
		return *s
	}
	return schema.Status{}
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
	if p.cfg.Shards != nil {
		return stream.Refused(errors.New("the threshold of remote sorting is the shards' configuration, given at their lease; restart the run with --threshold"))
	}
	if err := p.sorterNow.Load().SetThreshold(sigma); err != nil {
		return err
	}
	p.thresh.Store(math.Float64bits(sigma))
	at := p.done.Load()
	p.pub.PublishEvents(at, p.sorterNow.Load().Rate(), []schema.Event{{Kind: schema.EventThreshold, Sample: at, Unit: -1, Channel: -1, Value: sigma}})
	p.log.Info("detection threshold changed", "sigma", sigma)
	return nil
}

func (p *Rig) DeviceCommand(ctx context.Context, op string, args json.RawMessage) (any, error) {
	return p.src.command(ctx, op, args)
}
