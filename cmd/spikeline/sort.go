package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/probe"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/phy"
	"github.com/spikeline/spikeline/sort/quality"
)

func init() {
	register(command{
		name:    "sort",
		summary: "sort a raw recording file offline: spikes.csv, units.csv (quality metrics, good/mua), a Phy folder and a PNG summary",
		run:     runSort,
	})
}

// sortJob is a validated `spikeline sort` invocation.
type sortJob struct {
	input     string // raw file
	meta      string // recording.json (optional)
	raw       device.RawConfig
	cfg       sort.Config
	out       string
	passes    int
	learnPass float64 // seconds pass 1 reads (0: the whole file)
	maxPanels int
	positions [][2]float64
	probe     string  // --probe: the layout the sorter uses (resolved when the channel count is known)
	radius    float64 // --radius-um
	noPhy     bool
	noPlot    bool
	quiet     bool
	force     bool
	// skipLayout skips the check that the data fit the channel count
	// (--skip-layout-check; set after the first open has made it).
	skipLayout bool
}

// sortOutputs are the files and folders 'spikeline sort' writes in --out.
var sortOutputs = []string{"spikes.csv", "units.csv", "summary.png", "phy"}

func runSort(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sort", stderr)
	var j sortJob
	fs.StringVar(&j.input, "input", "", "raw int16 time-major recording (.dat/.bin); or a file of wire-protocol frames, an Intan .rhd/.rhs file or an Open Ephys recording folder, which describe themselves")
	fs.StringVar(&j.meta, "meta", "", "recording.json sidecar (or its directory) giving channels, rate and gain; the raw file defaults to its data_file")
	fs.IntVar(&j.raw.Channels, "channels", 0, "channels in the file (unless --meta)")
	fs.Float64Var(&j.raw.Rate, "rate", 0, "sample rate in Hz (unless --meta)")
	fs.Float64Var(&j.raw.Gain, "gain", 0, "µV per count (unless --meta)")
	fs.StringVar(&j.out, "out", "", "output directory (created)")
	sortFlags := registerSortFlags(fs)
	fs.IntVar(&j.passes, "passes", 2, "1: sort in one causal pass (spikes before templates are learned stay unsorted, as online); 2: learn templates on a first pass (see --learn-pass), then sort the whole file with them")
	fs.Float64Var(&j.learnPass, "learn-pass", 0, "seconds of the file pass 1 learns templates from (0: the whole file); units too rare to appear in a short stretch are only seeded by a long one")
	fs.IntVar(&j.maxPanels, "panels", 32, "most channels drawn in summary.png")
	positionsPath := fs.String("positions", "", "probe layout for Phy only (same forms as --probe; the sorter still treats every channel alone); default a vertical line 20 µm apart")
	fs.StringVar(&j.probe, "probe", "", "probe layout: probeinterface JSON, CSV channel,x_um,y_um, or a built-in layout ("+probeBuiltins()+"). A spike seen on channels within --radius-um of each other is then one spike of one unit, with templates on the neighbourhood (docs/sorting.md); also the Phy folder's layout. Default: every channel sorted alone")
	fs.Float64Var(&j.radius, "radius-um", 0, "with --probe: channels this close see one spike, µm (0: 50)")
	fs.BoolVar(&j.noPhy, "no-phy", false, "do not write the Phy folder")
	fs.BoolVar(&j.noPlot, "no-plot", false, "do not draw summary.png")
	fs.BoolVar(&j.quiet, "quiet", false, "no progress bar")
	fs.BoolVar(&j.skipLayout, "skip-layout-check", false, "read the file with the channel count given even if its samples contradict it (see docs/formats.md)")
	fs.BoolVar(&j.force, "force", false, "write into a non-empty --out, replacing the outputs of an earlier sort there (spikes.csv, units.csv, summary.png, phy/)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline sort --input REC.dat --channels N --rate HZ --gain UV_PER_BIT --out DIR")
		fmt.Fprintln(stderr, "       spikeline sort --meta recording.json --out DIR")
		fmt.Fprintln(stderr, "\nWrites DIR/spikes.csv (every spike), DIR/units.csv (one row per unit: SpikeInterface's")
		fmt.Fprintln(stderr, "quality metrics and a good/mua label, docs/quality.md), DIR/phy/ (docs/phy.md) and")
		fmt.Fprintln(stderr, "DIR/summary.png.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	given := func(name string) bool {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
		return set
	}
	if j.input != "" && (device.IsWireFile(j.input) || isInteropRecording(j.input)) {
		// A file of frames (spikeline encode, a capture): sort_wire.go.
		return j.runWire(ctx, fs, sortFlags, stdout, stderr)
	}
	switch {
	case j.out == "":
		return usageErrorf("--out is required")
	case j.input == "" && j.meta == "":
		return usageErrorf("give --input (with --channels, --rate, --gain) or --meta")
	case j.meta != "" && (given("channels") || given("rate") || given("gain")):
		return usageErrorf("--meta gives channels, rate and gain; do not also pass --channels, --rate or --gain")
	case j.meta == "" && j.raw.Channels <= 0:
		return usageErrorf("--channels %d: want > 0", j.raw.Channels)
	case j.meta == "" && !(j.raw.Rate > 0):
		return usageErrorf("--rate %g: want > 0 Hz", j.raw.Rate)
	case j.meta == "" && !(j.raw.Gain > 0):
		return usageErrorf("--gain %g: want > 0 µV per count", j.raw.Gain)
	case j.passes != 1 && j.passes != 2:
		return usageErrorf("--passes %d: want 1 or 2", j.passes)
	case j.learnPass < 0 || math.IsNaN(j.learnPass) || math.IsInf(j.learnPass, 0):
		return usageErrorf("--learn-pass %g: want >= 0 seconds (0: the whole file)", j.learnPass)
	case j.maxPanels < 1:
		return usageErrorf("--panels %d: want >= 1", j.maxPanels)
	case j.probe != "" && *positionsPath != "":
		return usageErrorf("give one layout: --probe (sorting and Phy) or --positions (Phy only)")
	case j.radius != 0 && j.probe == "":
		return usageErrorf("--radius-um needs --probe")
	case j.radius < 0 || math.IsNaN(j.radius) || math.IsInf(j.radius, 0):
		return usageErrorf("--radius-um %g: want > 0 µm", j.radius)
	}
	cfg, err := sortFlags()
	if err != nil {
		return err
	}
	j.cfg = cfg
	if err := checkOutDir("--out", j.out, j.force, sortOutputs); err != nil {
		return err
	}
	// Open the input now so that a bad file or sidecar is refused before
	// any output is written.
	src, err := j.open()
	if err != nil {
		return err
	}
	warnUnfinished(stderr, "sort", cmp.Or(j.meta, j.input), src)
	src.Close()
	j.skipLayout = true // checked once
	if *positionsPath != "" {
		p, err := probe.Open(*positionsPath, j.raw.Channels)
		if err != nil {
			return usageErrorf("--positions: %v", err)
		}
		j.positions = p.Positions
	}
	if err := j.useProbe(); err != nil {
		return err
	}
	s, err := sort.New(j.cfg, j.raw.Channels, j.raw.Rate, j.raw.Gain)
	if err != nil {
		return usageErrorf("%v", err)
	}
	s.Close()
	return j.run(ctx, stdout, stderr)
}

