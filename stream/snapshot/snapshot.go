package snapshot

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/view"
)

// Bounds of what a Collector keeps.
const (
	// maxEstimates bounds the estimates kept per decoder model (the
	// oldest half is dropped when reached): 90 min of 20 ms bins.
	maxEstimates = 1 << 18
	// maxStatus bounds the status messages kept (oldest half dropped).
	maxStatus = 1 << 14
)

// Channel markers of probe.png and snapshot.json (see docs/snapshot.md),
// named and judged as on the live page (view.ProbeJSON): quiet and noisy
// relative to the median noise of the channels shown.
const (
	MarkQuiet  = "quiet"  // noise below view.QuietBelow × the median: open or shorted input
	MarkNoisy  = "noisy"  // noise above view.NoisyAbove × the median: floating input, pick-up
	MarkSilent = "silent" // no spike detected during the snapshot
)

// Options say what a Collector keeps and how it names it.
type Options struct {
	Rig      string        // the rig collected
	URL      string        // the NATS server, for messages (redacted)
	Duration time.Duration // how long it collects, for messages
	Window   time.Duration // device time of spikes kept for the raster
	Channels []int         // the channels kept and shown (nil: all)
	Truth    string        // the decoder model that carries the behaviour
}

// trace is what one decoder model published during the snapshot.
type trace struct {
	names    []string
	ends     []uint64  // bin end samples, in arrival order
	values   []float64 // len(names) per estimate
	degraded []bool
}

// Collector gathers a rig's messages; the callbacks of the different
// subjects run on different goroutines, hence the lock.
type Collector struct {
	o      Options
	want   map[int]bool // nil: every channel
	start  time.Time
	window float64 // seconds of device time kept for the raster

	mu         sync.Mutex
	info       *stream.Info
	rate       float64
	counts     map[string]int // messages per subject kind
	decodeErrs int
	firstErr   string
	slow       int // slow-consumer errors: messages this subscriber lost

	haveEnd      bool
	firstSample  uint64 // first device sample covered by the spike batches
	lastEnd      uint64
	missed       int    // spike batches that did not follow the previous one (messages lost on the way)
	missedSample uint64 // device samples not covered because of them
	resets       int    // device counter went back
	spikes       []sort.Spike
	unitSpikes   map[int32]int
	unitChannel  map[int32]int32
	chanSpikes   map[int32]int
	spikeTotal   int

	templates map[int32]sort.Template
	statuses  []*schema.Status
	traces    map[string]*trace
	gaps      [][2]uint64    // [start, end) device samples lost, from gap events
	events    map[string]int // events per kind
}

// NewCollector returns a Collector that keeps what o says.
func NewCollector(o Options) *Collector {
	c := &Collector{o: o, start: time.Now(), window: o.Window.Seconds(),
		counts: map[string]int{}, unitSpikes: map[int32]int{}, unitChannel: map[int32]int32{},
		chanSpikes: map[int32]int{}, templates: map[int32]sort.Template{}, traces: map[string]*trace{},
		events: map[string]int{}}
	if o.Channels != nil {
		c.want = map[int]bool{}
		for _, ch := range o.Channels {
			c.want[ch] = true
		}
	}
	return c
}

func (c *Collector) wanted(ch int32) bool { return c.want == nil || c.want[int(ch)] }

// Note receives the NATS connection's log records (give it to the
// connection's logger): slow-consumer errors count as messages lost.
func (c *Collector) Note(kind, text string) {
	if strings.Contains(strings.ToLower(text), "slow consumer") {
		c.mu.Lock()
		c.slow++
		c.mu.Unlock()
	}
}

