package view

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// Defaults for Config's zero fields.
const (
	DefaultFrameRate         = 25
	DefaultWindow            = 10 * time.Second
	DefaultMaxSpikesPerFrame = 5000
	DefaultMaxTemplates      = 256
	DefaultClientQueue       = 64
	DefaultMaxEvents         = 500
	DefaultMaxBrowsers       = 64
	// maxEstimatesPerFrame bounds the estimates kept per model per frame;
	// decoders emit one per bin (tens of ms), so this is only reached by
	// a misbehaving publisher.
	maxEstimatesPerFrame = 256
	// maxReplayBytes bounds the memory of the frames kept for late
	// joiners.
	maxReplayBytes = 64 << 20
	// maxProbeChannels bounds the channels whose last spike is kept.
	maxProbeChannels = 65536
	// heartbeat is the longest time without a frame: an empty frame keeps
	// the page's "live" indicator and the view counters fresh.
	heartbeat = time.Second
	// templateEvery is the shortest time between two template updates.
	templateEvery = time.Second
)

// DefaultTruth are the decoder model names taken for the true behaviour
// when Config.Truth is nil: "spikeline run" publishes the behaviour stream
// (the simulator's true velocity, or a measured one) as the model
// "behaviour".
var DefaultTruth = []string{"behaviour", "behavior", "truth"}

// Config configures a View. The zero value (plus a Rig) works.
type Config struct {
	// Rig is the rig shown (the page's title). Required.
	Rig string
	// FrameRate is the number of frames per second sent to browsers;
	// default DefaultFrameRate (25). Between 1 and 120.
	FrameRate float64
	// Window is the span of device time the raster and the decoder traces
	// show, and the history a newly connected browser receives; default
	// DefaultWindow (10 s).
	Window time.Duration
	// MaxSpikesPerFrame caps the spikes sent per frame; beyond it the
	// frame carries a uniform random sample of the frame's spikes and
	// their true number. Default DefaultMaxSpikesPerFrame.
	MaxSpikesPerFrame int
	// MaxTemplates caps the templates sent (those of the most spikes are
	// kept); default DefaultMaxTemplates.
	MaxTemplates int
	// ClientQueue is the number of frames queued per browser before
	// frames are dropped for it; default DefaultClientQueue.
	ClientQueue int
	// MaxEvents is the length of the events log; default DefaultMaxEvents.
	MaxEvents int
	// MaxBrowsers caps the event streams served at once (each holds a
	// queue of frames and a goroutine); more are answered 503. Default
	// DefaultMaxBrowsers.
	MaxBrowsers int
	// Truth names the decoder models that carry the true behaviour rather
	// than a decoded estimate (drawn as a dashed reference); default
	// DefaultTruth.
	Truth []string
	// Logger receives connection and error messages; nil discards them.
	Logger *slog.Logger
}

// orDefault sets *p to def when it is the zero value.
func orDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

