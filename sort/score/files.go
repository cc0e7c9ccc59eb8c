package score

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/phy"
)

// ReadSorting reads the spikes of a sorting: a spikes CSV file
// (sort.ReadSpikesCSV) or a Phy folder (phy.ReadSorting). For a Phy
// folder, notes say what was changed on the way in ("# ..." lines: cluster
// ids shifted, noise clusters left out).
func ReadSorting(path string) ([]sort.Spike, []string, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		ps, err := phy.ReadSorting(path)
		if err != nil {
			return nil, nil, err
		}
		var notes []string
		if ps.Shift != 0 {
			notes = append(notes, fmt.Sprintf("# %s: cluster ids shifted by %+d (spikeline's unit 0 means unsorted)", path, ps.Shift))
		}
		if ps.Dropped != 0 {
			notes = append(notes, fmt.Sprintf("# %s: %d spikes of noise clusters left out", path, ps.Dropped))
		}
		return ps.Spikes, notes, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	spikes, err := sort.ReadSpikesCSV(f, path)
	return spikes, nil, err
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

// ReadUnitsSNRFile reads the SNR of every unit from a units CSV file
// (ReadUnitsSNR).
func ReadUnitsSNRFile(path string) (map[int32]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadUnitsSNR(f, path)
}

// ReadUnitsSNR reads unit_id and snr from a units CSV (spikeline sim's
// or spikeline sort's units.csv, or any with those columns); name names it
// in errors. Other columns are
// ignored, except that the numeric ones spikeline writes (unitsNumeric)
// must be numbers; a unit listed twice, a NaN or a line longer than
// device.MaxLineBytes is an error. Errors name the file, line and column.
func ReadUnitsSNR(r io.Reader, name string) (map[int32]float64, error) {
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