// useProbe reads --probe for the recording's channel count (j.raw) into
// the sorter's configuration and the Phy layout.
func (j *sortJob) useProbe() error {
	if j.probe == "" {
		return nil
	}
	p, err := probe.Open(j.probe, j.raw.Channels)
	if err != nil {
		return usageErrorf("--probe: %v", err)
	}
	j.cfg.Probe, j.cfg.Radius = p, j.radius
	j.positions = p.Positions
	return nil
}

// probeBuiltins lists the built-in layout names for the flags' help.
func probeBuiltins() string {
	names := make([]string, len(probe.Builtins))
	for i, b := range probe.Builtins {
		names[i] = b.Name
	}
	return strings.Join(names, ", ")
}

// open opens the raw input and fills j.raw from the sidecar if any.
func (j *sortJob) open() (*device.RawSource, error) {
	cfg := device.RawConfig{Channels: j.raw.Channels, Rate: j.raw.Rate, Gain: j.raw.Gain, BlockSamples: 4096, SkipLayoutCheck: j.skipLayout}
	if j.meta == "" {
		return device.OpenRaw(j.input, cfg)
	}
	if j.input == "" {
		src, m, err := device.OpenRecording(j.meta, cfg)
		if err != nil {
			return nil, err
		}
		j.input = m.DataFile
		if !filepath.IsAbs(j.input) {
			dir := j.meta
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				dir = filepath.Dir(dir)
			}
			name := m.DataFile
			if name == "" {
				name = "recording.dat"
			}
			j.input = filepath.Join(dir, name)
		}
		j.raw.Channels, j.raw.Rate, j.raw.Gain = m.Channels, m.Rate, m.Gain
		return src, nil
	}
	metaPath := j.meta
	if fi, err := os.Stat(metaPath); err == nil && fi.IsDir() {
		metaPath = filepath.Join(metaPath, "recording.json")
	}
	m, err := device.ReadMeta(metaPath)
	if err != nil {
		return nil, err
	}
	j.raw.Channels, j.raw.Rate, j.raw.Gain = m.Channels, m.Rate, m.Gain
	return device.OpenRaw(j.input, m.RawConfig(cfg))
}