func (c Config) withDefaults() Config {
	orDefault(&c.FrameRate, DefaultFrameRate)
	orDefault(&c.Window, DefaultWindow)
	orDefault(&c.MaxSpikesPerFrame, DefaultMaxSpikesPerFrame)
	orDefault(&c.MaxTemplates, DefaultMaxTemplates)
	orDefault(&c.ClientQueue, DefaultClientQueue)
	orDefault(&c.MaxEvents, DefaultMaxEvents)
	orDefault(&c.MaxBrowsers, DefaultMaxBrowsers)
	if c.Truth == nil {
		c.Truth = DefaultTruth
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first impossible setting, naming it.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := schema.ValidToken(c.Rig); err != nil {
		return fmt.Errorf("view: rig: %w", err)
	}
	switch {
	case !(c.FrameRate >= 1 && c.FrameRate <= 120):
		return fmt.Errorf("view: frame rate %g: want 1 to 120 per second", c.FrameRate)
	case c.Window < time.Second || c.Window > 10*time.Minute:
		return fmt.Errorf("view: window %v: want 1s to 10m", c.Window)
	case c.MaxSpikesPerFrame < 1:
		return fmt.Errorf("view: max spikes per frame %d: want >= 1", c.MaxSpikesPerFrame)
	case c.MaxTemplates < 1:
		return fmt.Errorf("view: max templates %d: want >= 1", c.MaxTemplates)
	case c.ClientQueue < 1:
		return fmt.Errorf("view: client queue %d: want >= 1", c.ClientQueue)
	case c.MaxEvents < 1:
		return fmt.Errorf("view: max events %d: want >= 1", c.MaxEvents)
	case c.MaxBrowsers < 1:
		return fmt.Errorf("view: max browsers %d: want >= 1", c.MaxBrowsers)
	}
	for _, t := range c.Truth {
		if err := schema.ValidToken(t); err != nil {
			return fmt.Errorf("view: truth model: %w", err)
		}
	}
	return nil
}

// Stats counts what a View received and sent.
type Stats struct {
	Spikes        uint64 // spikes received
	SpikesSampled uint64 // spikes left out of frames by MaxSpikesPerFrame
	Batches       uint64 // spike batches received
	Estimates     uint64 // decoder estimates received
	Statuses      uint64 // status messages received
	Events        uint64 // events received
	Templates     uint64 // template messages received
	Undecodable   uint64 // messages that could not be decoded
	Frames        uint64 // frames built
	Clients       int    // browsers connected now
	ClientDrops   uint64 // frames dropped for slow browsers, all browsers
}

// point is one spike kept for the raster.
type point struct {
	sample  uint64
	channel int32
	unit    int32
}

type estPoint struct {
	sample uint64
	values []float64
}

type modelBuf struct {
	names  []string
	points []estPoint
	over   uint64
}

// pending is what arrived since the last frame.
type pending struct {
	spikes   []point
	seen     uint64 // spikes in this frame, kept or not
	batches  uint64
	first    uint64 // coverage of the spike batches of the frame
	end      uint64
	covered  bool
	models   map[string]*modelBuf
	status   *schema.Status
	statusAt time.Time
	events   []EventJSON
	evOver   uint64
	latSum   time.Duration // publish -> view latency of spike batches
	latMax   time.Duration
	latN     int
	silent   []int32 // with a status: channels without a spike in the window
}

func (p *pending) reset() {
	p.spikes = p.spikes[:0]
	p.seen, p.batches, p.first, p.end, p.covered = 0, 0, 0, 0, false
	for k, m := range p.models {
		if len(m.points) == 0 {
			delete(p.models, k)
			continue
		}
		m.points = m.points[:0]
		m.over = 0
	}
	p.status = nil
	p.events = p.events[:0]
	p.evOver = 0
	p.latSum, p.latMax, p.latN = 0, 0, 0
	p.silent = p.silent[:0]
}

// View aggregates one rig's messages and serves them to browsers. Create
// it with New, subscribe with the Handler it returns, run it with Run and
// serve it over HTTP (it is an http.Handler).
type View struct {
	cfg   Config
	truth map[string]bool
	rng   *rand.Rand

	mu        sync.Mutex // guards cur, rate, last, templates*, evSeq, names
	cur       *pending
	spare     *pending
	rate      float64
	last      uint64 // highest sample seen
	templates map[int32]sort.Template
	tplDirty  bool
	tplSample uint64
	evSeq     uint64
	lastSpike []uint64 // per channel, device sample of the newest spike
	spikeFrom uint64   // first sample of the first spike batch (0: none yet)

	live *Live // in-process detail (AttachLive), or nil

	// counters
	spikes, sampled, batches, estimates, statuses, events, tplMsgs, undecodable atomic.Uint64
	frames, clientDrops                                                         atomic.Uint64

	hub hub
}

// New returns a View for cfg after validating it.
func New(cfg Config) (*View, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	v := &View{
		cfg:       cfg,
		truth:     map[string]bool{},
		rng:       rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5bd1e995)),
		cur:       &pending{models: map[string]*modelBuf{}},
		spare:     &pending{models: map[string]*modelBuf{}},
		templates: map[int32]sort.Template{},
	}
	for _, t := range cfg.Truth {
		v.truth[t] = true
	}
	v.hub.init(cfg, &v.clientDrops)
	return v, nil
}

