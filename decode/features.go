package decode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

// Features of a headstage in feature mode (protocol version 2: threshold
// crossings at 1–4 levels and spike-band power, per bin and channel) are
// decoded with the same binning, fitting and online decoding as spikes:
// each feature value becomes a feature record, a sort.Spike at its bin's
// first sample whose Unit is the feature's key (negative: -(1 + 8·channel
// + kind), kind 0–3 a crossing level, 4 the power) and whose Amplitude is
// its value. Under the feature groupings a record adds its value to its
// column (a spike adds 1); under the spike groupings feature records count
// for nothing, and under ByUnitAndFeatures both count. Decoder bins must
// be a whole number of feature bins (a record lands in the decoder bin
// holding its bin's start).

// Feature kinds.
const (
	FeaturePower = 4 // kind of the power column; 0..3 are crossing levels
)

// FeatureKey returns the column key of channel ch's feature kind.
func FeatureKey(ch, kind int) int32 { return -int32(1 + 8*ch + kind) }

// FeatureOf returns the channel and kind of a feature key (ok false for a
// unit's key).
func FeatureOf(key int32) (ch, kind int, ok bool) {
	if key >= 0 {
		return 0, 0, false
	}
	k := int(-key - 1)
	return k / 8, k % 8, true
}

// featureKey is Key for feature records and the feature groupings;
// handled is false where Key's spike groupings apply.
func (g Grouping) featureKey(s sort.Spike) (key int32, ok, handled bool) {
	feature := s.Unit < 0
	switch g {
	case ByFeatures, ByCrossings, ByPower:
		if !feature {
			return 0, false, true
		}
		_, kind, _ := FeatureOf(s.Unit)
		switch g {
		case ByCrossings:
			return s.Unit, kind < FeaturePower, true
		case ByPower:
			return s.Unit, kind == FeaturePower, true
		}
		return s.Unit, true, true
	case ByUnitAndFeatures:
		return s.Unit, s.Unit != 0, true
	}
	if feature {
		return 0, false, true // a feature is not a spike
	}
	return 0, false, false
}

// weight is what s adds to its column: 1 for a spike, the value of a
// feature record.
func (g Grouping) weight(s sort.Spike) float64 {
	if s.Unit < 0 {
		return float64(s.Amplitude)
	}
	return 1
}

// PowerFeature is the value a power code becomes: the band-passed
// signal's rms in µV (the square root of the mean square the code
// stands for, times the gain).
func PowerFeature(code uint8, gain float64) float32 {
	return float32(math.Sqrt(device.PowerValue(code)) * gain)
}

// FeatureSpikes appends the feature records of f, whose first bin starts
// at device sample start, to dst: per bin, each channel's power and its
// non-zero crossing counts. gain is the µV per count.
func FeatureSpikes(dst []sort.Spike, start uint64, f *device.Features, gain float64) []sort.Spike {
	C, L := f.Channels, f.Levels
	for b := range f.Bins() {
		s := start + uint64(b*f.BinSamples)
		for c := range C {
			dst = append(dst, sort.Spike{Sample: s, Channel: int32(c), Unit: FeatureKey(c, FeaturePower), Amplitude: PowerFeature(f.Power[b*C+c], gain)})
			for l := range L {
				if n := f.Count(b, l, c); n > 0 {
					dst = append(dst, sort.Spike{Sample: s, Channel: int32(c), Unit: FeatureKey(c, l), Amplitude: float32(n)})
				}
			}
		}
	}
	return dst
}

// FeatureFile is what ReadFeatures read.
type FeatureFile struct {
	Rate       float64
	BinSamples uint64
	Channels   int
	Levels     int
	First, End uint64       // device samples the bins cover
	Records    []sort.Spike // feature records (FeatureSpikes), in time order
	Gaps       []Gap        // samples the file lacks between its first and last bin
	Link       device.Stats
}

// Keys returns every feature key of the file under g (a feature grouping).
func (f *FeatureFile) Keys(g Grouping) []int32 {
	var keys []int32
	for c := range f.Channels {
		for kind := range f.Levels {
			keys = append(keys, FeatureKey(c, kind))
		}
		keys = append(keys, FeatureKey(c, FeaturePower))
	}
	var out []int32
	for _, k := range keys {
		if _, ok := g.Key(sort.Spike{Unit: k}); ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// ReadFeatures reads a file of feature frames (spikeline encode --mode
// features, or a capture of a headstage in feature mode). Samples the
// frames skip (gaps, lost frames) are returned as Gaps; damage in the file
// is counted in Link, not an error. Frames of another kind, or a change
// of bin length or channel count, are an error.
func ReadFeatures(ctx context.Context, path string) (*FeatureFile, error) {
	wf, err := device.OpenWireFile(path)
	if err != nil {
		return nil, err
	}
	defer wf.Close()
	ff := &FeatureFile{}
	for {
		b, err := wf.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if b.Features == nil {
			return nil, fmt.Errorf("decode: %s: frame at sample %d carries %s, not features", path, b.First, blockKind(&b))
		}
		f := b.Features
		if ff.Channels == 0 {
			ff.Rate, ff.BinSamples, ff.Channels, ff.Levels = b.Rate, uint64(f.BinSamples), f.Channels, f.Levels
			ff.First, ff.End = b.First, b.First
		}
		if f.Channels != ff.Channels || uint64(f.BinSamples) != ff.BinSamples || b.Rate != ff.Rate || f.Levels != ff.Levels {
			return nil, fmt.Errorf("decode: %s: sample %d: features change from %d channels, %d levels, %d-sample bins at %g Hz to %d, %d, %d at %g Hz",
				path, b.First, ff.Channels, ff.Levels, ff.BinSamples, ff.Rate, f.Channels, f.Levels, f.BinSamples, b.Rate)
		}
		switch {
		case b.First > ff.End:
			ff.Gaps = append(ff.Gaps, Gap{Start: ff.End, End: b.First})
		case b.First < ff.End:
			return nil, fmt.Errorf("decode: %s: sample %d: the frames go back from %d (a device reset): decode one session at a time", path, b.First, ff.End)
		}
		ff.Records = FeatureSpikes(ff.Records, b.First, f, b.Gain)
		ff.End = b.End()
	}
	if ff.Channels == 0 {
		return nil, fmt.Errorf("decode: %s: no feature frames", path)
	}
	ff.Link = wf.Stats()
	return ff, nil
}

func blockKind(b *device.Block) string {
	switch {
	case b.Spikes != nil:
		return "spike events"
	case len(b.Samples) > 0:
		return "samples"
	}
	return "nothing"
}