// Pass 1 of an offline sort learns from more snippets per channel and
// re-learns more often than a live sorter, within a memory budget.
const (
	learnSnippets     = 3000      // snippets kept per channel for learning in pass 1
	learnSnippetBytes = 256 << 20 // most bytes of snippets pass 1 keeps over all channels
	learnRelearnEvery = 40        // seconds: longest gap between pass 1's learning passes
)

// learnConfig returns the configuration of pass 1 of an offline sort: cfg
// with up to learnSnippets snippets per channel (fewer on many channels, so
// the snippets stay within learnSnippetBytes; never fewer than the sorter's
// default) and learning passes at most learnRelearnEvery seconds apart.
// Fields the caller set are kept. Measured on simulated 32-channel, 5-minute
// recordings (docs/scoring.md), both raise accuracy over the live defaults:
// more examples of each unit and more chances for rare units to be learned.
func learnConfig(cfg sort.Config, channels int, rate float64) sort.Config {
	def := sort.Default()
	if cfg.MaxSnippets == 0 {
		pre, post, tail := cfg.Pre, cfg.Post, cfg.Tail
		if pre == 0 {
			pre = def.Pre
		}
		if post == 0 {
			post = def.Post
		}
		if tail == 0 {
			tail = def.Tail
		}
		snippet := 4 * ((pre+post+tail)*rate/1000 + 1) // bytes of one snippet
		fit := float64(learnSnippetBytes) / (snippet * float64(max(1, channels)))
		cfg.MaxSnippets = int(max(float64(def.MaxSnippets), min(learnSnippets, fit)))
	}
	if cfg.RelearnEvery == 0 {
		cfg.RelearnEvery = min(def.RelearnEvery, learnRelearnEvery)
	}
	return cfg
}

// progress draws a progress bar on w: redrawn in place at most every
// 200 ms on a terminal, one line per tenth otherwise (logs).
type progress struct {
	w     io.Writer
	tty   bool
	label string
	total uint64
	rate  float64
	start time.Time
	last  time.Time
	tenth int // last tenth printed, when not a terminal
}

