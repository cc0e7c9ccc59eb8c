package main

import (
	"context"
	"errors"
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

// wireInfo is what a scan of a file of frames found.
type wireInfo struct {
	channels  int
	rate      float64
	gain      float64
	samples   uint64 // samples per channel covered
	spikes    bool   // spike frames
	features  bool   // feature frames
	pre, post int    // snippets
}

// scanWire reads a file of frames once: its format and what it carries.
// Damage in the file is an error naming its offset.
func scanWire(ctx context.Context, path string) (wireInfo, error) {
	var w wireInfo
	wf, err := openFrames(ctx, path)
	if err != nil {
		return w, err
	}
	defer device.Close(wf)
	for {
		b, err := wf.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return w, err
		}
		if w.channels == 0 {
			w.channels, w.rate, w.gain = b.Channels, b.Rate, b.Gain
		}
		if b.Channels != w.channels || b.Rate != w.rate {
			return w, fmt.Errorf("%s: sample %d: the format changes (%d channels at %g Hz after %d at %g Hz): sort one format at a time",
				path, b.First, b.Channels, b.Rate, w.channels, w.rate)
		}
		switch {
		case b.Spikes != nil:
			w.spikes, w.pre, w.post = true, b.Spikes.Pre, b.Spikes.Post
			if !b.Spikes.Snippets {
				return w, fmt.Errorf("%s: the spike events carry no snippets: nothing to sort them by", path)
			}
		case b.Features != nil:
			w.features = true
		}
		w.samples += uint64(b.End() - b.First)
	}
	switch {
	case w.channels == 0:
		return w, fmt.Errorf("%s: no frames of samples or spike events", path)
	case w.features:
		return w, fmt.Errorf("%s: the frames carry features (threshold crossings and power), not spikes: decode them with 'spikeline decode fit --features %s'", path, path)
	}
	return w, nil
}

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
	w, err := scanWire(ctx, j.input)
	if err != nil {
		return err
	}
	j.raw.Channels, j.raw.Rate, j.raw.Gain = w.channels, w.rate, w.gain
	if j.probe != "" && w.spikes {
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
		lc := offline.LearnConfig(cfg, w.channels, w.rate)
		if w.spikes {
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
	units, err := offline.WriteTables(j.out, r, w.rate)
	if err != nil {
		return err
	}
	what := "samples"
	if w.spikes {
		what = "spike events"
	}
	seconds := float64(w.samples) / w.rate
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
		seconds, w.channels, what, elapsed.Seconds(), seconds/elapsed.Seconds(), j.passes)
	fmt.Fprintf(stdout, "spikes=%d sorted=%d unsorted=%d units=%d templates=%d\n", len(spikes), sorted, len(spikes)-sorted, len(units), len(templates))
	restore := " (spikeline encode --restore gives one back from a lossless file)"
	if isInteropRecording(j.input) {
		restore = ""
	}
	fmt.Fprintf(stdout, "wrote %s, %s (%d units, %d good); no Phy folder or summary plot without a raw file%s\n",
		csvPath, filepath.Join(j.out, "units.csv"), len(units), good, restore)
	return nil
}

// wirePass runs one sorter (of samples, or of snippets) over the file.
func (j *sortJob) wirePass(ctx context.Context, w wireInfo, cfg sort.Config, label string, keep bool, stderr io.Writer) (offline.Result, error) {
	var s offline.Sorter
	if w.spikes {
		ss, err := sort.NewSnippetSorter(cfg, w.channels, w.rate, w.pre, w.post, w.gain)
		if err != nil {
			return offline.Result{}, usageErrorf("%v", err)
		}
		s = ss
	} else {
		ss, err := sort.New(cfg, w.channels, w.rate, w.gain)
		if err != nil {
			return offline.Result{}, usageErrorf("%v", err)
		}
		defer ss.Close()
		s = ss
	}
	wf, err := openFrames(ctx, j.input)
	if err != nil {
		return offline.Result{}, err
	}
	defer device.Close(wf)
	var bar *offline.Progress
	if !j.quiet {
		bar = offline.NewProgress(stderr, label, w.samples, w.rate)
	}
	return offline.Pass(ctx, j.input, wf, s, 0, keep, bar)
}
