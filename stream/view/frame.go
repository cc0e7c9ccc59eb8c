package view

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// Num is a number sent to the browser: five significant digits, and null
// for NaN and infinities (which JSON cannot carry).
type Num float64

// MarshalJSON encodes n.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 5, 64), nil
}

// UnmarshalJSON decodes n; null becomes NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = Num(f)
	return err
}

// Frame is the data of one "frame" event: what arrived in one frame
// period (1/FrameRate).
type Frame struct {
	Seq    uint64  `json:"seq"`
	Time   int64   `json:"t"`      // host time the frame was built, Unix ms
	Rate   float64 `json:"rate"`   // device sample rate, Hz (0 until known)
	Sample uint64  `json:"sample"` // highest device sample index seen so far

	Spikes        *SpikesJSON     `json:"spikes,omitempty"`
	Estimates     []EstimatesJSON `json:"est,omitempty"`
	Status        *StatusJSON     `json:"status,omitempty"`
	Probe         *ProbeJSON      `json:"probe,omitempty"` // with every status
	Events        []EventJSON     `json:"events,omitempty"`
	EventsDropped uint64          `json:"events_dropped,omitempty"` // events beyond MaxEvents in this frame
	View          ViewJSON        `json:"view"`
}

// SpikesJSON holds a frame's spikes as parallel arrays: spike i is at
// device sample Base+Offset[i] on Channel[i], unit Unit[i].
type SpikesJSON struct {
	First   uint64   `json:"first"`   // first sample covered by the frame's batches
	End     uint64   `json:"end"`     // one past the last sample covered
	Batches uint64   `json:"batches"` // spike batches in the frame
	N       uint64   `json:"n"`       // spikes in the frame; more than len(Offset) when sampled
	Base    uint64   `json:"base"`
	Offset  []uint64 `json:"off"`
	Channel []int32  `json:"ch"`
	Unit    []int32  `json:"unit"`
	// Publish-to-view latency of the frame's batches (publisher's clock
	// against the view's: meaningful on one host).
	LatencyMeanMs Num `json:"lat_mean_ms"`
	LatencyMaxMs  Num `json:"lat_max_ms"`
}

// EstimatesJSON holds one decoder model's outputs of a frame.
type EstimatesJSON struct {
	Model   string   `json:"model"`
	Truth   bool     `json:"truth,omitempty"` // the true behaviour (Config.Truth)
	Names   []string `json:"names"`
	Sample  []uint64 `json:"sample"` // bin end sample of each estimate
	Values  [][]Num  `json:"values"` // Values[i][k]: output Names[k] of estimate i
	Dropped uint64   `json:"dropped,omitempty"`
}

// LinkJSON is schema.LinkStats for the browser (same JSON names).
type LinkJSON = schema.LinkStats

// StatusJSON is a schema.Status for the browser; durations in ms.
type StatusJSON struct {
	Sample         uint64   `json:"sample"`
	Rate           float64  `json:"rate"`
	Received       int64    `json:"received"` // host time the view received it, Unix ms
	TransitMs      Num      `json:"transit_ms"`
	Link           LinkJSON `json:"link"`
	UptimeS        Num      `json:"uptime_s"`
	Throughput     Num      `json:"throughput"` // samples per channel per second
	SpikeRate      Num      `json:"spike_rate"` // spikes per second, all channels
	LatencyP50Ms   Num      `json:"lat_p50_ms"`
	LatencyP99Ms   Num      `json:"lat_p99_ms"`
	LatencyMaxMs   Num      `json:"lat_max_ms"`
	PipelineDrops  uint64   `json:"pipeline_drops"`
	Sent           uint64   `json:"sent"`
	PublishDropped uint64   `json:"publish_dropped"`
	PublishErrors  uint64   `json:"publish_errors"`
	Reconnects     uint64   `json:"nats_reconnects"`
	Threshold      Num      `json:"threshold"`
	NoiseUV        []Num    `json:"noise_uv"`
	RateHz         []Num    `json:"rate_hz"`
}