// Config returns the view's configuration with defaults filled in.
func (v *View) Config() Config { return v.cfg }

// Stats returns the view's counters.
func (v *View) Stats() Stats {
	return Stats{
		Spikes: v.spikes.Load(), SpikesSampled: v.sampled.Load(), Batches: v.batches.Load(),
		Estimates: v.estimates.Load(), Statuses: v.statuses.Load(), Events: v.events.Load(),
		Templates: v.tplMsgs.Load(), Undecodable: v.undecodable.Load(), Frames: v.frames.Load(),
		Clients: v.hub.count(), ClientDrops: v.clientDrops.Load(),
	}
}

// Handler returns the callbacks to subscribe with:
//
//	sub, err := client.Subscribe(rig, v.Handler(), stream.SubscribeOptions{})
//
// They never block for longer than it takes to append to a buffer.
func (v *View) Handler() stream.Handler {
	return stream.Handler{
		Spikes:    func(_ string, m *schema.SpikeBatch) { v.AddSpikes(m) },
		Estimate:  func(_ string, m *schema.EstimateMsg) { v.AddEstimate(m) },
		Status:    func(_ string, m *schema.Status) { v.AddStatus(m) },
		Events:    func(_ string, m *schema.EventBatch) { v.AddEvents(m) },
		Templates: func(_ string, m *schema.TemplateBatch) { v.AddTemplates(m) },
		Error: func(subject string, err error) {
			v.undecodable.Add(1)
			v.Note("undecodable", fmt.Sprintf("%s: %v", subject, err))
		},
	}
}

// seeRate records the sample rate and the newest sample (0: none). A
// sample more than two windows before the newest is taken for a device
// reset (its counter went back) and becomes the newest, so the view
// follows the device's clock.
func (v *View) seeRate(rate float64, sample uint64) {
	if rate > 0 {
		v.rate = rate
	}
	switch {
	case sample > v.last:
		v.last = sample
	case sample > 0 && v.rate > 0 && float64(v.last-sample) > 2*v.cfg.Window.Seconds()*v.rate:
		v.last = sample
	}
}

// AddSpikes adds a batch of sorted spikes (the Spikes callback of
// Handler).
func (v *View) AddSpikes(m *schema.SpikeBatch) {
	now := time.Now()
	n := uint64(len(m.Spikes))
	v.spikes.Add(n)
	v.batches.Add(1)
	limit := v.cfg.MaxSpikesPerFrame
	var dropped uint64
	v.mu.Lock()
	p := v.cur
	prevLast := v.last
	v.seeRate(m.Rate, m.End)
	p.batches++
	if !p.covered || m.Sample < p.first {
		p.first = m.Sample
	}
	if !p.covered || m.End > p.end {
		p.end = m.End
	}
	p.covered = true
	if v.spikeFrom == 0 || v.last < prevLast || m.Sample < v.spikeFrom {
		// The first batch, or the device was reset.
		v.spikeFrom = max(m.Sample, 1)
		clear(v.lastSpike)
	}
	for i := range m.Spikes {
		s := &m.Spikes[i]
		if c := int(s.Channel); c >= 0 && c < maxProbeChannels {
			if c >= len(v.lastSpike) {
				v.lastSpike = append(v.lastSpike, make([]uint64, c+1-len(v.lastSpike))...)
			}
			v.lastSpike[c] = max(v.lastSpike[c], s.Sample)
		}
		pt := point{sample: s.Sample, channel: s.Channel, unit: s.Unit}
		p.seen++
		if len(p.spikes) < limit {
			p.spikes = append(p.spikes, pt)
			continue
		}
		// Reservoir sampling: every spike of the frame has the same
		// chance limit/seen of being shown.
		dropped++
		if j := v.rng.Uint64N(p.seen); j < uint64(limit) {
			p.spikes[j] = pt
		}
	}
	if m.Published > 0 {
		lat := now.Sub(m.PublishTime())
		p.latSum += lat
		p.latMax = max(p.latMax, lat)
		p.latN++
	}
	v.mu.Unlock()
	if dropped > 0 {
		v.sampled.Add(dropped)
	}
}