func newProgress(w io.Writer, label string, total uint64, rate float64) *progress {
	p := &progress{w: w, label: label, total: total, rate: rate, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done uint64, final bool) {
	if p == nil || p.w == nil {
		return
	}
	now := time.Now()
	frac := 1.0
	if p.total > 0 {
		frac = math.Min(1, float64(done)/float64(p.total))
	}
	if p.tty {
		if !final && now.Sub(p.last) < 200*time.Millisecond {
			return
		}
	} else {
		tenth := int(frac * 10)
		if tenth <= p.tenth && (!final || p.tenth == 10) {
			return
		}
		p.tenth = max(tenth, p.tenth)
		if final {
			p.tenth = 10
		}
	}
	p.last = now
	const width = 30
	bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
	el := now.Sub(p.start).Seconds()
	speed := ""
	if el > 0 {
		speed = fmt.Sprintf(", %.1fx real time", float64(done)/p.rate/el)
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%-8s [%s] %3.0f%% %.1f of %.1f s%s\n", p.label, bar, 100*frac, float64(done)/p.rate, float64(p.total)/p.rate, speed)
		return
	}
	fmt.Fprintf(p.w, "\r%-8s [%s] %3.0f%% %.1f of %.1f s%s ", p.label, bar, 100*frac, float64(done)/p.rate, float64(p.total)/p.rate, speed)
	if final {
		fmt.Fprintln(p.w)
	}
}

// sortPass runs one sorter over the first limit samples of the file (all
// if limit is 0) and returns its spikes (when keep), templates and noise.
func (j *sortJob) sortPass(ctx context.Context, cfg sort.Config, label string, limit uint64, keep bool, stderr io.Writer) ([]sort.Spike, []sort.Template, []float32, sort.Stats, error) {
	src, err := j.open()
	if err != nil {
		return nil, nil, nil, sort.Stats{}, err
	}
	defer src.Close()
	s, err := sort.New(cfg, j.raw.Channels, j.raw.Rate, j.raw.Gain)
	if err != nil {
		return nil, nil, nil, sort.Stats{}, err
	}
	defer s.Close()
	total := src.Samples()
	if limit > 0 {
		total = min(total, limit)
	}
	var bar *progress
	if !j.quiet {
		bar = newProgress(stderr, label, total, j.raw.Rate)
	}
	var spikes, buf []sort.Spike
	var done uint64
	for done < total {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, sort.Stats{}, err
		}
		if n := uint64(b.Len()); done+n > total {
			b.Samples = b.Samples[:int(total-done)*b.Channels]
		}
		buf, err = s.Process(b, buf[:0])
		if err != nil {
			return nil, nil, nil, sort.Stats{}, fmt.Errorf("%s: samples %d..%d: %w", j.input, b.First, b.End(), err)
		}
		if keep {
			spikes = append(spikes, buf...)
		}
		done += uint64(b.Len())
		bar.update(done, false)
	}
	buf = s.Flush(buf[:0])
	if keep {
		spikes = append(spikes, buf...)
	}
	bar.update(done, true)
	return spikes, s.Templates(), s.Noise(nil), s.Stats(), nil
}

