package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/offline"
	"github.com/spikeline/spikeline/sort/quality"
)

// 'spikeline sort --input FILE' where FILE is a file of wire-protocol
// frames (spikeline encode, a capture of a headstage): frames of samples
// (raw or lossless) are sorted as a recording is; spike events from a
// headstage in spike-event mode are sorted from their snippets
// (sort.SnippetSorter: templates learned on the snippets, no filter).
// Both run the two passes of an offline sort. Phy and the summary plot
// need a raw file: 'spikeline encode --restore' gives one back.

// runWire sorts a file of frames; the flags are parsed.
func (j *sortJob) runWire(ctx context.Context, fs *flag.FlagSet, sortFlags func() (sort.Config, error), stdout, stderr io.Writer) error {
	given := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "meta", "channels", "rate", "gain", "positions":
			given = true
		}
	})
	switch {
	case given:
		return usageErrorf("%s describes itself: drop --meta, --channels, --rate, --gain and --positions", j.input)
	case j.out == "":
		return usageErrorf("--out is required")
	case j.passes != 1 && j.passes != 2:
		return usageErrorf("--passes %d: want 1 or 2", j.passes)
	case j.radius != 0 && j.probe == "":
		return usageErrorf("--radius-um needs --probe")
	case j.radius < 0 || math.IsNaN(j.radius) || math.IsInf(j.radius, 0):
		return usageErrorf("--radius-um %g: want > 0 µm", j.radius)
	}
	cfg, err := sortFlags()
	if err != nil {
		return err
	}
	if err := checkOutDir("--out", j.out, j.force, sortOutputs); err != nil {
		return err
	}
	w, err := offline.ScanFrames(ctx, j.input)
	if err != nil {
		return err
	}
	j.raw.Channels, j.raw.Rate, j.raw.Gain = w.Channels, w.Rate, w.Gain
	if j.probe != "" && w.Spikes {
		return usageErrorf("--probe: %s holds spike events, each a snippet of one channel; sorting on a probe's neighbourhoods needs the samples (a lossless recording)", j.input)
	}
	j.cfg = cfg
	if err := j.useProbe(); err != nil {
		return err
	}
	cfg = j.cfg
	if err := os.MkdirAll(j.out, 0o755); err != nil {
		return err
	}
	start := time.Now()
	cfg.Deterministic = true
	if j.passes == 2 {
		// Pass 1 learns over the whole file; pass 2 sorts with its templates.
		lc := offline.LearnConfig(cfg, w.Channels, w.Rate)
		if w.Spikes {
			lc.LearnSeconds = math.MaxInt32 // learn at the end, from the whole file
		}
		learned, err := j.wirePass(ctx, w, lc, "learn", false, stderr)
		if err != nil {
			return err
		}
		cfg.Templates = learned.Templates
		if cfg.RelearnEvery == 0 {
			cfg.RelearnEvery = -1
		}
	}
	r, err := j.wirePass(ctx, w, cfg, "sort", true, stderr)
	if err != nil {
		return err
	}
	spikes, templates := r.Spikes, r.Templates
	elapsed := time.Since(start)
	if j.force {
		if err := removeOutputs(j.out, sortOutputs); err != nil {
			return err
		}
	}
	csvPath := filepath.Join(j.out, "spikes.csv")
	units, err := offline.WriteTables(j.out, r, w.Rate)
	if err != nil {
		return err
	}
	what := "samples"
	if w.Spikes {
		what = "spike events"
	}
	seconds := float64(w.Samples) / w.Rate
	sorted, good := 0, 0
	for _, s := range spikes {
		if s.Unit != 0 {
			sorted++
		}
	}
	for _, u := range units {
		if u.Label == quality.Good {
			good++
		}
	}
	fmt.Fprintf(stdout, "sorted %.1f s of %d channels (%s) in %.1f s (%.1fx real time, %d pass(es))\n",
		seconds, w.Channels, what, elapsed.Seconds(), seconds/elapsed.Seconds(), j.passes)
	fmt.Fprintf(stdout, "spikes=%d sorted=%d unsorted=%d units=%d templates=%d\n", len(spikes), sorted, len(spikes)-sorted, len(units), len(templates))
	restore := " (spikeline encode --restore gives one back from a lossless file)"
	if offline.IsInteropRecording(j.input) {
		restore = ""
	}
	fmt.Fprintf(stdout, "wrote %s, %s (%d units, %d good); no Phy folder or summary plot without a raw file%s\n",
		csvPath, filepath.Join(j.out, "units.csv"), len(units), good, restore)
	return nil
}

// wirePass runs one sorter (of samples, or of snippets) over the file.
func (j *sortJob) wirePass(ctx context.Context, w offline.FrameInfo, cfg sort.Config, label string, keep bool, stderr io.Writer) (offline.Result, error) {
	var s offline.Sorter
	if w.Spikes {
		ss, err := sort.NewSnippetSorter(cfg, w.Channels, w.Rate, w.Pre, w.Post, w.Gain)
		if err != nil {
			return offline.Result{}, usageErrorf("%v", err)
		}
		s = ss
	} else {
		ss, err := sort.New(cfg, w.Channels, w.Rate, w.Gain)
		if err != nil {
			return offline.Result{}, usageErrorf("%v", err)
		}
		defer ss.Close()
		s = ss
	}
	wf, err := offline.OpenFrames(ctx, j.input)
	if err != nil {
		return offline.Result{}, err
	}
	defer device.Close(wf)
	var bar *offline.Progress
	if !j.quiet {
		bar = offline.NewProgress(stderr, label, w.Samples, w.Rate)
	}
	return offline.Pass(ctx, j.input, wf, s, 0, keep, bar)
}