// AddEstimate adds one decoder output (the Estimate callback of Handler).
func (v *View) AddEstimate(m *schema.EstimateMsg) {
	v.estimates.Add(1)
	model := m.Model
	if model == "" {
		model = "decoder"
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seeRate(m.Rate, 0)
	mb := v.cur.models[model]
	if mb == nil {
		mb = &modelBuf{}
		v.cur.models[model] = mb
	}
	if !slices.Equal(mb.names, m.Names) {
		mb.names = slices.Clone(m.Names)
	}
	if len(mb.points) >= maxEstimatesPerFrame {
		mb.over++
		return
	}
	mb.points = append(mb.points, estPoint{sample: m.Sample, values: m.Values})
}

// AddStatus takes a status report (the Status callback of Handler); the
// latest one of a frame is sent.
func (v *View) AddStatus(m *schema.Status) {
	v.statuses.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seeRate(m.Rate, m.Sample)
	v.cur.status = m
	v.cur.statusAt = time.Now()
}

// AddEvents adds a batch of events (the Events callback of Handler).
// Template removals also remove the unit's template.
func (v *View) AddEvents(m *schema.EventBatch) {
	v.events.Add(uint64(len(m.Events)))
	now := time.Now().UnixMilli()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seeRate(m.Rate, 0)
	for _, e := range m.Events {
		if e.Kind == schema.EventTemplateRemoved && e.Unit > 0 {
			if _, ok := v.templates[e.Unit]; ok {
				delete(v.templates, e.Unit)
				v.tplDirty = true
			}
		}
		v.evSeq++
		ej := eventJSON(v.evSeq, now, e)
		if len(v.cur.events) >= v.cfg.MaxEvents {
			v.cur.evOver++
			continue
		}
		v.cur.events = append(v.cur.events, ej)
	}
}

// AddTemplates merges a templates message (the Templates callback of
// Handler): a full snapshot replaces every template, other messages add
// or update units.
func (v *View) AddTemplates(m *schema.TemplateBatch) {
	v.tplMsgs.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seeRate(m.Rate, 0)
	if m.Full() {
		clear(v.templates)
	}
	for _, t := range m.Templates {
		v.templates[t.Unit] = t
	}
	v.tplDirty = true
	v.tplSample = m.Sample
}

// SetInfo records the pipeline description from the rig's control
// service (stream.Call with stream.EndpointInfo): the page shows the
// device, the channel count (the raster's rows before any spike arrives)
// and the decoder models. Browsers get it at once and on connecting.
func (v *View) SetInfo(info stream.Info) {
	v.hub.setInfo(&info)
}

// Note adds a line to the events log that did not come from the rig, such
// as the view's own NATS connection being lost and regained. kind is a
// short word ("nats", "undecodable").
func (v *View) Note(kind, text string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.evSeq++
	e := EventJSON{ID: v.evSeq, Time: time.Now().UnixMilli(), Kind: kind, Unit: -1, Channel: -1, Text: text, Source: "view"}
	if len(v.cur.events) >= v.cfg.MaxEvents {
		v.cur.evOver++
		return
	}
	v.cur.events = append(v.cur.events, e)
}

// Run builds and sends frames until ctx ends, then disconnects the
// browsers. It returns ctx.Err().
func (v *View) Run(ctx context.Context) error {
	period := time.Duration(float64(time.Second) / v.cfg.FrameRate)
	tick := time.NewTicker(period)
	defer tick.Stop()
	defer v.hub.close()
	var detail <-chan time.Time
	if v.live != nil {
		dt := time.NewTicker(time.Duration(float64(time.Second) / v.live.cfg.DetailRate))
		defer dt.Stop()
		detail = dt.C
	}
	var lastSent, lastTpl time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-detail:
			if msg := v.live.tick(); msg != nil {
				v.hub.publishDetail(msg)
			}
		case now := <-tick.C:
			sent, tpl := v.step(now, now.Sub(lastSent) >= heartbeat, now.Sub(lastTpl) >= templateEvery)
			if sent {
				lastSent = now
			}
			if tpl {
				lastTpl = now
			}
		}
	}
}