// ProbeJSON lists the channels that need a look, for the probe grid. It
// comes with every status. Silent, Quiet and Noisy are worked out by every
// view; Saturated and Flat need the raw samples, which only the view
// inside "spikeline run" sees (RawChecked).
type ProbeJSON struct {
	Channels   int     `json:"channels"`
	Silent     []int32 `json:"silent"`    // no spike within the window (once a window has passed)
	Quiet      []int32 `json:"quiet"`     // noise ≈ 0 (below QuietBelow × the median): open or shorted input
	Noisy      []int32 `json:"noisy"`     // noise above NoisyAbove × the median: floating input, pick-up
	Saturated  []int32 `json:"saturated"` // raw samples at the int16 rails within the last second
	Flat       []int32 `json:"flat"`      // raw samples constant for at least 0.25 s
	MedianUV   Num     `json:"median_noise_uv"`
	RawChecked bool    `json:"raw_checked"`
}

// Noise ratios to the median channel beyond which a channel is reported
// quiet or noisy (ProbeJSON).
const (
	QuietBelow = 0.1
	NoisyAbove = 5.0
)

// EventJSON is one line of the events log.
type EventJSON struct {
	ID      uint64 `json:"id"` // increasing; the page skips ids it has shown
	Time    int64  `json:"t"`  // host time the view received it, Unix ms
	Kind    string `json:"kind"`
	Sample  uint64 `json:"sample"`
	Count   uint64 `json:"count,omitempty"`
	Unit    int32  `json:"unit"`
	Channel int32  `json:"channel"`
	Value   Num    `json:"value,omitempty"`
	Text    string `json:"text"`
	Source  string `json:"source,omitempty"` // "view" for the view's own notes
}

// TemplatesJSON is the current set of unit templates.
type TemplatesJSON struct {
	Sample uint64         `json:"sample"`
	Rate   float64        `json:"rate"`
	Total  int            `json:"total"` // templates known; len(Units) is at most MaxTemplates
	Units  []TemplateJSON `json:"units"`
}

// TemplateJSON is one unit's template (µV, Pre samples before the
// extremum).
type TemplateJSON struct {
	Unit     int32 `json:"unit"`
	Channel  int32 `json:"channel"`
	Pre      int   `json:"pre"`
	PeakUV   Num   `json:"peak_uv"`
	Count    int   `json:"count"`
	Waveform []Num `json:"w"`
}

// ViewJSON is the view's own counters (Stats) at the frame.
type ViewJSON struct {
	Spikes        uint64 `json:"spikes"`
	SpikesSampled uint64 `json:"spikes_sampled"`
	Undecodable   uint64 `json:"undecodable"`
	Clients       int    `json:"clients"`
	ClientDrops   uint64 `json:"client_drops"`
}

// Hello is the data of the first event a browser receives.
type Hello struct {
	Rig       string         `json:"rig"`
	Client    uint64         `json:"client"` // this browser's id, for POST /select
	Rate      float64        `json:"rate"`
	Sample    uint64         `json:"sample"`
	FrameRate float64        `json:"frame_rate"`
	WindowS   float64        `json:"window_s"`
	MaxSpikes int            `json:"max_spikes"`
	Truth     []string       `json:"truth"`
	Templates *TemplatesJSON `json:"templates,omitempty"`
	Info      *stream.Info   `json:"info,omitempty"` // from the rig's control service, when it answered
	Status    *StatusJSON    `json:"status,omitempty"`
	Probe     *ProbeJSON     `json:"probe,omitempty"`
	Live      *LiveJSON      `json:"live,omitempty"` // the in-process detail ("spikeline run"); absent in "spikeline view"
	Events    []EventJSON    `json:"events"`
}

// Lag is the data of a "lag" event.
type Lag struct {
	Dropped uint64 `json:"dropped"` // frames this browser missed so far
}

