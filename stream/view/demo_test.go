package view_test

import (
	"context"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
	"github.com/spikeline/spikeline/stream/view"
)

// TestLoadDemo serves a view of a synthetic large rig for a manual look at
// how the page copes (it is not run by default):
//
//	SPIKELINE_VIEW_DEMO=127.0.0.1:8090 SPIKELINE_VIEW_DEMO_CHANNELS=1024 \
//	    go test ./stream/view -run TestLoadDemo -timeout 0
//
// It publishes through a real nats-server, in real time, what a rig of
// that many channels would: 1 ms spike batches at about 10 spikes/s per
// channel (four units per channel, a burst of synchrony every few
// seconds), a decoder estimate every 20 ms next to a "behaviour" trace,
// a status a second with per-channel noise and rates, templates, and a
// gap of 5 ms every 7 s. The data are made up; the point is the volume.
// SPIKELINE_VIEW_DEMO_SECONDS sets how long it runs (default 120).
func TestLoadDemo(t *testing.T) {
	addr := os.Getenv("SPIKELINE_VIEW_DEMO")
	if addr == "" {
		t.Skip("set SPIKELINE_VIEW_DEMO=host:port to serve the demo view")
	}
	channels, seconds := 1024, 120
	if s := os.Getenv("SPIKELINE_VIEW_DEMO_CHANNELS"); s != "" {
		channels, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("SPIKELINE_VIEW_DEMO_SECONDS"); s != "" {
		seconds, _ = strconv.Atoi(s)
	}
	srv := streamtest.RunServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
	defer cancel()
	pub, err := stream.NewPublisher(ctx, stream.Config{URLs: []string{streamtest.URL(srv)}, Rig: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	v, err := view.New(view.Config{Rig: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := stream.NewClient(streamtest.Connect(t, srv)).Subscribe("demo", v.Handler(), stream.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	go v.Run(ctx)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: v}
	go hs.Serve(ln)
	defer hs.Close()
	t.Logf("demo view of %d channels on http://%s/ for %d s", channels, ln.Addr(), seconds)
	v.SetInfo(stream.Info{Rig: "demo", Device: "synthetic", Channels: channels, Rate: 30000, Models: []string{"behaviour", "kalman"}})

	const rate = 30000.0
	rng := rand.New(rand.NewPCG(7, 11))
	units := 4 * channels
	tpl := make([]sort.Template, 0, units)
	for u := 1; u <= units; u++ {
		w := make([]float32, 48)
		peak := -float32(40 + rng.IntN(200))
		for i := range w {
			x := float64(i-14) / 4
			w[i] = peak * float32(math.Exp(-x*x)-0.35*math.Exp(-(x-2.5)*(x-2.5)/3))
		}
		tpl = append(tpl, sort.Template{Unit: int32(u), Channel: int32((u - 1) % channels), Pre: 14, Waveform: w, PeakUV: peak, Count: rng.IntN(5000)})
	}
	pub.PublishTemplates(0, rate, tpl, true)
	noise, rates := make([]float32, channels), make([]float32, channels)
	for c := range noise {
		noise[c] = 6 + 3*rng.Float32()
	}
	var sample uint64
	var spikes []sort.Spike
	var counts = make([]int, channels)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for ctx.Err() == nil {
		<-tick.C
		due := uint64(time.Since(start).Seconds() * rate)
		for sample+30 <= due {
			first, end := sample, sample+30
			sec := float64(first) / rate
			spikes = spikes[:0]
			p := 10.0 / 1000 // spikes per channel per ms
			if math.Mod(sec, 4) < 0.05 {
				p *= 8 // synchrony
			}
			for c := range channels {
				if rng.Float64() < p {
					u := int32(c + 1 + channels*rng.IntN(4))
					if rng.IntN(10) == 0 {
						u = 0
					}
					spikes = append(spikes, sort.Spike{Sample: first + uint64(rng.IntN(30)), Channel: int32(c), Unit: u, Amplitude: -80})
					counts[c]++
				}
			}
			if first/30%7000 == 6999 { // a 5 ms gap every 7 s
				pub.PublishEvents(end, rate, []schema.Event{stream.LinkEvent(device.Event{Kind: device.EventGap, Sample: end + 150, Count: 150})})
				sample = end + 150
				continue
			}
			pub.PublishSpikes(first, end, rate, spikes)
			if end%600 == 0 {
				vx, vy := 20*math.Sin(sec*1.3)+5*math.Sin(sec*4.1), 15*math.Cos(sec*0.9)
				pub.PublishEstimate("behaviour", decode.Estimate{End: end, Rate: rate, Names: []string{"vx", "vy"}, Values: []float64{vx, vy}})
				pub.PublishEstimate("kalman", decode.Estimate{End: end, Rate: rate, Names: []string{"vx", "vy"},
					Values: []float64{0.8*vx + 3*rng.NormFloat64(), 0.8*vy + 3*rng.NormFloat64()}})
			}
			if end%30000 == 0 {
				for c := range rates {
					rates[c] = float32(counts[c])
					counts[c] = 0
				}
				st := &schema.Status{Header: schema.Header{Sample: end, Rate: rate},
					Link:   schema.LinkStats{Frames: end / 30, Samples: end, Bytes: end / 30 * uint64(channels*60+32)},
					Uptime: time.Since(start), SampleRate: rate, SpikeRate: 10 * float64(channels),
					LatencyP50: 900 * time.Microsecond, LatencyP99: 2500 * time.Microsecond, LatencyMax: 4 * time.Millisecond,
					Threshold: 4.5, NoiseUV: noise, RateHz: rates}
				pub.PublishStatus(st)
			}
			sample = end
		}
	}
}