// step builds one frame from what arrived since the last one and sends it
// if it carries anything (or force is set); when templatesDue and the
// templates changed, it sends them too. It reports what it sent.
func (v *View) step(now time.Time, force, templatesDue bool) (sent, templates bool) {
	v.mu.Lock()
	p := v.cur
	v.cur, v.spare = v.spare, p
	rate, last := v.rate, v.last
	if p.status != nil {
		p.silent = v.silentLocked(p.silent[:0], max(len(p.status.NoiseUV), len(p.status.RateHz)))
	}
	var tpl *TemplatesJSON
	if templatesDue && v.tplDirty {
		tpl = v.templatesJSONLocked()
		v.tplDirty = false
	}
	v.mu.Unlock()

	if tpl != nil {
		v.hub.setTemplates(tpl)
	}
	empty := p.batches == 0 && p.status == nil && len(p.events) == 0 && p.evOver == 0
	for _, mb := range p.models {
		if len(mb.points) > 0 || mb.over > 0 {
			empty = false
		}
	}
	if empty && !force {
		p.reset()
		return false, tpl != nil
	}
	f := v.buildFrame(now, rate, last, p)
	p.reset()
	v.frames.Add(1)
	v.hub.publish(f, now)
	return true, tpl != nil
}

// silentLocked appends the channels (of n) without a spike within the
// last Window of device time, once a Window has passed since the first
// spike batch.
func (v *View) silentLocked(dst []int32, n int) []int32 {
	w := uint64(v.cfg.Window.Seconds() * v.rate)
	if v.spikeFrom == 0 || v.rate <= 0 || v.last < v.spikeFrom+w {
		return dst
	}
	for c := range min(n, maxProbeChannels) {
		t := v.spikeFrom
		if c < len(v.lastSpike) {
			t = max(t, v.lastSpike[c])
		}
		if t+w < v.last {
			dst = append(dst, int32(c))
		}
	}
	return dst
}

// templatesJSONLocked renders the current templates, the MaxTemplates of
// most spikes, ordered by channel then unit.
func (v *View) templatesJSONLocked() *TemplatesJSON {
	all := make([]sort.Template, 0, len(v.templates))
	for _, t := range v.templates {
		all = append(all, t)
	}
	total := len(all)
	if len(all) > v.cfg.MaxTemplates {
		slices.SortFunc(all, func(a, b sort.Template) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Unit, b.Unit))
		})
		all = all[:v.cfg.MaxTemplates]
	}
	slices.SortFunc(all, func(a, b sort.Template) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.Unit, b.Unit))
	})
	out := &TemplatesJSON{Sample: v.tplSample, Rate: v.rate, Total: total, Units: make([]TemplateJSON, len(all))}
	for i, t := range all {
		w := make([]Num, len(t.Waveform))
		for j, x := range t.Waveform {
			w[j] = Num(x)
		}
		out.Units[i] = TemplateJSON{Unit: t.Unit, Channel: t.Channel, Pre: t.Pre, PeakUV: Num(t.PeakUV), Count: t.Count, Waveform: w}
	}
	return out
}