// AskInfo asks the rig's control service for its description until it
// answers or ctx ends; a rig without one just never answers.
func (c *Collector) AskInfo(ctx context.Context, nc *nats.Conn, rig string) {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var info stream.Info
		err := stream.Call(actx, nc, rig, stream.EndpointInfo, nil, &info)
		cancel()
		if err == nil {
			c.mu.Lock()
			c.info = &info
			c.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// Handler is what the collector subscribes with (stream.Client.Subscribe).
func (c *Collector) Handler() stream.Handler {
	return stream.Handler{
		Spikes:    c.onSpikes,
		Estimate:  c.onEstimate,
		Status:    c.onStatus,
		Events:    c.onEvents,
		Templates: c.onTemplates,
		Error: func(subject string, err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.decodeErrs++
			if c.firstErr == "" {
				c.firstErr = subject + ": " + err.Error()
			}
		},
	}
}

func (c *Collector) setRate(r float64) {
	if r > 0 {
		c.rate = r
	}
}

func (c *Collector) onSpikes(_ string, m *schema.SpikeBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts["spikes"]++
	c.setRate(m.Rate)
	switch {
	case !c.haveEnd:
		c.haveEnd = true
		c.firstSample = m.First()
	case m.First() > c.lastEnd:
		c.missed++
		c.missedSample += m.First() - c.lastEnd
	case m.First() < c.lastEnd:
		// The device counter went back (reset, reconnect): the raster
		// starts over.
		c.resets++
		c.spikes = c.spikes[:0]
		c.gaps = c.gaps[:0]
		c.firstSample = m.First()
	}
	c.lastEnd = m.End
	for _, s := range m.Spikes {
		if !c.wanted(s.Channel) {
			continue
		}
		c.spikes = append(c.spikes, s)
		c.spikeTotal++
		c.chanSpikes[s.Channel]++
		if s.Unit > 0 {
			c.unitSpikes[s.Unit]++
			c.unitChannel[s.Unit] = s.Channel
		}
	}
	// Keep the last window (trimmed when twice as much is held).
	if c.rate > 0 && len(c.spikes) > 1024 {
		keep := uint64(c.window * c.rate)
		if c.lastEnd > 2*keep && c.spikes[0].Sample < c.lastEnd-2*keep {
			from := c.lastEnd - keep
			i, _ := slices.BinarySearchFunc(c.spikes, from, func(s sort.Spike, t uint64) int { return cmp.Compare(s.Sample, t) })
			c.spikes = c.spikes[:copy(c.spikes, c.spikes[i:])]
		}
	}
}

func (c *Collector) onEstimate(_ string, m *schema.EstimateMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts["estimates"]++
	c.setRate(m.Rate)
	tr := c.traces[m.Model]
	if tr == nil || !slices.Equal(tr.names, m.Names) || (len(tr.ends) > 0 && m.Sample < tr.ends[len(tr.ends)-1]) {
		// New model, new outputs, or the device counter went back.
		tr = &trace{names: slices.Clone(m.Names)}
		c.traces[m.Model] = tr
	}
	if len(m.Values) != len(tr.names) {
		return
	}
	if len(tr.ends) >= maxEstimates {
		h := len(tr.ends) / 2
		tr.ends = tr.ends[:copy(tr.ends, tr.ends[h:])]
		tr.degraded = tr.degraded[:copy(tr.degraded, tr.degraded[h:])]
		tr.values = tr.values[:copy(tr.values, tr.values[h*len(tr.names):])]
	}
	tr.ends = append(tr.ends, m.Sample)
	tr.values = append(tr.values, m.Values...)
	tr.degraded = append(tr.degraded, m.Degraded())
}

func (c *Collector) onStatus(_ string, m *schema.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts["status"]++
	c.setRate(m.Rate)
	if len(c.statuses) >= maxStatus {
		c.statuses = c.statuses[:copy(c.statuses, c.statuses[len(c.statuses)/2:])]
	}
	c.statuses = append(c.statuses, m)
}

func (c *Collector) onEvents(_ string, m *schema.EventBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts["events"]++
	for _, e := range m.Events {
		c.events[e.Kind.String()]++
		if e.Kind == schema.EventKind(device.EventGap) && e.Count > 0 && len(c.gaps) < 1<<16 {
			c.gaps = append(c.gaps, [2]uint64{e.Sample - min(e.Sample, e.Count), e.Sample})
		}
	}
}

func (c *Collector) onTemplates(_ string, m *schema.TemplateBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts["templates"]++
	c.setRate(m.Rate)
	if m.Flags&schema.FlagFullSnapshot != 0 {
		clear(c.templates)
	}
	for _, t := range m.Templates {
		if c.wanted(t.Channel) {
			c.templates[t.Unit] = t
		}
	}
}

// Channel is one channel of snapshot.json and probe.png.
type Channel struct {
	Channel int     `json:"channel"`
	RateHz  float64 `json:"rate_hz"`            // mean detected spikes per second during the snapshot
	NoiseUV float64 `json:"noise_uv,omitempty"` // robust noise SD, latest status (0: unknown)
	Spikes  int     `json:"spikes"`             // spikes received during the snapshot
	Units   int     `json:"units"`              // sorted units with a template or spikes
	Marker  string  `json:"marker,omitempty"`   // quiet, noisy or silent (see docs/snapshot.md)
}

// Unit is one sorted unit.
type Unit struct {
	Unit    int32   `json:"unit"`
	Channel int32   `json:"channel"`
	Spikes  int     `json:"spikes"`            // during the snapshot
	PeakUV  float64 `json:"peak_uv,omitempty"` // template extremum
	SNR     float64 `json:"snr,omitempty"`     // |peak| / channel noise
}

// Output is the score of one decoder output.
type Output struct {
	Name string   `json:"name"`
	R2   *float64 `json:"r2"` // null: not enough paired bins or no variance
	Corr *float64 `json:"r"`
	Bins int      `json:"bins"` // bins paired with the behaviour
}

// Decoder is one decoder model.
type Decoder struct {
	Model     string   `json:"model"`
	Estimates int      `json:"estimates"`
	Degraded  int      `json:"degraded"`
	BinMS     float64  `json:"bin_ms"`
	Outputs   []Output `json:"outputs"`

	Time    []float64   `json:"-"` // s, bin centres
	Decoded [][]float64 `json:"-"` // per output, NaN where degraded
	Truth   [][]float64 `json:"-"` // per output, the behaviour at Time (nil: no behaviour)
}

// Health is the link and pipeline health.
type Health struct {
	SampleRate          float64          `json:"samples_per_s"`         // per channel, mean of the status messages
	NominalRate         float64          `json:"nominal_rate"`          // device sample rate
	SpikeRate           float64          `json:"spikes_per_s"`          // all channels
	LatencyP50MS        float64          `json:"latency_p50_ms"`        // latest status
	LatencyP99MS        float64          `json:"latency_p99_ms"`        // latest status
	LatencyMaxMS        float64          `json:"latency_max_ms"`        // largest during the snapshot
	Link                schema.LinkStats `json:"link"`                  // since the rig started (latest status)
	LinkDuring          schema.LinkStats `json:"link_during"`           // difference between the first and the last status
	PipelineDrops       uint64           `json:"pipeline_drops"`        // since start
	PublishDropped      uint64           `json:"publish_dropped"`       // rig side, since start
	PublishErrors       uint64           `json:"publish_errors"`        // rig side, since start
	NATSReconnects      uint64           `json:"nats_reconnects"`       // rig side, since start
	MissedBatches       int              `json:"missed_batches"`        // spike batches this snapshot did not receive
	MissedSamples       uint64           `json:"missed_samples"`        // device samples they covered
	SlowConsumer        int              `json:"slow_consumer"`         // NATS slow-consumer errors of this subscriber
	DecodeErrors        int              `json:"decode_errors"`         // messages that could not be decoded
	Resets              int              `json:"device_resets"`         // device counter went back during the snapshot
	Uptime              float64          `json:"uptime_s"`              // rig uptime, latest status
	DeviceSample        uint64           `json:"device_sample"`         // last device sample processed (latest status)
	DeviceSamplesDuring uint64           `json:"device_samples_during"` // device samples processed during the snapshot
	Threshold           float64          `json:"threshold_sd"`          // detection threshold
	Events              map[string]int   `json:"events,omitempty"`      // events received, per kind

	Series []*schema.Status `json:"-"` // the status messages, in arrival order
}

// Snapshot is what a Collector gathered, summarised: the numbers of
// snapshot.json and what its figures draw (plots.Snapshot).
type Snapshot struct {
	Rig          string         `json:"rig"`
	NATS         string         `json:"nats"`
	Device       string         `json:"device,omitempty"`
	Taken        time.Time      `json:"taken"`
	WallSeconds  float64        `json:"wall_seconds"`
	Rate         float64        `json:"sample_rate"`
	Channels     int            `json:"channels"` // on the device
	From         float64        `json:"from_s"`   // device time covered by the spikes, seconds
	To           float64        `json:"to_s"`
	Messages     map[string]int `json:"messages"`
	RateSource   string         `json:"rate_source"` // status or spikes
	ChannelStats []Channel      `json:"channel_stats"`
	Units        []Unit         `json:"units"`
	Decoders     []Decoder      `json:"decoders"`
	Truth        string         `json:"truth_model"`
	Health       *Health        `json:"health,omitempty"`
	Files        []string       `json:"files"`

	// What the figures draw besides the above.
	Spikes     []sort.Spike    `json:"-"` // the last Options.Window of spikes
	Templates  []sort.Template `json:"-"` // in unit order
	Noise      []float32       `json:"-"` // per device channel, µV (nil: unknown)
	Gaps       [][2]uint64     `json:"-"` // [start, end) device samples lost
	RasterFrom float64         `json:"-"` // s: start of the raster window
	Shown      []int           `json:"-"` // channels drawn
}

// Snapshot summarises what was collected so far. nc, the connection
// collected from, only explains an error when nothing arrived.
func (c *Collector) Snapshot(nc *nats.Conn) (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, n := range c.counts {
		total += n
	}
	if total == 0 {
		state := "connected"
		if nc != nil && !nc.IsConnected() {
			state = "not connected (" + nc.Status().String() + ")"
		}
		detail := ""
		if c.decodeErrs > 0 {
			detail = fmt.Sprintf("; %d undecodable messages, first: %s", c.decodeErrs, c.firstErr)
		}
		return nil, fmt.Errorf("no messages from rig %q on %s within %s (NATS %s)%s: is 'spikeline run --rig %s' running there?",
			c.o.Rig, c.o.URL, c.o.Duration, state, detail, c.o.Rig)
	}
	s := &Snapshot{Rig: c.o.Rig, NATS: c.o.URL, Taken: time.Now().UTC(), WallSeconds: time.Since(c.start).Seconds(),
		Rate: c.rate, Messages: copyCounts(c.counts), Truth: c.o.Truth}
	if c.info != nil {
		s.Device = c.info.Device
		s.Channels = c.info.Channels
		if s.Rate == 0 {
			s.Rate = c.info.Rate
		}
	}
	var last *schema.Status
	if n := len(c.statuses); n > 0 {
		last = c.statuses[n-1]
		s.Channels = max(s.Channels, len(last.NoiseUV), len(last.RateHz))
		s.Noise = last.NoiseUV
	}
	for ch := range c.chanSpikes {
		s.Channels = max(s.Channels, int(ch)+1)
	}
	for _, t := range c.templates {
		s.Channels = max(s.Channels, int(t.Channel)+1)
	}
	rate := max(s.Rate, 1)
	if c.haveEnd {
		s.From, s.To = float64(c.firstSample)/rate, float64(c.lastEnd)/rate
	}

	// Channels shown: --channels (those that exist), or all.
	if c.o.Channels != nil {
		for _, ch := range c.o.Channels {
			if ch < s.Channels {
				s.Shown = append(s.Shown, ch)
			}
		}
	} else {
		for ch := range s.Channels {
			s.Shown = append(s.Shown, ch)
		}
	}

	// Units: templates and sorted spikes.
	units := map[int32]*Unit{}
	for _, t := range c.templates {
		units[t.Unit] = &Unit{Unit: t.Unit, Channel: t.Channel, PeakUV: float64(t.PeakUV)}
		s.Templates = append(s.Templates, t)
	}
	slices.SortFunc(s.Templates, func(a, b sort.Template) int { return cmp.Compare(a.Unit, b.Unit) })
	for u, n := range c.unitSpikes {
		su := units[u]
		if su == nil {
			su = &Unit{Unit: u, Channel: c.unitChannel[u]}
			units[u] = su
		}
		su.Spikes = n
	}
	unitsOn := map[int32]int{}
	for _, u := range units {
		if int(u.Channel) < len(s.Noise) && s.Noise[u.Channel] > 0 && u.PeakUV != 0 {
			u.SNR = round3(math.Abs(u.PeakUV) / float64(s.Noise[u.Channel]))
		}
		u.PeakUV = round3(u.PeakUV)
		unitsOn[u.Channel]++
		s.Units = append(s.Units, *u)
	}
	slices.SortFunc(s.Units, func(a, b Unit) int { return cmp.Compare(a.Unit, b.Unit) })

	// Per-channel rate (mean of the status messages, or counted) and noise.
	rates := make([]float64, s.Channels)
	var nStatus []int
	for _, st := range c.statuses {
		if len(st.RateHz) == 0 {
			continue
		}
		nStatus = slices.Grow(nStatus, len(st.RateHz))[:max(len(nStatus), len(st.RateHz))]
		for ch, r := range st.RateHz {
			if ch < len(rates) {
				rates[ch] += float64(r)
				nStatus[ch]++
			}
		}
	}
	s.RateSource = "status"
	if nStatus == nil {
		s.RateSource = "spikes"
		if sec := s.To - s.From; sec > 0 {
			for ch, n := range c.chanSpikes {
				rates[ch] = float64(n) / sec
			}
		}
	} else {
		for ch := range rates {
			if ch < len(nStatus) && nStatus[ch] > 0 {
				rates[ch] /= float64(nStatus[ch])
			}
		}
	}
	var noises []float64
	for _, ch := range s.Shown {
		if ch < len(s.Noise) && s.Noise[ch] > 0 {
			noises = append(noises, float64(s.Noise[ch]))
		}
	}
	medNoise := median(noises)
	for _, ch := range s.Shown {
		sc := Channel{Channel: ch, RateHz: round3(rates[ch]), Spikes: c.chanSpikes[int32(ch)], Units: unitsOn[int32(ch)]}
		if ch < len(s.Noise) {
			sc.NoiseUV = round3(float64(s.Noise[ch]))
		}
		switch {
		case len(s.Noise) > ch && medNoise > 0 && sc.NoiseUV < view.QuietBelow*medNoise:
			sc.Marker = MarkQuiet
		case len(s.Noise) > ch && medNoise > 0 && sc.NoiseUV > view.NoisyAbove*medNoise:
			sc.Marker = MarkNoisy
		case sc.Spikes == 0 && sc.RateHz == 0:
			sc.Marker = MarkSilent
		}
		s.ChannelStats = append(s.ChannelStats, sc)
	}

	// Raster: the last window.
	s.RasterFrom = s.To - c.window
	if s.RasterFrom < s.From {
		s.RasterFrom = s.From
	}
	from := uint64(math.Max(0, s.RasterFrom*rate))
	for _, sp := range c.spikes {
		if sp.Sample >= from {
			s.Spikes = append(s.Spikes, sp)
		}
	}
	s.Gaps = slices.Clone(c.gaps)

	s.Decoders = c.scoreDecoders(rate)
	if last != nil {
		s.Health = c.health(last)
	}
	return s, nil
}

// scoreDecoders pairs each decoder's estimates with the behaviour (the
// truth model, linearly interpolated at each bin's centre) and scores
// them.
func (c *Collector) scoreDecoders(rate float64) []Decoder {
	var out []Decoder
	truth := c.traces[c.o.Truth]
	names := make([]string, 0, len(c.traces))
	for m := range c.traces {
		if m != c.o.Truth {
			names = append(names, m)
		}
	}
	slices.Sort(names)
	for _, model := range names {
		tr := c.traces[model]
		n := len(tr.ends)
		if n == 0 {
			continue
		}
		d := Decoder{Model: model, Estimates: n}
		// The bin width: the median spacing of the estimates.
		var steps []float64
		for i := 1; i < n; i++ {
			if tr.ends[i] > tr.ends[i-1] {
				steps = append(steps, float64(tr.ends[i]-tr.ends[i-1]))
			}
		}
		width := median(steps)
		d.BinMS = round3(width / rate * 1000)
		no := len(tr.names)
		d.Time = make([]float64, n)
		d.Decoded = make([][]float64, no)
		for o := range no {
			d.Decoded[o] = make([]float64, n)
		}
		for i, e := range tr.ends {
			d.Time[i] = (float64(e) - width/2) / rate
			for o := range no {
				v := tr.values[i*no+o]
				if tr.degraded[i] {
					v = math.NaN()
				}
				d.Decoded[o][i] = v
			}
			if tr.degraded[i] {
				d.Degraded++
			}
		}
		for o, name := range tr.names {
			so := Output{Name: name}
			to := -1
			if truth != nil {
				to = slices.Index(truth.names, name)
			}
			if to >= 0 {
				if d.Truth == nil {
					d.Truth = make([][]float64, no)
				}
				d.Truth[o] = interpolate(truth, to, d.Time, rate)
				var ts, ps []float64
				for i, v := range d.Decoded[o] {
					if t := d.Truth[o][i]; !math.IsNaN(v) && !math.IsNaN(t) {
						ts = append(ts, t)
						ps = append(ps, v)
					}
				}
				so.Bins = len(ts)
				if len(ts) >= 10 {
					if r2 := decode.R2(ts, ps); !math.IsNaN(r2) && !math.IsInf(r2, 0) {
						so.R2 = ptr(round3(r2))
					}
					if r := decode.Correlation(ts, ps); !math.IsNaN(r) {
						so.Corr = ptr(round3(r))
					}
				}
			}
			d.Outputs = append(d.Outputs, so)
		}
		out = append(out, d)
	}
	return out
}

// interpolate returns output o of the behaviour trace at the times (s),
// linearly interpolated between its samples; NaN outside its span or
// across a hole longer than 0.2 s.
func interpolate(tr *trace, o int, times []float64, rate float64) []float64 {
	no := len(tr.names)
	out := make([]float64, len(times))
	j := 0
	for i, t := range times {
		out[i] = math.NaN()
		for j+1 < len(tr.ends) && float64(tr.ends[j+1])/rate < t {
			j++
		}
		if j+1 >= len(tr.ends) {
			continue
		}
		t0, t1 := float64(tr.ends[j])/rate, float64(tr.ends[j+1])/rate
		if t < t0 || t1 <= t0 || t1-t0 > 0.2 {
			continue
		}
		f := (t - t0) / (t1 - t0)
		out[i] = tr.values[j*no+o]*(1-f) + tr.values[(j+1)*no+o]*f
	}
	return out
}

// health summarises the status messages.
func (c *Collector) health(last *schema.Status) *Health {
	first := c.statuses[0]
	h := &Health{
		NominalRate: last.Rate, SpikeRate: round3(last.SpikeRate),
		LatencyP50MS: ms(last.LatencyP50), LatencyP99MS: ms(last.LatencyP99),
		Link: last.Link, PipelineDrops: last.PipelineDrops, PublishDropped: last.PublishDropped,
		PublishErrors: last.PublishErrors, NATSReconnects: last.Reconnects,
		MissedBatches: c.missed, MissedSamples: c.missedSample, SlowConsumer: c.slow,
		DecodeErrors: c.decodeErrs, Resets: c.resets, Uptime: round3(last.Uptime.Seconds()),
		Threshold: last.Threshold, Events: copyCounts(c.events), Series: slices.Clone(c.statuses),
	}
	if last.Sample >= first.Sample {
		h.DeviceSample, h.DeviceSamplesDuring = last.Sample, last.Sample-first.Sample
	}
	var sum float64
	for _, st := range c.statuses {
		sum += st.SampleRate
		h.LatencyMaxMS = max(h.LatencyMaxMS, ms(st.LatencyMax))
	}
	h.SampleRate = round3(sum / float64(len(c.statuses)))
	// Counters during the snapshot (unless the rig restarted meanwhile).
	if last.Uptime >= first.Uptime {
		a, b := first.Link.Counters(), last.Link.Counters()
		d := h.LinkDuring.Counters()
		for i := range d {
			if *b[i] >= *a[i] {
				*d[i] = *b[i] - *a[i]
			}
		}
	} else {
		h.LinkDuring = last.Link
	}
	return h
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func round3(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1000) / 1000
}

func ms(d time.Duration) float64 { return round3(float64(d) / 1e6) }

func ptr[T any](v T) *T { return &v }