func (j *sortJob) run(ctx context.Context, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(j.out, 0o755); err != nil {
		return err
	}
	start := time.Now()
	cfg := j.cfg
	// Offline, results must not depend on goroutine timing: learning runs
	// inside Process, in both passes.
	cfg.Deterministic = true
	if j.passes == 2 {
		// Pass 1 learns templates over the whole file (or --learn-pass
		// seconds): the sorter re-learns at growing intervals (LearnSeconds,
		// then twice that... up to RelearnEvery), so units too rare to
		// reach MinSpikes in the first window are learned later in the
		// file. Only the templates are kept (memory stays bounded by
		// MaxSnippets per channel). Pass 2 sorts everything seeded with
		// them, so every channel matches from its first spike.
		var limit uint64
		if j.learnPass > 0 {
			limit = uint64(math.Ceil(j.learnPass * j.raw.Rate))
			src, err := j.open()
			if err != nil {
				return err
			}
			if limit >= src.Samples() {
				limit = 0 // the whole file anyway
			}
			src.Close()
		}
		_, templates, _, _, err := j.sortPass(ctx, learnConfig(cfg, j.raw.Channels, j.raw.Rate), "learn", limit, false, stderr)
		if err != nil {
			return err
		}
		cfg.Templates = templates
		if limit == 0 && cfg.RelearnEvery == 0 {
			// Pass 1 saw everything: its templates stand, tracked by
			// pass 2's matched spikes. Re-learning from one stretch of
			// pass 2 would only replace them with worse ones (measured:
			// docs/scoring.md). Channels pass 1 found no unit on still
			// learn.
			cfg.RelearnEvery = -1
		}
	}
	spikes, templates, noise, st, err := j.sortPass(ctx, cfg, "sort", 0, true, stderr)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)

	if j.force {
		if err := removeOutputs(j.out, sortOutputs); err != nil {
			return err
		}
	}
	csvPath := filepath.Join(j.out, "spikes.csv")
	f, err := device.CreateFile(csvPath)
	if err != nil {
		return err
	}
	if err := sort.WriteSpikesCSV(f, spikes); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", csvPath, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Quality metrics and good/mua labels (docs/quality.md), for units.csv
	// and the Phy folder.
	units, err := quality.Params{}.Sorting(spikes, templates, noise, st.Samples, j.raw.Rate)
	if err != nil {
		return err
	}
	if !j.noPhy {
		rec := phy.Recording{DatPath: j.input, Channels: j.raw.Channels, Rate: j.raw.Rate, Positions: j.positions, Samples: st.Samples}
		if _, err = phy.Write(filepath.Join(j.out, "phy"), rec, spikes, templates, noise, phy.Options{Units: units}); err != nil {
			return err
		}
	}
	if err := writeUnitsCSV(filepath.Join(j.out, "units.csv"), units); err != nil {
		return err
	}
	if !j.noPlot {
		if err := j.writeSummary(ctx, filepath.Join(j.out, "summary.png"), spikes, templates, noise, stderr); err != nil {
			return err
		}
	}

	seconds := float64(st.Samples) / j.raw.Rate
	sorted := 0
	for _, s := range spikes {
		if s.Unit != 0 {
			sorted++
		}
	}
	fmt.Fprintf(stdout, "sorted %.1f s of %d channels in %.1f s (%.1fx real time, %d pass(es))\n",
		seconds, j.raw.Channels, elapsed.Seconds(), seconds/elapsed.Seconds(), j.passes)
	unitIDs := map[int32]bool{}
	for _, s := range spikes {
		if s.Unit != 0 {
			unitIDs[s.Unit] = true
		}
	}
	for _, t := range templates {
		unitIDs[t.Unit] = true
	}
	fmt.Fprintf(stdout, "spikes=%d sorted=%d unsorted=%d units=%d templates=%d\n", len(spikes), sorted, len(spikes)-sorted, len(unitIDs), len(templates))
	good := 0
	for _, u := range units {
		if u.Label == quality.Good {
			good++
		}
	}
	fmt.Fprintf(stdout, "wrote %s", csvPath)
	if !j.noPhy {
		fmt.Fprintf(stdout, ", %s", filepath.Join(j.out, "phy"))
	}
	fmt.Fprintf(stdout, ", %s (%d units, %d good)", filepath.Join(j.out, "units.csv"), len(units), good)
	if !j.noPlot {
		fmt.Fprintf(stdout, ", %s", filepath.Join(j.out, "summary.png"))
	}
	fmt.Fprintln(stdout)
	return nil
}

// writeUnitsCSV writes units.csv: one row per sorted unit, its channel,
// quality metrics and label (quality.WriteUnitsCSV).
func writeUnitsCSV(path string, units []quality.Unit) error {
	f, err := device.CreateFile(path)
	if err != nil {
		return err
	}
	if err := quality.WriteUnitsCSV(f, units); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
