package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/quality"
)

// Sorter is what a pass runs: a sort.Sorter, or a sort.SnippetSorter for
// a file of spike events.
type Sorter interface {
	Process(device.Block, []sort.Spike) ([]sort.Spike, error)
	Flush([]sort.Spike) []sort.Spike
	Templates() []sort.Template
	Noise([]float32) []float32
	Stats() sort.Stats
}

// Result is what a pass leaves: its spikes (when kept), the sorter's
// templates, noise (µV per channel) and counters.
type Result struct {
	Spikes    []sort.Spike
	Templates []sort.Template
	Noise     []float32
	Stats     sort.Stats
}

// Pass runs s over src from where it stands to its end, or over limit
// samples (0: no limit), and keeps the spikes when keep is set. name
// names the input in errors; bar (nil: none) shows the progress.
func Pass(ctx context.Context, name string, src device.Source, s Sorter, limit uint64, keep bool, bar *Progress) (Result, error) {
	var spikes, buf []sort.Spike
	var done uint64
	for limit == 0 || done < limit {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, err
		}
		if n := uint64(b.Len()); limit > 0 && done+n > limit {
			b.Samples = b.Samples[:int(limit-done)*b.Channels]
		}
		buf, err = s.Process(b, buf[:0])
		if err != nil {
			return Result{}, fmt.Errorf("%s: samples %d..%d: %w", name, b.First, b.End(), err)
		}
		if keep {
			spikes = append(spikes, buf...)
		}
		done += b.End() - b.First
		bar.Update(done, false)
	}
	buf = s.Flush(buf[:0])
	if keep {
		spikes = append(spikes, buf...)
	}
	bar.Update(done, true)
	return Result{spikes, s.Templates(), s.Noise(nil), s.Stats()}, nil
}

// WriteTables writes spikes.csv (every spike, sort.WriteSpikesCSV) and
// units.csv (one row per sorted unit: its channel, quality metrics and
// label, quality.WriteUnitsCSV) into dir, and returns the units; rate is
// the recording's sample rate.
func WriteTables(dir string, r Result, rate float64) ([]quality.Unit, error) {
	csvPath := filepath.Join(dir, "spikes.csv")
	f, err := device.CreateFile(csvPath)
	if err != nil {
		return nil, err
	}
	if err := sort.WriteSpikesCSV(f, r.Spikes); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", csvPath, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	// Quality metrics and good/mua labels (docs/quality.md).
	units, err := quality.Params{}.Sorting(r.Spikes, r.Templates, r.Noise, r.Stats.Samples, rate)
	if err != nil {
		return nil, err
	}
	return units, writeUnitsCSV(filepath.Join(dir, "units.csv"), units)
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
