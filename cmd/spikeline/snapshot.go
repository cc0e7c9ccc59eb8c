package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/plots"
	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/view"
)

func init() {
	register(command{
		name:    "snapshot",
		summary: "save a running rig's live views as PNG files (probe, templates, raster, decoder, health) and snapshot.json",
		run:     runSnapshot,
	})
}

// Limits of the snapshot flags.
const (
	snapMinPixels = 300
	snapMaxPixels = 8000
	// snapMaxSpikesDrawn bounds the ticks of raster.png; beyond it a
	// uniform sample is drawn and the caption says so.
	snapMaxSpikesDrawn = 300000
	// snapMaxEstimates bounds the estimates kept per decoder model (the
	// oldest half is dropped when reached): 90 min of 20 ms bins.
	snapMaxEstimates = 1 << 18
	// snapMaxStatus bounds the status messages kept (oldest half dropped).
	snapMaxStatus = 1 << 14
)

// Channel markers of probe.png and snapshot.json (see docs/snapshot.md),
// named and judged as on the live page (view.ProbeJSON): quiet and noisy
// relative to the median noise of the channels shown.
const (
	markQuiet  = "quiet"  // noise below view.QuietBelow × the median: open or shorted input
	markNoisy  = "noisy"  // noise above view.NoisyAbove × the median: floating input, pick-up
	markSilent = "silent" // no spike detected during the snapshot
)

// snapOptions is what `spikeline snapshot` was asked to do.
type snapOptions struct {
	nats      stream.Config
	url       string // for messages (redacted)
	duration  time.Duration
	window    time.Duration
	out       string
	width     int // pixels
	height    int // pixels
	dpi       int
	channels  []int // nil: all
	truth     string
	maxPanels int
}

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("snapshot", stderr)
	natsConfig := natsFlags(fs)
	var o snapOptions
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "wall time to collect the rig's messages before drawing (the rig re-publishes its templates every 10 s of device time, its status every second)")
	fs.DurationVar(&o.window, "window", 10*time.Second, "device time shown by raster.png: the last WINDOW of spikes collected")
	fs.StringVar(&o.out, "out", "snapshot", "directory the PNG files and snapshot.json are written into (created if needed)")
	fs.IntVar(&o.width, "width", 1400, fmt.Sprintf("width of every PNG in pixels (%d-%d)", snapMinPixels, snapMaxPixels))
	fs.IntVar(&o.height, "height", 900, fmt.Sprintf("height of every PNG in pixels (%d-%d)", snapMinPixels, snapMaxPixels))
	fs.IntVar(&o.dpi, "dpi", 100, "dots per inch: the scale of text and lines relative to the image (30-600)")
	chans := fs.String("channels", "", "channels drawn, e.g. 0-15,32,40-47 (default: all)")
	fs.StringVar(&o.truth, "truth", rig.BehaviourModel, "decoder model that carries the true behaviour, against which the other models are scored (R²)")
	fs.IntVar(&o.maxPanels, "max-panels", 16, "most channels drawn in templates.png (those with the most sorted spikes)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline snapshot [--rig R] [--nats URL] [--duration 10s] [--out DIR] [flags]")
		fmt.Fprintln(stderr, "\nSubscribes to a running rig for --duration, then writes the live views as PNG")
		fmt.Fprintln(stderr, "files into --out: probe.png (channels coloured by firing rate, noise, markers for")
		fmt.Fprintln(stderr, "quiet, noisy and silent channels), templates.png (unit templates per channel),")
		fmt.Fprintln(stderr, "raster.png (sorted spikes, channels × device time), decoder.png (each decoder")
		fmt.Fprintln(stderr, "output against the behaviour, with R²), health.png (link and pipeline counters,")
		fmt.Fprintln(stderr, "throughput and latency), and snapshot.json with the numbers shown.")
		fmt.Fprintln(stderr, "--nats empty: nats://127.0.0.1:4222 (the default of 'spikeline run'). docs/snapshot.md")
		fmt.Fprintln(stderr, "describes the files.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	cfg, err := natsConfig()
	if err != nil {
		return err
	}
	if cfg.JetStream || cfg.JSON || cfg.StoreDir != "" || cfg.Port != 0 {
		return usageErrorf("--jetstream, --jetstream-dir, --nats-json and --nats-port are for publishers, not snapshot")
	}
	o.nats = readerCredentials(cfg, stderr, "snapshot")
	switch {
	case o.duration <= 0 || o.duration > 24*time.Hour:
		return usageErrorf("--duration %s: want > 0 and <= 24h", o.duration)
	case o.window < 100*time.Millisecond || o.window > time.Hour:
		return usageErrorf("--window %s: want 100ms to 1h", o.window)
	case o.width < snapMinPixels || o.width > snapMaxPixels || o.height < snapMinPixels || o.height > snapMaxPixels:
		return usageErrorf("--width %d, --height %d: want %d to %d pixels", o.width, o.height, snapMinPixels, snapMaxPixels)
	case o.dpi < 30 || o.dpi > 600:
		return usageErrorf("--dpi %d: want 30 to 600", o.dpi)
	case o.maxPanels < 1:
		return usageErrorf("--max-panels %d: want >= 1", o.maxPanels)
	case strings.TrimSpace(o.out) == "":
		return usageErrorf("--out: empty directory name")
	}
	if err := schema.ValidToken(o.truth); err != nil {
		return usageErrorf("--truth %q: %v", o.truth, err)
	}
	if o.channels, err = parseChannelList(*chans); err != nil {
		return usageErrorf("--channels %q: %v", *chans, err)
	}
	if fi, err := os.Stat(o.out); err == nil && !fi.IsDir() {
		return usageErrorf("--out %s: exists and is not a directory", o.out)
	}
	o.url = "nats://127.0.0.1:4222"
	if len(cfg.URLs) > 0 {
		o.url = strings.Join(cfg.URLs, ",")
	}
	o.url = stream.RedactURL(o.url)

	c := newSnapCollector(o)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Slow-consumer errors mean this subscriber lost messages: count them.
	cfg.Logger = slog.New(&noteHandler{Handler: log.Handler(), note: c.note})
	nc, err := stream.Connect(ctx, cfg, "spikeline-snapshot")
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := stream.NewClient(nc).Subscribe(cfg.Rig, c.handler(), stream.SubscribeOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "spikeline snapshot: rig %s on %s: collecting for %s\n", cfg.Rig, o.url, o.duration)

	cctx, stop := context.WithTimeout(ctx, o.duration)
	defer stop()
	infoDone := make(chan struct{})
	go func() { defer close(infoDone); c.askInfo(cctx, nc, cfg.Rig) }()
	<-cctx.Done()
	interrupted := ctx.Err() != nil
	sub.Stop()
	<-infoDone

	snap, err := c.snapshot(nc)
	if err != nil {
		return err
	}
	if interrupted {
		fmt.Fprintf(stdout, "spikeline snapshot: interrupted after %.1f s; drawing what arrived\n", snap.WallSeconds)
	}
	return snap.write(o, stdout)
}

