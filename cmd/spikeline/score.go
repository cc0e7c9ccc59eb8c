package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/probe"
	"github.com/spikeline/spikeline/sort/score"
)

func init() {
	register(command{
		name:    "score",
		summary: "score a sorting against ground truth (SpikeInterface-style accuracy by SNR)",
		run:     runScore,
	})
}

func runScore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("score", stderr)
	gtPath := flags.String("gt", "", "ground-truth spikes: CSV (unit_id,sample_index[,channel,...]) or a Phy folder")
	sortedPath := flags.String("sorted", "", "sorted spikes: CSV (spikeline sort's spikes.csv) or a Phy/Kilosort folder (spike_times.npy, spike_clusters.npy, ...)")
	unitsPath := flags.String("units", "", "ground-truth units CSV with columns unit_id and snr (spikeline sim's units.csv); without it, SNR is measured from the --meta recording")
	rate := flags.Float64("rate", 0, "sample rate in Hz (or --meta)")
	metaPath := flags.String("meta", "", "recording.json sidecar (or its directory) giving the sample rate and the recording to measure SNR on")
	delta := flags.Float64("delta", 0.4, "match tolerance in ms")
	match := flags.Float64("match-score", 0.5, "minimum agreement to pair a sorted unit with a ground-truth unit")
	well := flags.Float64("well-detected", 0.8, "agreement of a well-detected unit")
	asJSON := flags.Bool("json", false, "write the comparison as JSON instead of text")
	positions := flags.String("positions", "", "probe layout (probeinterface JSON, CSV channel,x_um,y_um, or a built-in layout with --meta): a spike then matches only on a channel within --radius-um of the true one")
	radius := flags.Float64("radius-um", 0, "with --positions: how far from the true main channel a detection still counts, µm (0: 50)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline score --gt gt_spikes.csv --sorted spikes.csv [--units units.csv] (--rate HZ | --meta recording.json)")
		flags.PrintDefaults()
	}
	if err := parseFlags(flags, args, false); err != nil {
		return err
	}
	switch {
	case *gtPath == "":
		return usageErrorf("--gt is required")
	case *sortedPath == "":
		return usageErrorf("--sorted is required")
	case *rate == 0 && *metaPath == "":
		return usageErrorf("give the sample rate with --rate or --meta")
	case *rate != 0 && *metaPath != "":
		return usageErrorf("give either --rate or --meta, not both")
	case *delta <= 0:
		return usageErrorf("--delta %g: want > 0 ms", *delta)
	case *match <= 0 || *match > 1:
		return usageErrorf("--match-score %g: want in (0, 1]", *match)
	case *well <= 0 || *well > 1:
		return usageErrorf("--well-detected %g: want in (0, 1]", *well)
	case *radius < 0 || math.IsNaN(*radius) || math.IsInf(*radius, 0):
		return usageErrorf("--radius-um %g: want > 0 µm", *radius)
	case *radius != 0 && *positions == "":
		return usageErrorf("--radius-um needs --positions")
	}
	if *rate != 0 {
		if err := device.CheckRate("", "--rate", *rate); err != nil {
			return usageErrorf("%v", err)
		}
	}
	metaChannels := 0
	if *metaPath != "" {
		path := *metaPath
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			path = filepath.Join(path, "recording.json")
		}
		m, err := device.ReadMeta(path)
		if err != nil {
			return err
		}
		*rate = m.Rate
		metaChannels = m.Channels
	}
	var pos [][2]float64
	if *positions != "" {
		var p *probe.Probe
		var err error
		if metaChannels > 0 {
			p, err = probe.Open(*positions, metaChannels)
		} else {
			p, err = probe.ReadFile(*positions)
		}
		if err != nil {
			return usageErrorf("--positions: %v", err)
		}
		pos = p.Positions
	}
	gt, notes, err := score.ReadSorting(*gtPath)
	if err != nil {
		return err
	}
	sorted, notes2, err := score.ReadSorting(*sortedPath)
	if err != nil {
		return err
	}
	notes = append(notes, notes2...)
	var snr map[int32]float64
	switch {
	case *unitsPath != "":
		if snr, err = score.ReadUnitsSNRFile(*unitsPath); err != nil {
			return err
		}
	case *metaPath != "":
		// SNR = |mean band-passed waveform extremum| / MAD noise, measured.
		src, _, err := device.OpenRecording(*metaPath, device.RawConfig{BlockSamples: 8192})
		if errors.Is(err, fs.ErrNotExist) {
			if !*asJSON {
				fmt.Fprintf(stdout, "# no SNR: %v\n", err)
			}
			break
		}
		if err != nil {
			return err
		}
		snr, err = score.MeasureSNR(ctx, src, gt, score.SNROptions{})
		src.Close()
		if err != nil {
			return err
		}
		if !*asJSON {
			fmt.Fprintf(stdout, "# SNR measured from %s (|mean band-passed waveform extremum| / MAD noise)\n", *metaPath)
		}
	}
	c, err := score.Compare(gt, sorted, *rate, score.Options{DeltaTime: *delta, MatchScore: *match, WellDetectedScore: *well, Positions: pos, RadiusUM: *radius})
	if err != nil {
		return err
	}
	if *asJSON {
		return c.WriteJSON(stdout, snr)
	}
	for _, n := range notes {
		fmt.Fprintln(stdout, n)
	}
	return c.WriteReport(stdout, snr)
}
