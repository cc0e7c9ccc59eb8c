package rig

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/spikeline/spikeline/stream/schema"
)

// summary prints what the run did, for the person at the bench.
func (p *Rig) summary() {
	p.line.end()
	st, l, ps := p.sorting().Stats(), p.src.stats(), p.pub.Stats()
	fmt.Fprintf(p.stdout, "spikeline: %.1f s of device time on %d channels; %d spikes, %d sorted into %d units\n",
		float64(p.received.Load())/p.sorter.Rate(), p.sorter.Channels(), st.Spikes, st.Sorted, st.Units)
	fmt.Fprintf(p.stdout, "spikeline: link: %d frames, %d CRC errors, %d bytes skipped, %d gaps (%d samples lost), %d resets, %d reconnects\n",
		l.Frames, l.CRCErrors, l.SkippedBytes, l.Gaps, l.LostSamples, l.Resets, l.Reconnects)
	fmt.Fprintf(p.stdout, "spikeline: NATS: %d messages sent, %d dropped, %d refused\n", ps.Sent, ps.Dropped, ps.Errors)
	if n := p.behDropped.Load() + p.behRejected.Load(); n > 0 {
		fmt.Fprintf(p.stdout, "spikeline: behaviour: %d samples dropped, %d messages rejected\n", p.behDropped.Load(), p.behRejected.Load())
	}
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
	st := &schema.Status{
		Header:    schema.Header{Sample: sample, Rate: rate},
		Link:      schema.LinkStats(p.src.stats()),
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
	st.NoiseUV = p.sorting().Noise(nil)
	p.pub.PublishStatus(st)
	p.status.Store(st)
	w.reset(len(w.counts))
	if el >= p.cfg.StatusEvery.Seconds()/2 { // not the short last window at the end
		r2, _ := p.decoderR2()
		p.line.show(st, p.sorter.Channels(), int(p.units.Load()), p.cfg.Outputs, r2, p.calibrating.Load())
	}
}