func ms(d time.Duration) Num { return Num(float64(d) / 1e6) }

func nums(dst []Num, src []float32) []Num {
	if src == nil {
		return nil
	}
	dst = dst[:0]
	for _, x := range src {
		dst = append(dst, Num(x))
	}
	return dst
}

func statusJSON(m *schema.Status, received time.Time) *StatusJSON {
	s := &StatusJSON{
		Sample: m.Sample, Rate: m.Rate, Received: received.UnixMilli(),
		Link:    m.Link,
		UptimeS: Num(m.Uptime.Seconds()), Throughput: Num(m.SampleRate), SpikeRate: Num(m.SpikeRate),
		LatencyP50Ms: ms(m.LatencyP50), LatencyP99Ms: ms(m.LatencyP99), LatencyMaxMs: ms(m.LatencyMax),
		PipelineDrops: m.PipelineDrops, Sent: m.Sent, PublishDropped: m.PublishDropped,
		PublishErrors: m.PublishErrors, Reconnects: m.Reconnects, Threshold: Num(m.Threshold),
		NoiseUV: nums(make([]Num, 0, len(m.NoiseUV)), m.NoiseUV),
		RateHz:  nums(make([]Num, 0, len(m.RateHz)), m.RateHz),
	}
	if m.Published > 0 {
		s.TransitMs = ms(received.Sub(m.PublishTime()))
	}
	return s
}

// probe lists the channels of the probe grid's markers.
func (v *View) probe(st *schema.Status, silent []int32) *ProbeJSON {
	n := max(len(st.NoiseUV), len(st.RateHz))
	pr := &ProbeJSON{Channels: n, Silent: slices.Clone(silent), Quiet: []int32{}, Noisy: []int32{}, MedianUV: Num(math.NaN())}
	if pr.Silent == nil {
		pr.Silent = []int32{}
	}
	if len(st.NoiseUV) > 0 {
		s := slices.Clone(st.NoiseUV)
		slices.Sort(s)
		med := s[len(s)/2]
		pr.MedianUV = Num(med)
		if med > 0 {
			for c, x := range st.NoiseUV {
				switch {
				case x < QuietBelow*med:
					pr.Quiet = append(pr.Quiet, int32(c))
				case x > NoisyAbove*med:
					pr.Noisy = append(pr.Noisy, int32(c))
				}
			}
		}
	}
	if v.live != nil {
		pr.Saturated, pr.Flat = v.live.railFlags()
		pr.RawChecked = true
	} else {
		pr.Saturated, pr.Flat = []int32{}, []int32{}
	}
	return pr
}

func eventJSON(id uint64, now int64, e schema.Event) EventJSON {
	return EventJSON{ID: id, Time: now, Kind: e.Kind.String(), Sample: e.Sample, Count: e.Count,
		Unit: e.Unit, Channel: e.Channel, Value: Num(e.Value), Text: e.String()}
}