// parseChannelList parses "0-15,32,40-47" into sorted distinct channels;
// "" is nil (all channels).
func parseChannelList(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q: want a channel number >= 0 or a range A-B", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				return nil, fmt.Errorf("%q: want a range A-B with A <= B", part)
			}
		}
		if b > 1<<20 {
			return nil, fmt.Errorf("%q: want channels <= %d", part, 1<<20)
		}
		for ch := a; ch <= b; ch++ {
			if !seen[ch] {
				seen[ch] = true
				out = append(out, ch)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// ---------------------------------------------------------------- collection

// snapTrace is what one decoder model published during the snapshot.
type snapTrace struct {
	names    []string
	ends     []uint64  // bin end samples, in arrival order
	values   []float64 // len(names) per estimate
	degraded []bool
}

// snapCollector gathers a rig's messages; the callbacks of the different
// subjects run on different goroutines, hence the lock.
type snapCollector struct {
	o      snapOptions
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
	traces    map[string]*snapTrace
	gaps      [][2]uint64    // [start, end) device samples lost, from gap events
	events    map[string]int // events per kind
}

func newSnapCollector(o snapOptions) *snapCollector {
	c := &snapCollector{o: o, start: time.Now(), window: o.window.Seconds(),
		counts: map[string]int{}, unitSpikes: map[int32]int{}, unitChannel: map[int32]int32{},
		chanSpikes: map[int32]int{}, templates: map[int32]sort.Template{}, traces: map[string]*snapTrace{},
		events: map[string]int{}}
	if o.channels != nil {
		c.want = map[int]bool{}
		for _, ch := range o.channels {
			c.want[ch] = true
		}
	}
	return c
}

func (c *snapCollector) wanted(ch int32) bool { return c.want == nil || c.want[int(ch)] }

// note receives the NATS connection log records (noteHandler).
func (c *snapCollector) note(kind, text string) {
	if strings.Contains(strings.ToLower(text), "slow consumer") {
		c.mu.Lock()
		c.slow++
		c.mu.Unlock()
	}
}

// askInfo asks the rig's control service for its description until it
// answers or ctx ends; a rig without one just never answers.
func (c *snapCollector) askInfo(ctx context.Context, nc *nats.Conn, rig string) {
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

func (c *snapCollector) handler() stream.Handler {
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

func (c *snapCollector) setRate(r float64) {
	if r > 0 {
		c.rate = r
	}
}

func (c *snapCollector) onSpikes(_ string, m *schema.SpikeBatch) {
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

func (c *snapCollector) onEstimate(_ string, m *schema.EstimateMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts["estimates"]++
	c.setRate(m.Rate)
	tr := c.traces[m.Model]
	if tr == nil || !slices.Equal(tr.names, m.Names) || (len(tr.ends) > 0 && m.Sample < tr.ends[len(tr.ends)-1]) {
		// New model, new outputs, or the device counter went back.
		tr = &snapTrace{names: slices.Clone(m.Names)}
		c.traces[m.Model] = tr
	}
	if len(m.Values) != len(tr.names) {
		return
	}
	if len(tr.ends) >= snapMaxEstimates {
		h := len(tr.ends) / 2
		tr.ends = tr.ends[:copy(tr.ends, tr.ends[h:])]
		tr.degraded = tr.degraded[:copy(tr.degraded, tr.degraded[h:])]
		tr.values = tr.values[:copy(tr.values, tr.values[h*len(tr.names):])]
	}
	tr.ends = append(tr.ends, m.Sample)
	tr.values = append(tr.values, m.Values...)
	tr.degraded = append(tr.degraded, m.Degraded())
}

func (c *snapCollector) onStatus(_ string, m *schema.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts["status"]++
	c.setRate(m.Rate)
	if len(c.statuses) >= snapMaxStatus {
		c.statuses = c.statuses[:copy(c.statuses, c.statuses[len(c.statuses)/2:])]
	}
	c.statuses = append(c.statuses, m)
}

func (c *snapCollector) onEvents(_ string, m *schema.EventBatch) {
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

func (c *snapCollector) onTemplates(_ string, m *schema.TemplateBatch) {
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

// ---------------------------------------------------------------- the snapshot

// snapChannel is one channel of snapshot.json and probe.png.
type snapChannel struct {
	Channel int     `json:"channel"`
	RateHz  float64 `json:"rate_hz"`            // mean detected spikes per second during the snapshot
	NoiseUV float64 `json:"noise_uv,omitempty"` // robust noise SD, latest status (0: unknown)
	Spikes  int     `json:"spikes"`             // spikes received during the snapshot
	Units   int     `json:"units"`              // sorted units with a template or spikes
	Marker  string  `json:"marker,omitempty"`   // quiet, noisy or silent (see docs/snapshot.md)
}

// snapUnit is one sorted unit.
type snapUnit struct {
	Unit    int32   `json:"unit"`
	Channel int32   `json:"channel"`
	Spikes  int     `json:"spikes"`            // during the snapshot
	PeakUV  float64 `json:"peak_uv,omitempty"` // template extremum
	SNR     float64 `json:"snr,omitempty"`     // |peak| / channel noise
}

// snapOutput is the score of one decoder output.
type snapOutput struct {
	Name string   `json:"name"`
	R2   *float64 `json:"r2"` // null: not enough paired bins or no variance
	Corr *float64 `json:"r"`
	Bins int      `json:"bins"` // bins paired with the behaviour
}

// snapDecoder is one decoder model.
type snapDecoder struct {
	Model     string       `json:"model"`
	Estimates int          `json:"estimates"`
	Degraded  int          `json:"degraded"`
	BinMS     float64      `json:"bin_ms"`
	Outputs   []snapOutput `json:"outputs"`

	time    []float64 // s, bin centres
	decoded [][]float64
	truth   [][]float64 // nil: no behaviour
}

// snapHealth is the link and pipeline health.
type snapHealth struct {
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

	series []*schema.Status
}

// snapshot is everything drawn, and snapshot.json.
type snapshot struct {
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
	ChannelStats []snapChannel  `json:"channel_stats"`
	Units        []snapUnit     `json:"units"`
	Decoders     []snapDecoder  `json:"decoders"`
	Truth        string         `json:"truth_model"`
	Health       *snapHealth    `json:"health,omitempty"`
	Files        []string       `json:"files"`

	spikes    []sort.Spike
	templates []sort.Template
	noise     []float32 // per device channel, µV (nil: unknown)
	gaps      [][2]uint64
	rasterT0  float64 // s: start of the raster window
	shown     []int   // channels drawn
}

// snapshot turns what was collected into the figures' data.
func (c *snapCollector) snapshot(nc *nats.Conn) (*snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, n := range c.counts {
		total += n
	}
	if total == 0 {
		state := "connected"
		if !nc.IsConnected() {
			state = "not connected (" + nc.Status().String() + ")"
		}
		detail := ""
		if c.decodeErrs > 0 {
			detail = fmt.Sprintf("; %d undecodable messages, first: %s", c.decodeErrs, c.firstErr)
		}
		return nil, fmt.Errorf("no messages from rig %q on %s within %s (NATS %s)%s: is 'spikeline run --rig %s' running there?",
			c.o.nats.Rig, c.o.url, c.o.duration, state, detail, c.o.nats.Rig)
	}
	s := &snapshot{Rig: c.o.nats.Rig, NATS: c.o.url, Taken: time.Now().UTC(), WallSeconds: time.Since(c.start).Seconds(),
		Rate: c.rate, Messages: copyCounts(c.counts), Truth: c.o.truth}
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
		s.noise = last.NoiseUV
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
	if c.o.channels != nil {
		for _, ch := range c.o.channels {
			if ch < s.Channels {
				s.shown = append(s.shown, ch)
			}
		}
	} else {
		for ch := range s.Channels {
			s.shown = append(s.shown, ch)
		}
	}

	// Units: templates and sorted spikes.
	units := map[int32]*snapUnit{}
	for _, t := range c.templates {
		units[t.Unit] = &snapUnit{Unit: t.Unit, Channel: t.Channel, PeakUV: float64(t.PeakUV)}
		s.templates = append(s.templates, t)
	}
	slices.SortFunc(s.templates, func(a, b sort.Template) int { return cmp.Compare(a.Unit, b.Unit) })
	for u, n := range c.unitSpikes {
		su := units[u]
		if su == nil {
			su = &snapUnit{Unit: u, Channel: c.unitChannel[u]}
			units[u] = su
		}
		su.Spikes = n
	}
	unitsOn := map[int32]int{}
	for _, u := range units {
		if int(u.Channel) < len(s.noise) && s.noise[u.Channel] > 0 && u.PeakUV != 0 {
			u.SNR = round3(math.Abs(u.PeakUV) / float64(s.noise[u.Channel]))
		}
		u.PeakUV = round3(u.PeakUV)
		unitsOn[u.Channel]++
		s.Units = append(s.Units, *u)
	}
	slices.SortFunc(s.Units, func(a, b snapUnit) int { return cmp.Compare(a.Unit, b.Unit) })

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
	for _, ch := range s.shown {
		if ch < len(s.noise) && s.noise[ch] > 0 {
			noises = append(noises, float64(s.noise[ch]))
		}
	}
	medNoise := median(noises)
	for _, ch := range s.shown {
		sc := snapChannel{Channel: ch, RateHz: round3(rates[ch]), Spikes: c.chanSpikes[int32(ch)], Units: unitsOn[int32(ch)]}
		if ch < len(s.noise) {
			sc.NoiseUV = round3(float64(s.noise[ch]))
		}
		switch {
		case len(s.noise) > ch && medNoise > 0 && sc.NoiseUV < view.QuietBelow*medNoise:
			sc.Marker = markQuiet
		case len(s.noise) > ch && medNoise > 0 && sc.NoiseUV > view.NoisyAbove*medNoise:
			sc.Marker = markNoisy
		case sc.Spikes == 0 && sc.RateHz == 0:
			sc.Marker = markSilent
		}
		s.ChannelStats = append(s.ChannelStats, sc)
	}

	// Raster: the last window.
	s.rasterT0 = s.To - c.window
	if s.rasterT0 < s.From {
		s.rasterT0 = s.From
	}
	from := uint64(math.Max(0, s.rasterT0*rate))
	for _, sp := range c.spikes {
		if sp.Sample >= from {
			s.spikes = append(s.spikes, sp)
		}
	}
	s.gaps = slices.Clone(c.gaps)

	s.Decoders = c.scoreDecoders(rate)
	if last != nil {
		s.Health = c.health(last)
	}
	return s, nil
}

// scoreDecoders pairs each decoder's estimates with the behaviour (the
// truth model, linearly interpolated at each bin's centre) and scores
// them.
func (c *snapCollector) scoreDecoders(rate float64) []snapDecoder {
	var out []snapDecoder
	truth := c.traces[c.o.truth]
	names := make([]string, 0, len(c.traces))
	for m := range c.traces {
		if m != c.o.truth {
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
		d := snapDecoder{Model: model, Estimates: n}
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
		d.time = make([]float64, n)
		d.decoded = make([][]float64, no)
		for o := range no {
			d.decoded[o] = make([]float64, n)
		}
		for i, e := range tr.ends {
			d.time[i] = (float64(e) - width/2) / rate
			for o := range no {
				v := tr.values[i*no+o]
				if tr.degraded[i] {
					v = math.NaN()
				}
				d.decoded[o][i] = v
			}
			if tr.degraded[i] {
				d.Degraded++
			}
		}
		for o, name := range tr.names {
			so := snapOutput{Name: name}
			to := -1
			if truth != nil {
				to = slices.Index(truth.names, name)
			}
			if to >= 0 {
				if d.truth == nil {
					d.truth = make([][]float64, no)
				}
				d.truth[o] = interpolate(truth, to, d.time, rate)
				var ts, ps []float64
				for i, v := range d.decoded[o] {
					if t := d.truth[o][i]; !math.IsNaN(v) && !math.IsNaN(t) {
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
func interpolate(tr *snapTrace, o int, times []float64, rate float64) []float64 {
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
func (c *snapCollector) health(last *schema.Status) *snapHealth {
	first := c.statuses[0]
	h := &snapHealth{
		NominalRate: last.Rate, SpikeRate: round3(last.SpikeRate),
		LatencyP50MS: ms(last.LatencyP50), LatencyP99MS: ms(last.LatencyP99),
		Link: last.Link, PipelineDrops: last.PipelineDrops, PublishDropped: last.PublishDropped,
		PublishErrors: last.PublishErrors, NATSReconnects: last.Reconnects,
		MissedBatches: c.missed, MissedSamples: c.missedSample, SlowConsumer: c.slow,
		DecodeErrors: c.decodeErrs, Resets: c.resets, Uptime: round3(last.Uptime.Seconds()),
		Threshold: last.Threshold, Events: copyCounts(c.events), series: slices.Clone(c.statuses),
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

// ---------------------------------------------------------------- writing

// write draws the figures and snapshot.json into o.out and prints what it
// wrote.
func (s *snapshot) write(o snapOptions, stdout io.Writer) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	W := vg.Length(float64(o.width)/float64(o.dpi)) * vg.Inch
	H := vg.Length(float64(o.height)/float64(o.dpi)) * vg.Inch
	figs := []struct {
		name string
		draw func(dc draw.Canvas, W, H vg.Length) (string, string, error) // title, what it shows
	}{
		{"probe.png", s.drawProbe},
		{"templates.png", func(dc draw.Canvas, W, H vg.Length) (string, string, error) {
			return s.drawTemplates(dc, W, H, o.maxPanels)
		}},
		{"raster.png", s.drawRaster},
		{"decoder.png", s.drawDecoder},
		{"health.png", s.drawHealth},
	}
	var lines [][2]string
	for _, f := range figs {
		path := filepath.Join(o.out, f.name)
		// The title is known once the figure is drawn: draw the body on
		// a figure with a placeholder title, then put the title on.
		img, dc := plots.NewFigure(W, H, o.dpi, "")
		title, what, err := f.draw(plots.Body(dc), W, H)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dc.FillText(plots.Text(13, draw.XCenter, draw.YTop), vg.Point{X: W / 2, Y: H - vg.Points(6)}, title)
		if err := plots.SavePNG(path, img); err != nil {
			return err
		}
		s.Files = append(s.Files, f.name)
		lines = append(lines, [2]string{path, what})
	}
	s.Files = append(s.Files, "snapshot.json")
	jpath := filepath.Join(o.out, "snapshot.json")
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := device.WriteFile(jpath, append(b, '\n')); err != nil {
		return err
	}
	lines = append(lines, [2]string{jpath, "the numbers shown"})
	fmt.Fprintf(stdout, "spikeline snapshot: rig %s, %.1f s of device time on %d channels (%d messages):\n",
		s.Rig, s.To-s.From, s.Channels, sum(s.Messages))
	wide := 0
	for _, l := range lines {
		wide = max(wide, len(l[0]))
	}
	for _, l := range lines {
		fmt.Fprintf(stdout, "  %-*s  %s\n", wide, l[0], l[1])
	}
	return nil
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// rigTitle is the start of every figure title.
func (s *snapshot) rigTitle() string {
	t := "rig " + s.Rig
	if s.Device != "" {
		t += " (" + s.Device + ")"
	}
	return t + " " + s.Taken.Format("2006-01-02 15:04:05Z")
}

// message writes a centred note on an otherwise empty figure body.
func message(dc draw.Canvas, text string) {
	dc.FillText(plots.Text(14, draw.XCenter, draw.YCenter), dc.Center(), text)
}

// drawProbe draws probe.png: a grid of the shown channels coloured by
// firing rate, with rate, noise and markers in each cell, and a colour
// bar.
func (s *snapshot) drawProbe(dc draw.Canvas, W, H vg.Length) (string, string, error) {
	title := s.rigTitle() + fmt.Sprintf(" — firing rate and noise per channel (rates from %s)", s.RateSource)
	n := len(s.ChannelStats)
	if n == 0 {
		message(dc, "no channels known yet (no status, spikes or templates arrived)")
		return title, "no channels", nil
	}
	cmap := moreland.Kindlmann()
	maxRate := 0.0
	marks := map[string]int{}
	for _, c := range s.ChannelStats {
		maxRate = max(maxRate, c.RateHz)
		if c.Marker != "" {
			marks[c.Marker]++
		}
	}
	maxRate = niceCeil(max(maxRate, 1))
	cmap.SetMin(0)
	cmap.SetMax(1)
	colorOf := func(r float64) color.Color {
		col, err := cmap.At(0.12 + 0.83*math.Min(1, r/maxRate)) // neither black nor white
		if err != nil {
			return color.Gray{128}
		}
		return col
	}

	const pad = 6
	barW := vg.Points(14)
	legendW := vg.Inch * 1.1
	area := draw.Crop(dc, vg.Points(pad), -legendW-vg.Points(pad), vg.Points(28), -vg.Points(pad))
	aw, ah := area.Max.X-area.Min.X, area.Max.Y-area.Min.Y
	// Columns: the grid closest to the area's aspect with square-ish cells.
	cols := max(1, int(math.Round(math.Sqrt(float64(n)*float64(aw/ah)))))
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	cw, chh := aw/vg.Length(cols), ah/vg.Length(rows)
	fs := math.Min(float64(chh)/4.6, float64(cw)/6.5)
	fs = math.Max(4, math.Min(13, fs))
	for i, c := range s.ChannelStats {
		r, k := i/cols, i%cols
		x0 := area.Min.X + vg.Length(k)*cw
		y1 := area.Max.Y - vg.Length(r)*chh
		cell := vg.Rectangle{Min: vg.Point{X: x0 + 1, Y: y1 - chh + 1}, Max: vg.Point{X: x0 + cw - 1, Y: y1 - 1}}
		fill := colorOf(c.RateHz)
		switch c.Marker {
		case markSilent:
			fill = color.Gray{225}
		case markQuiet:
			fill = color.RGBA{60, 60, 70, 255}
		}
		dc.SetColor(fill)
		dc.Fill(cell.Path())
		txt := color.Color(color.Black)
		if luminance(fill) < 0.5 {
			txt = color.White
		}
		center := vg.Point{X: (cell.Min.X + cell.Max.X) / 2, Y: (cell.Min.Y + cell.Max.Y) / 2}
		line := vg.Length(fs) * 1.15
		ts := plots.Text(fs, draw.XCenter, draw.YCenter)
		ts.Color = txt
		big := ts
		big.Font.Size = vg.Points(fs * 1.15)
		dc.FillText(ts, vg.Point{X: center.X, Y: center.Y + 1.3*line}, fmt.Sprintf("ch %d", c.Channel))
		dc.FillText(big, center, fmt.Sprintf("%.1f Hz", c.RateHz))
		noise := "noise ?"
		if c.NoiseUV > 0 || len(s.noise) > c.Channel {
			noise = fmt.Sprintf("%.1f µV", c.NoiseUV)
		}
		dc.FillText(ts, vg.Point{X: center.X, Y: center.Y - 1.3*line}, noise)
		switch c.Marker {
		case markQuiet:
			ls := draw.LineStyle{Color: color.RGBA{230, 80, 80, 255}, Width: vg.Points(1.5)}
			dc.StrokeLine2(ls, cell.Min.X+2, cell.Min.Y+2, cell.Max.X-2, cell.Max.Y-2)
			dc.StrokeLine2(ls, cell.Min.X+2, cell.Max.Y-2, cell.Max.X-2, cell.Min.Y+2)
		case markNoisy:
			ls := draw.LineStyle{Color: color.RGBA{220, 20, 20, 255}, Width: vg.Points(3)}
			dc.StrokeLines(ls, []vg.Point{cell.Min, {X: cell.Max.X, Y: cell.Min.Y}, cell.Max, {X: cell.Min.X, Y: cell.Max.Y}, cell.Min})
		}
		if c.Marker != "" {
			mt := ts
			mt.Font.Size = vg.Points(fs * 0.9)
			mt.YAlign = draw.YBottom
			dc.FillText(mt, vg.Point{X: center.X, Y: cell.Min.Y + 2}, c.Marker)
		}
	}

	// Colour bar.
	bx := dc.Max.X - legendW + vg.Points(10)
	by0, by1 := area.Min.Y+ah*0.15, area.Max.Y-ah*0.05
	const steps = 64
	for i := range steps {
		y0 := by0 + (by1-by0)*vg.Length(i)/steps
		y1 := by0 + (by1-by0)*vg.Length(i+1)/steps
		dc.SetColor(colorOf(maxRate * (float64(i) + 0.5) / steps))
		dc.Fill(vg.Rectangle{Min: vg.Point{X: bx, Y: y0}, Max: vg.Point{X: bx + barW, Y: y1 + 0.5}}.Path())
	}
	lt := plots.Text(9, draw.XLeft, draw.YCenter)
	for i := 0; i <= 4; i++ {
		v := maxRate * float64(i) / 4
		y := by0 + (by1-by0)*vg.Length(i)/4
		dc.StrokeLine2(draw.LineStyle{Color: color.Black, Width: vg.Points(0.8)}, bx+barW, y, bx+barW+vg.Points(3), y)
		dc.FillText(lt, vg.Point{X: bx + barW + vg.Points(5), Y: y}, strconv.FormatFloat(v, 'g', 4, 64))
	}
	lt.XAlign = draw.XLeft
	lt.YAlign = draw.YBottom
	dc.FillText(lt, vg.Point{X: bx, Y: by1 + vg.Points(6)}, "spikes/s")
	// Marker legend.
	var key []string
	for _, m := range []string{markQuiet, markNoisy, markSilent} {
		key = append(key, fmt.Sprintf("%s: %d", m, marks[m]))
	}
	ft := plots.Text(9, draw.XLeft, draw.YBottom)
	dc.FillText(ft, vg.Point{X: area.Min.X, Y: dc.Min.Y + vg.Points(8)},
		fmt.Sprintf("%d channels · %s · quiet: noise < %.0f%% of median, noisy: > %g× median, silent: no spike",
			n, strings.Join(key, ", "), 100*view.QuietBelow, view.NoisyAbove))
	return title, fmt.Sprintf("%d channels, %d quiet, %d noisy, %d silent", n, marks[markQuiet], marks[markNoisy], marks[markSilent]), nil
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	return (0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(b)) / 65535
}

// snapPanels chooses the channels of templates.png (summaryPanels, as
// summary.png does), with each unit's spike count during the snapshot.
func (s *snapshot) snapPanels(maxPanels int) []*plots.Panel {
	var spikes []sort.Spike
	count := map[int32]int{}
	for _, u := range s.Units {
		count[u.Unit] = u.Spikes
		if u.Spikes > 0 {
			// summaryPanels ranks channels by sorted spikes: one stand-in
			// spike per unit carries the unit's channel; the count is
			// set below.
			spikes = append(spikes, sort.Spike{Channel: u.Channel, Unit: u.Unit})
		}
	}
	panels, _, _, _ := plots.ChoosePanels(spikes, s.templates, len(s.Units)+1)
	for _, p := range panels {
		for _, u := range p.Units {
			u.Count = count[u.Unit]
			u.Picks = nil
		}
	}
	if len(panels) > maxPanels {
		chSpikes := map[int]int{}
		for _, p := range panels {
			for _, u := range p.Units {
				chSpikes[p.Channel] += u.Count
			}
		}
		slices.SortStableFunc(panels, func(a, b *plots.Panel) int { return cmp.Compare(chSpikes[b.Channel], chSpikes[a.Channel]) })
		panels = panels[:maxPanels]
		slices.SortFunc(panels, func(a, b *plots.Panel) int { return cmp.Compare(a.Channel, b.Channel) })
	}
	return panels
}

// unitColors maps every unit to its colour: its rank among the units of
// its channel, as in templates.png and summary.png.
func (s *snapshot) unitColorMap() map[int32]color.NRGBA {
	panels := s.snapPanels(math.MaxInt)
	m := map[int32]color.NRGBA{}
	for _, p := range panels {
		for i, u := range p.Units {
			m[u.Unit] = plots.UnitColor(i)
		}
	}
	return m
}

// drawTemplates draws templates.png: the summary.png panels of the
// channels with units (the busiest maxPanels), templates only.
func (s *snapshot) drawTemplates(dc draw.Canvas, W, H vg.Length, maxPanels int) (string, string, error) {
	panels := s.snapPanels(maxPanels)
	nUnits := 0
	withUnits := map[int32]bool{}
	for _, u := range s.Units {
		nUnits++
		withUnits[u.Channel] = true
	}
	title := s.rigTitle() + fmt.Sprintf(" — %d units on %d channels", nUnits, len(withUnits))
	if len(panels) < len(withUnits) {
		title += fmt.Sprintf(" (showing the %d busiest)", len(panels))
	}
	if len(panels) == 0 {
		message(dc, "no templates or sorted spikes received yet (templates are re-published every 10 s of device time)")
		return title, "no units yet", nil
	}
	pre, post := 0, 0
	for _, t := range s.templates {
		pre = max(pre, t.Pre)
		post = max(post, len(t.Waveform)-t.Pre-1)
	}
	rate := max(s.Rate, 1)
	if pre == 0 && post == 0 {
		pre, post = int(math.Round(0.6e-3*rate)), int(math.Round(1.2e-3*rate))
	}
	n := len(panels)
	aw, ah := float64(dc.Max.X-dc.Min.X), float64(dc.Max.Y-dc.Min.Y)
	cols := int(math.Ceil(math.Sqrt(float64(n) * (aw / ah) * (2.5 / 3.2))))
	cols = max(1, min(cols, n))
	if err := plots.DrawPanels(dc, panels, cols, s.noise, pre, post, rate); err != nil {
		return "", "", err
	}
	return title, fmt.Sprintf("%d templates, %d of the %d channels with units drawn", len(s.templates), n, len(withUnits)), nil
}

// rasterTicks is a plotter of spike ticks: one row per shown channel,
// channel order top to bottom.
type rasterTicks struct {
	x      []float64 // s
	row    []int
	col    []color.Color
	rows   int
	t0, t1 float64
	gaps   [][2]float64 // s
}

func (r *rasterTicks) DataRange() (xmin, xmax, ymin, ymax float64) {
	return r.t0, r.t1, -0.5, float64(r.rows) - 0.5
}

func (r *rasterTicks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, g := range r.gaps {
		a, b := math.Max(g[0], r.t0), math.Min(g[1], r.t1)
		if b <= a {
			continue
		}
		x0, x1 := trX(a), trX(b)
		if x1-x0 < 1 {
			x1 = x0 + 1
		}
		c.SetColor(color.NRGBA{R: 180, G: 30, B: 30, A: 110})
		c.Fill(vg.Rectangle{Min: vg.Point{X: x0, Y: c.Min.Y}, Max: vg.Point{X: x1, Y: c.Max.Y}}.Path())
	}
	h := (trY(0) - trY(1)) * 0.4
	for i, x := range r.x {
		y := trY(float64(r.rows - 1 - r.row[i]))
		xx := trX(x)
		c.StrokeLine2(draw.LineStyle{Color: r.col[i], Width: vg.Points(0.9)}, xx, y-h, xx, y+h)
	}
}

// drawRaster draws raster.png: the spikes of the last --window, channels ×
// device time, coloured by unit (unsorted grey), gaps shaded.
func (s *snapshot) drawRaster(dc draw.Canvas, W, H vg.Length) (string, string, error) {
	rate := max(s.Rate, 1)
	t0, t1 := s.rasterT0, s.To
	title := s.rigTitle() + fmt.Sprintf(" — spike raster, %.1f s of device time", t1-t0)
	if len(s.shown) == 0 || t1 <= t0 {
		message(dc, "no spike batches received")
		return title, "no spikes", nil
	}
	rowOf := map[int32]int{}
	for i, ch := range s.shown {
		rowOf[int32(ch)] = i
	}
	colors := s.unitColorMap()
	grey := color.NRGBA{150, 150, 150, 255}
	spikes := s.spikes
	every := 1
	if len(spikes) > snapMaxSpikesDrawn {
		every = (len(spikes) + snapMaxSpikesDrawn - 1) / snapMaxSpikesDrawn
	}
	rt := &rasterTicks{rows: len(s.shown), t0: t0, t1: t1}
	for i := 0; i < len(spikes); i += every {
		sp := spikes[i]
		row, ok := rowOf[sp.Channel]
		if !ok {
			continue
		}
		col := color.Color(grey)
		if c, ok := colors[sp.Unit]; ok && sp.Unit > 0 {
			col = c
		}
		rt.x = append(rt.x, float64(sp.Sample)/rate)
		rt.row = append(rt.row, row)
		rt.col = append(rt.col, col)
	}
	for _, g := range s.gaps {
		rt.gaps = append(rt.gaps, [2]float64{float64(g[0]) / rate, float64(g[1]) / rate})
	}
	p := plot.New()
	p.X.Label.Text = "device time (s)"
	p.Y.Label.Text = "channel"
	p.X.Min, p.X.Max = t0, t1
	p.Y.Min, p.Y.Max = -0.5, float64(len(s.shown))-0.5
	step := int(niceCeil(math.Max(1, float64(len(s.shown))/24)))
	var ticks []plot.Tick
	for i, ch := range s.shown {
		lab := ""
		if i%step == 0 {
			lab = strconv.Itoa(ch)
		}
		ticks = append(ticks, plot.Tick{Value: float64(len(s.shown) - 1 - i), Label: lab})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Add(rt)
	p.Draw(draw.Crop(dc, vg.Points(6), -vg.Points(12), vg.Points(18), 0))
	caption := fmt.Sprintf("%d spikes", len(spikes))
	if every > 1 {
		caption = fmt.Sprintf("%d of %d spikes drawn (uniform sample)", len(rt.x), len(spikes))
	}
	caption += " · colour: unit (as in templates.png) · grey: unsorted · shaded: gaps"
	dc.FillText(plots.Text(9, draw.XLeft, draw.YBottom), vg.Point{X: dc.Min.X + vg.Points(8), Y: dc.Min.Y + vg.Points(4)}, caption)
	return title, fmt.Sprintf("%d spikes on %d channels over %.1f s", len(spikes), len(s.shown), t1-t0), nil
}

// drawDecoder draws decoder.png: each decoder output against the
// behaviour, with R², as PlotEvaluation draws an offline evaluation.
func (s *snapshot) drawDecoder(dc draw.Canvas, W, H vg.Length) (string, string, error) {
	title := s.rigTitle() + " — decoder output against " + s.Truth
	var panels []plots.TracePanel
	var what []string
	for _, d := range s.Decoders {
		for o, out := range d.Outputs {
			tp := plots.TracePanel{YLabel: out.Name, Time: d.time, Decoded: d.decoded[o],
				DecodedLabel: "decoded (" + d.Model + ")"}
			tp.Title = fmt.Sprintf("%s %s", d.Model, out.Name)
			switch {
			case out.R2 != nil:
				r := "r unknown"
				if out.Corr != nil {
					r = fmt.Sprintf("r %.3f", *out.Corr)
				}
				tp.Title += fmt.Sprintf(" — R² %.3f, %s (%d bins)", *out.R2, r, out.Bins)
				what = append(what, fmt.Sprintf("%s %s R² %.3f", d.Model, out.Name, *out.R2))
			case d.truth != nil && d.truth[o] != nil:
				tp.Title += fmt.Sprintf(" — R² unknown (%d bins paired with the behaviour)", out.Bins)
			default:
				tp.Title += " — no behaviour to score against"
			}
			if d.truth != nil {
				tp.Truth = d.truth[o]
			}
			panels = append(panels, tp)
		}
	}
	if len(panels) == 0 {
		msg := "no decoder output received (the rig's decoder is calibrating, or publishes none)"
		if len(s.Decoders) == 0 && s.Messages["estimates"] > 0 {
			msg = "only the behaviour (" + s.Truth + ") was received: no decoder output yet (still calibrating?)"
		}
		message(dc, msg)
		return title, "no decoder output", nil
	}
	caption := fmt.Sprintf("true behaviour (%s) black, decoded blue; R² over the bins paired", s.Truth)
	if err := plots.DrawTraces(dc, caption, panels); err != nil {
		return "", "", err
	}
	if len(what) == 0 {
		what = append(what, "R² unknown")
	}
	return title, strings.Join(what, ", "), nil
}

// drawHealth draws health.png: a table of the link and pipeline counters
// and the throughput and latency over the snapshot.
func (s *snapshot) drawHealth(dc draw.Canvas, W, H vg.Length) (string, string, error) {
	title := s.rigTitle() + " — link and pipeline health"
	h := s.Health
	if h == nil {
		message(dc, "no status message received (the rig publishes one every second)")
		return title, "no status", nil
	}
	type row struct {
		name, total, during string
		bad                 bool
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	l, d := h.Link, h.LinkDuring
	rows := []row{
		{"samples/s per channel", fmt.Sprintf("%.0f (nominal %.0f)", h.SampleRate, h.NominalRate), "", h.NominalRate > 0 && h.SampleRate < 0.98*h.NominalRate},
		{"spikes/s, all channels", fmt.Sprintf("%.1f", h.SpikeRate), "", false},
		{"latency p50 / p99", fmt.Sprintf("%.2f / %.2f ms", h.LatencyP50MS, h.LatencyP99MS), fmt.Sprintf("max %.2f ms", h.LatencyMaxMS), false},
		{"device samples processed", u(h.DeviceSample), u(h.DeviceSamplesDuring), false},
		{"lost samples (gaps)", fmt.Sprintf("%d (%d gaps)", l.LostSamples, l.Gaps), fmt.Sprintf("%d (%d gaps)", d.LostSamples, d.Gaps), d.LostSamples > 0},
		{"CRC errors", u(l.CRCErrors), u(d.CRCErrors), d.CRCErrors > 0},
		{"bad frames / skipped bytes", u(l.BadFrames) + " / " + u(l.SkippedBytes), u(d.BadFrames) + " / " + u(d.SkippedBytes), d.BadFrames > 0},
		{"device resets / format changes", u(l.Resets) + " / " + u(l.FormatChanges), u(d.Resets) + " / " + u(d.FormatChanges), d.Resets+d.FormatChanges > 0},
		{"disconnects / reconnects", u(l.Disconnects) + " / " + u(l.Reconnects), u(d.Disconnects) + " / " + u(d.Reconnects), d.Disconnects > 0},
		{"pipeline drops", u(h.PipelineDrops), "", false},
		{"NATS publish dropped / errors", u(h.PublishDropped) + " / " + u(h.PublishErrors), "", false},
		{"NATS reconnects (rig)", u(h.NATSReconnects), "", false},
		{"spike batches missed here", "", fmt.Sprintf("%d (%d samples)", h.MissedBatches, h.MissedSamples), h.MissedBatches > 0},
		{"slow consumer / undecodable here", "", fmt.Sprintf("%d / %d", h.SlowConsumer, h.DecodeErrors), h.SlowConsumer+h.DecodeErrors > 0},
	}
	first, last := h.series[0], h.series[len(h.series)-1]
	// The table, left half.
	tableW := (dc.Max.X - dc.Min.X) * 0.5
	top := dc.Max.Y - vg.Points(10)
	lineH := math.Min(float64(dc.Max.Y-dc.Min.Y-vg.Points(40))/float64(len(rows)+2), 22)
	fs := math.Max(6, math.Min(11, lineH*0.55))
	x0 := dc.Min.X + vg.Points(14)
	c1, c2 := x0+tableW*0.45, x0+tableW*0.72
	head := plots.Text(fs, draw.XLeft, draw.YCenter)
	dc.FillText(head, vg.Point{X: x0, Y: top}, "counter")
	dc.FillText(head, vg.Point{X: c1, Y: top}, fmt.Sprintf("since start (%.0f s)", h.Uptime))
	dc.FillText(head, vg.Point{X: c2, Y: top}, fmt.Sprintf("during snapshot (%.0f s)", (last.Uptime-first.Uptime).Seconds()))
	ts := plots.Text(fs, draw.XLeft, draw.YCenter)
	red := color.RGBA{200, 20, 20, 255}
	for i, r := range rows {
		y := top - vg.Length(lineH)*vg.Length(i+1)
		if i%2 == 0 {
			dc.SetColor(color.Gray{240})
			dc.Fill(vg.Rectangle{Min: vg.Point{X: x0 - 4, Y: y - vg.Length(lineH)/2}, Max: vg.Point{X: x0 + tableW - 8, Y: y + vg.Length(lineH)/2}}.Path())
		}
		t := ts
		if r.bad {
			t.Color = red
		}
		dc.FillText(t, vg.Point{X: x0, Y: y}, r.name)
		dc.FillText(t, vg.Point{X: c1, Y: y}, r.total)
		dc.FillText(t, vg.Point{X: c2, Y: y}, r.during)
	}
	note := plots.Text(fs*0.85, draw.XLeft, draw.YBottom)
	dc.FillText(note, vg.Point{X: x0, Y: dc.Min.Y + vg.Points(6)},
		fmt.Sprintf("%d status messages · threshold %.1f SD · red: counters that rose during the snapshot", len(h.series), h.Threshold))

	// Throughput and latency over the snapshot, right half.
	var thr, p50, p99 plotter.XYs
	for _, st := range h.series {
		x := st.Uptime.Seconds()
		thr = append(thr, plotter.XY{X: x, Y: st.SampleRate})
		p50 = append(p50, plotter.XY{X: x, Y: float64(st.LatencyP50) / 1e6})
		p99 = append(p99, plotter.XY{X: x, Y: float64(st.LatencyP99) / 1e6})
	}
	right := draw.Crop(dc, tableW+vg.Points(10), -vg.Points(8), vg.Points(4), -vg.Points(4))
	pt := plot.New()
	pt.Title.Text = "throughput (samples/s per channel)"
	pt.X.Label.Text = "rig uptime (s)"
	pl := plot.New()
	pl.Title.Text = "latency (ms): p50 blue, p99 red"
	pl.X.Label.Text = "rig uptime (s)"
	for _, p := range []*plot.Plot{pt, pl} {
		p.Add(plotter.NewGrid())
		p.Y.Min = 0
	}
	if err := addLine(pt, thr, color.RGBA{0x1f, 0x77, 0xb4, 0xff}); err != nil {
		return "", "", err
	}
	if h.NominalRate > 0 {
		if err := addLine(pt, plotter.XYs{{X: thr[0].X, Y: h.NominalRate}, {X: thr[len(thr)-1].X + 1e-9, Y: h.NominalRate}}, color.Gray{140}); err != nil {
			return "", "", err
		}
		pt.Y.Max = math.Max(pt.Y.Max, h.NominalRate*1.1)
	}
	if err := addLine(pl, p50, color.RGBA{0x1f, 0x77, 0xb4, 0xff}); err != nil {
		return "", "", err
	}
	if err := addLine(pl, p99, color.RGBA{0xd6, 0x27, 0x28, 0xff}); err != nil {
		return "", "", err
	}
	grid := [][]*plot.Plot{{pt}, {pl}}
	canv := plot.Align(grid, draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(4), PadBottom: vg.Points(4)}, right)
	pt.Draw(canv[0][0])
	pl.Draw(canv[1][0])

	what := fmt.Sprintf("%.0f samples/s, latency p50 %.2f ms p99 %.2f ms, %d lost samples, %d CRC errors during the snapshot",
		h.SampleRate, h.LatencyP50MS, h.LatencyP99MS, d.LostSamples, d.CRCErrors)
	return title, what, nil
}

// addLine adds a line through xy (a point when there is only one).
func addLine(p *plot.Plot, xy plotter.XYs, col color.Color) error {
	if len(xy) == 1 {
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		sc.Color = col
		p.Add(sc)
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color = col
	l.Width = vg.Points(1.3)
	p.Add(l)
	return nil
}
