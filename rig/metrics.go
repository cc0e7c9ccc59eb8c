package rig

import (
	"math"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spikeline/spikeline/stream/schema"
)

// runCollector exports a running pipeline to Prometheus. Everything is
// read at scrape time from counters the pipeline keeps anyway, so metrics
// cost nothing on the hot path. Link counters come from the latest status
// snapshot (every --status-every).
type runCollector struct{ p *Rig }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("spikeline_"+name, help, labels, nil)
}

var (
	mSamples      = desc("samples_total", "Samples per channel received from the device.")
	mChannels     = desc("channels", "Channels of the device.")
	mRate         = desc("sample_rate_hz", "Nominal sample rate of the device.")
	mThroughput   = desc("throughput_samples_per_second", "Samples per channel per second through the sorter over the last status period (the sample rate when keeping up).")
	mLink         = desc("link_total", "Link counters since start: "+strings.Join(schema.LinkCounters[:], ", ")+".", "counter")
	mSpikes       = desc("spikes_total", "Spikes detected.")
	mSorted       = desc("sorted_spikes_total", "Spikes assigned to a unit.")
	mUnits        = desc("units", "Units (templates) the sorter has now.")
	mLearned      = desc("learning_passes_total", "Template learning passes completed.")
	mSpikeRate    = desc("spike_rate_hz", "Spikes per second, all channels, over the last status period.")
	mLatency      = desc("latency_seconds", "Block received to spikes handed to the publisher, over the last status period.", "quantile")
	mQueue        = desc("queue_blocks", "Blocks waiting between the device and the sorter.")
	mThreshold    = desc("threshold_sigma", "Detection threshold in noise SDs.")
	mNATS         = desc("nats_messages_total", "NATS messages: sent, dropped (publish queue full) and refused (errors).", "result")
	mNATSQueued   = desc("nats_queued_messages", "Messages waiting in the publish queue.")
	mNATSConn     = desc("nats_connected", "1 while connected to NATS.")
	mDecoderR2    = desc("decoder_r2", "Decoder R² against the true or measured behaviour over the last 30 s, per output (absent before the decoder is fitted or without behaviour).", "output")
	mDecoderReady = desc("decoder_ready", "1 once a decoder is producing estimates.")
)

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mSamples, mChannels, mRate, mThroughput, mLink, mSpikes, mSorted, mUnits,
		mLearned, mSpikeRate, mLatency, mQueue, mThreshold, mNATS, mNATSQueued, mNATSConn, mDecoderR2, mDecoderReady} {
		ch <- d
	}
}

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(mSamples, p.received.Load())
	sorter := p.sorterNow.Load() // it changes at a format change
	gauge(mChannels, float64(sorter.Channels()))
	gauge(mRate, sorter.Rate())
	gauge(mThreshold, math.Float64frombits(p.thresh.Load()))
	gauge(mQueue, float64(p.queued()))
	st := sorter.Stats()
	counter(mSpikes, st.Spikes)
	counter(mSorted, st.Sorted)
	counter(mLearned, st.Learned)
	gauge(mUnits, float64(st.Units))
	if s := p.status.Load(); s != nil {
		l := s.Link
		for i, v := range l.Counters() {
			counter(mLink, *v, schema.LinkCounters[i])
		}
		gauge(mThroughput, s.SampleRate)
		gauge(mSpikeRate, s.SpikeRate)
		gauge(mLatency, s.LatencyP50.Seconds(), "0.5")
		gauge(mLatency, s.LatencyP99.Seconds(), "0.99")
		gauge(mLatency, s.LatencyMax.Seconds(), "1")
	}
	ps := p.pub.Stats()
	counter(mNATS, ps.Sent, "sent")
	counter(mNATS, ps.Dropped, "dropped")
	counter(mNATS, ps.Errors, "refused")
	gauge(mNATSQueued, float64(ps.Queued))
	gauge(mNATSConn, b2f(ps.Connected))
	r2, ready := p.decoderR2()
	gauge(mDecoderReady, b2f(ready))
	for i, name := range p.cfg.Outputs {
		if i < len(r2) && !math.IsNaN(r2[i]) {
			gauge(mDecoderR2, r2[i], name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