// buildFrame turns p into a Frame. It copies what it keeps, so p can be
// reused.
func (v *View) buildFrame(now time.Time, rate float64, last uint64, p *pending) *Frame {
	f := &Frame{Seq: v.frames.Load() + 1, Time: now.UnixMilli(), Rate: rate, Sample: last}
	if p.batches > 0 {
		s := &SpikesJSON{First: p.first, End: p.end, Batches: p.batches, N: p.seen,
			Offset: make([]uint64, len(p.spikes)), Channel: make([]int32, len(p.spikes)), Unit: make([]int32, len(p.spikes))}
		if len(p.spikes) > 0 {
			base := p.spikes[0].sample
			for _, pt := range p.spikes {
				base = min(base, pt.sample)
			}
			s.Base = base
			for i, pt := range p.spikes {
				s.Offset[i], s.Channel[i], s.Unit[i] = pt.sample-base, pt.channel, pt.unit
			}
		}
		if p.latN > 0 {
			s.LatencyMeanMs = ms(p.latSum / time.Duration(p.latN))
			s.LatencyMaxMs = ms(p.latMax)
		}
		f.Spikes = s
	}
	for model, mb := range p.models {
		if len(mb.points) == 0 && mb.over == 0 {
			continue
		}
		e := EstimatesJSON{Model: model, Truth: v.truth[model], Names: mb.names, Dropped: mb.over,
			Sample: make([]uint64, len(mb.points)), Values: make([][]Num, len(mb.points))}
		for i, pt := range mb.points {
			e.Sample[i] = pt.sample
			vals := make([]Num, len(pt.values))
			for k, x := range pt.values {
				vals[k] = Num(x)
			}
			e.Values[i] = vals
			mb.points[i].values = nil // let the message go
		}
		f.Estimates = append(f.Estimates, e)
	}
	slices.SortFunc(f.Estimates, func(a, b EstimatesJSON) int { return strings.Compare(a.Model, b.Model) })
	if p.status != nil {
		f.Status = statusJSON(p.status, p.statusAt)
		f.Probe = v.probe(p.status, p.silent)
	}
	if len(p.events) > 0 {
		f.Events = append([]EventJSON(nil), p.events...)
	}
	f.EventsDropped = p.evOver
	f.View = ViewJSON{Spikes: v.spikes.Load(), SpikesSampled: v.sampled.Load(), Undecodable: v.undecodable.Load(),
		Clients: v.hub.count(), ClientDrops: v.clientDrops.Load()}
	return f
}

// MarshalJSON encodes s.
func (s *SpikesJSON) MarshalJSON() ([]byte, error) {
	return s.appendJSON(make([]byte, 0, 160+len(s.Offset)*16)), nil
}

// appendJSON appends the JSON of s to b. The spike arrays are most of a
// frame's bytes; writing them directly instead of through encoding/json's
// reflection (and its re-validation of a Marshaler's output) cut the
// cost of a frame several-fold (BenchmarkFrame).
func (s *SpikesJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"first":`...)
	b = strconv.AppendUint(b, s.First, 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendUint(b, s.End, 10)
	b = append(b, `,"batches":`...)
	b = strconv.AppendUint(b, s.Batches, 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendUint(b, s.N, 10)
	b = append(b, `,"base":`...)
	b = strconv.AppendUint(b, s.Base, 10)
	b = append(b, `,"off":[`...)
	for i, v := range s.Offset {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, v, 10)
	}
	b = append(b, `],"ch":[`...)
	b = appendInts(b, s.Channel)
	b = append(b, `],"unit":[`...)
	b = appendInts(b, s.Unit)
	b = append(b, `],"lat_mean_ms":`...)
	m, _ := s.LatencyMeanMs.MarshalJSON()
	b = append(b, m...)
	b = append(b, `,"lat_max_ms":`...)
	m, _ = s.LatencyMaxMs.MarshalJSON()
	b = append(b, m...)
	return append(b, '}')
}

// frameEvent returns the "frame" Server-Sent Event of f, splicing the
// spikes written by appendJSON into encoding/json's output, in one
// buffer.
func frameEvent(f *Frame) []byte {
	sp := f.Spikes
	f.Spikes = nil
	j := mustJSON(f)
	f.Spikes = sp
	n := len(j) + 32
	if sp != nil {
		n += 200 + 24*len(sp.Offset)
	}
	b := make([]byte, 0, n)
	b = append(b, "event: frame\ndata: "...)
	if sp == nil {
		b = append(b, j...)
	} else {
		b = append(b, j[:len(j)-1]...) // without the closing brace
		b = append(b, `,"spikes":`...)
		b = sp.appendJSON(b)
		b = append(b, '}')
	}
	return append(b, "\n\n"...)
}

func appendInts(b []byte, v []int32) []byte {
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(x), 10)
	}
	return b
}
