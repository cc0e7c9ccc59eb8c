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
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/probe"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/offline"
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
	profile   string // --cpuprofile
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
	fs.StringVar(&j.profile, "cpuprofile", "", "write a Go CPU profile of the sort (both passes and the outputs) to this file (go tool pprof)")
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
	if j.input != "" && (device.IsWireFile(j.input) || offline.IsInteropRecording(j.input)) {
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
	stop, err := startCPUProfile(j.profile)
	if err != nil {
		return err
	}
	defer stop()
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
	// Blocks are sorted or filtered and dropped: the source reuses the
	// buffers offline.ReadAhead needs (no 3 MB allocation per block at
	// 384 channels).
	cfg := device.RawConfig{Channels: j.raw.Channels, Rate: j.raw.Rate, Gain: j.raw.Gain, BlockSamples: 4096, SkipLayoutCheck: j.skipLayout,
		Buffers: offline.AheadBuffers}
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

// sortPass runs one sorter over the first limit samples of the file (all
// if limit is 0) and returns its spikes (when keep), templates and noise.
func (j *sortJob) sortPass(ctx context.Context, cfg sort.Config, label string, limit uint64, keep bool, stderr io.Writer) (offline.Result, error) {
	src, err := j.open()
	if err != nil {
		return offline.Result{}, err
	}
	defer src.Close()
	s, err := sort.New(cfg, j.raw.Channels, j.raw.Rate, j.raw.Gain)
	if err != nil {
		return offline.Result{}, err
	}
	defer s.Close()
	total := src.Samples()
	if limit > 0 {
		total = min(total, limit)
	}
	var bar *offline.Progress
	if !j.quiet {
		bar = offline.NewProgress(stderr, label, total, j.raw.Rate)
	}
	// Reading and decoding the file overlap with sorting.
	ahead := offline.ReadAhead(ctx, src)
	defer ahead.Stop()
	return offline.Pass(ctx, j.input, ahead, s, limit, keep, bar)
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
		var learned offline.Result
		var err error
		stage(ctx, "learn", func(ctx context.Context) {
			learned, err = j.sortPass(ctx, offline.LearnConfig(cfg, j.raw.Channels, j.raw.Rate), "learn", limit, false, stderr)
		})
		if err != nil {
			return err
		}
		cfg.Templates = learned.Templates
		if limit == 0 && cfg.RelearnEvery == 0 {
			// Pass 1 saw everything: its templates stand, tracked by
			// pass 2's matched spikes. Re-learning from one stretch of
			// pass 2 would only replace them with worse ones (measured:
			// docs/scoring.md). Channels pass 1 found no unit on still
			// learn.
			cfg.RelearnEvery = -1
		}
	}
	var r offline.Result
	var err error
	stage(ctx, "sort", func(ctx context.Context) { r, err = j.sortPass(ctx, cfg, "sort", 0, true, stderr) })
	if err != nil {
		return err
	}
	spikes, templates, noise, st := r.Spikes, r.Templates, r.Noise, r.Stats
	elapsed := time.Since(start)

	if j.force {
		if err := removeOutputs(j.out, sortOutputs); err != nil {
			return err
		}
	}
	// spikes.csv, and units.csv with the quality metrics and good/mua
	// labels (docs/quality.md) the Phy folder gets too. Then the Phy folder
	// and summary.png, side by side (summary.png reads the recording once
	// more).
	csvPath := filepath.Join(j.out, "spikes.csv")
	var units []quality.Unit
	stage(ctx, "tables", func(context.Context) { units, err = offline.WriteTables(j.out, r, j.raw.Rate) })
	if err != nil {
		return err
	}
	// (Everything the goroutines read is taken before they start:
	// summary's Open, j.open, sets j.raw and j.input.)
	var errPhy, errPlot error
	var wg sync.WaitGroup
	if !j.noPhy {
		rec := phy.Recording{DatPath: j.input, Channels: j.raw.Channels, Rate: j.raw.Rate, Positions: j.positions, Samples: st.Samples}
		dir := filepath.Join(j.out, "phy")
		wg.Go(func() {
			stage(ctx, "phy", func(context.Context) {
				_, errPhy = phy.Write(dir, rec, spikes, templates, noise, phy.Options{Units: units})
			})
		})
	}
	if !j.noPlot {
		o := offline.SummaryOptions{Name: j.input, Config: j.cfg, Channels: j.raw.Channels, Rate: j.raw.Rate, MaxPanels: j.maxPanels, Open: j.open}
		if !j.quiet {
			o.Progress = stderr
		}
		path := filepath.Join(j.out, "summary.png")
		wg.Go(func() {
			stage(ctx, "summary", func(ctx context.Context) { errPlot = offline.Summary(ctx, path, r, o) })
		})
	}
	wg.Wait()
	if err := errors.Join(errPhy, errPlot); err != nil {
		return err
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

// stage runs f with the pprof label stage=name, so a --cpuprofile tells
// the passes and the outputs apart (go tool pprof -tagfocus stage=phy);
// goroutines f starts carry the label too.
func stage(ctx context.Context, name string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels("stage", name), f)
}
