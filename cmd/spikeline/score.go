package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/probe"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/phy"
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
	var notes []string
	read := func(path string) ([]sort.Spike, error) {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			ps, err := phy.ReadSorting(path)
			if err != nil {
				return nil, err
			}
			if ps.Shift != 0 {
				notes = append(notes, fmt.Sprintf("# %s: cluster ids shifted by %+d (spikeline's unit 0 means unsorted)", path, ps.Shift))
			}
			if ps.Dropped != 0 {
				notes = append(notes, fmt.Sprintf("# %s: %d spikes of noise clusters left out", path, ps.Dropped))
			}
			return ps.Spikes, nil
		}
		return readSpikesFile(path)
	}
	gt, err := read(*gtPath)
	if err != nil {
		return err
	}
	sorted, err := read(*sortedPath)
	if err != nil {
		return err
	}
	var snr map[int32]float64
	switch {
	case *unitsPath != "":
		if snr, err = readUnitsSNR(*unitsPath); err != nil {
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

// readSpikesFile reads a spikes CSV file (sort.ReadSpikesCSV).
func readSpikesFile(path string) ([]sort.Spike, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return sort.ReadSpikesCSV(f, path)
}

// unitsNumeric are the numeric columns of the units CSVs spikeline writes
// (spikeline sim's and spikeline sort's units.csv). When present, each
// must hold a finite number on every row (snr may be inf: a unit on a
// channel without noise), so that a damaged file is refused, not half read.
var unitsNumeric = map[string]bool{
	"unit_id": true, "unit": true, "channel": true, "snr": true, "n_spikes": true,
	"peak_uv": true, "band_peak_uv": true, "noise_uv": true, "baseline_hz": true, "modulation_hz": true,
	"preferred_dir_rad": true, "width_ms": true, "refractory_ms": true, "burst_prob": true, "band_lag_samples": true,
}

// readUnitsSNR reads a units CSV file (readUnitsCSV).
func readUnitsSNR(path string) (map[int32]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readUnitsCSV(f, path)
}

// readUnitsCSV reads unit_id and snr from a units CSV. Other columns are
// ignored, except that the numeric ones spikeline writes (unitsNumeric)
// must be numbers; a unit listed twice, a NaN or a line longer than
// device.MaxLineBytes is an error. Errors name the file, line and column.
func readUnitsCSV(r io.Reader, name string) (map[int32]float64, error) {
	cr := csv.NewReader(device.LineLimit(r, device.MaxLineBytes))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s:1: reading header: %w", name, err)
	}
	iu, is := -1, -1
	var numeric []int
	cols := make([]string, len(head))
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(h))
		cols[i] = h
		switch h {
		case "unit_id", "unit":
			iu = i
		case "snr":
			is = i
		}
		if unitsNumeric[h] {
			numeric = append(numeric, i)
		}
	}
	if iu < 0 || is < 0 {
		return nil, fmt.Errorf("%s:1: units CSV needs columns unit_id and snr (header %q)", name, strings.Join(head, ","))
	}
	out := map[int32]float64{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if len(rec) != len(head) {
			return nil, fmt.Errorf("%s:%d: %d fields, the header has %d", name, line, len(rec), len(head))
		}
		for _, i := range numeric {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64)
			if err != nil || math.IsNaN(v) || (math.IsInf(v, 0) && i != is) || math.IsInf(v, -1) {
				return nil, fmt.Errorf("%s:%d: %s = %q, want a number", name, line, cols[i], rec[i])
			}
		}
		u, err := strconv.ParseInt(strings.TrimSpace(rec[iu]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s = %q, want an integer unit id", name, line, cols[iu], rec[iu])
		}
		if _, dup := out[int32(u)]; dup {
			return nil, fmt.Errorf("%s:%d: unit %d listed twice", name, line, u)
		}
		out[int32(u)], _ = strconv.ParseFloat(strings.TrimSpace(rec[is]), 64)
	}
}
