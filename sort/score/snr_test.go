package score_test

import (
	"context"
	"io"
	"math"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/sort/score"
)

// blockSource replays recorded blocks.
type blockSource struct {
	blocks []device.Block
	i      int
}

func (s *blockSource) Next(ctx context.Context) (device.Block, error) {
	if s.i == len(s.blocks) {
		return device.Block{}, io.EOF
	}
	s.i++
	return s.blocks[s.i-1], nil
}

// TestMeasureSNRAgainstSim checks the measured SNR against the
// simulator's own definition (|band-passed template extremum| / band
// noise rms) on a recording without drift, bursts or sub-sample jitter.
func TestMeasureSNRAgainstSim(t *testing.T) {
	cfg := clean(6, 20, 5)
	cfg.NoDrift, cfg.NoBursts, cfg.NoJitter = true, true, true
	cfg.NoLFP, cfg.NoDC, cfg.NoMains = false, false, false // the band-pass removes them
	rec := simulate(t, cfg)
	got, err := score.MeasureSNR(context.Background(), &blockSource{blocks: rec.blocks}, rec.gt, score.SNROptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rec.snr) {
		t.Fatalf("measured %d units, simulated %d", len(got), len(rec.snr))
	}
	for id, want := range rec.snr {
		if rel := math.Abs(got[id]-want) / want; rel > 0.10 {
			t.Errorf("unit %d: SNR %.2f, simulator says %.2f (%.0f%% off)", id, got[id], want, 100*rel)
		} else {
			t.Logf("unit %d: SNR %.2f, simulator %.2f", id, got[id], want)
		}
	}
}

func TestMeasureSNRErrors(t *testing.T) {
	b := device.Block{First: 0, Rate: 30000, Channels: 1, Gain: 1, Samples: make([]int16, 100)}
	gap := b
	gap.First = 500
	_, err := score.MeasureSNR(context.Background(), &blockSource{blocks: []device.Block{b, gap}}, []sort.Spike{{Sample: 50, Unit: 1}}, score.SNROptions{})
	if err == nil {
		t.Error("gap accepted")
	}
	snr, err := score.MeasureSNR(context.Background(), &blockSource{}, nil, score.SNROptions{})
	if err != nil || len(snr) != 0 {
		t.Errorf("empty source: %v %v", snr, err)
	}
}

// TestMeasureSNRBlockSize checks that the block size does not matter:
// blocks far larger than the ring are processed in chunks.
func TestMeasureSNRBlockSize(t *testing.T) {
	rec := simulate(t, clean(3, 6, 9))
	small, err := score.MeasureSNR(context.Background(), &blockSource{blocks: rec.blocks}, rec.gt, score.SNROptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Re-cut the recording into blocks of 50000 samples.
	var all []int16
	for _, b := range rec.blocks {
		all = append(all, b.Samples...)
	}
	var big []device.Block
	per := 50000 * rec.chans
	for off := 0; off < len(all); off += per {
		end := min(off+per, len(all))
		big = append(big, device.Block{First: uint64(off / rec.chans), Rate: rec.rate, Channels: rec.chans, Gain: rec.gain, Samples: all[off:end]})
	}
	large, err := score.MeasureSNR(context.Background(), &blockSource{blocks: big}, rec.gt, score.SNROptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(small) == 0 || len(small) != len(large) {
		t.Fatalf("%d units with small blocks, %d with large", len(small), len(large))
	}
	for id, v := range small {
		if math.Abs(large[id]-v) > 1e-6*v {
			t.Errorf("unit %d: SNR %g with small blocks, %g with large", id, v, large[id])
		}
	}
}
