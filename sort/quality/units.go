package quality

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// Label is a unit's curation label (schema.Label).
type Label = schema.Label

// Labels. Unlabelled is the zero value (no metrics).
const (
	Unlabelled = schema.Unlabelled
	Good       = schema.Good // few refractory period violations
	MUA        = schema.MUA  // multi-unit activity: contaminated, or too few spikes to tell
)

// Label returns the label of a unit with metrics m: Good when it has at
// least MinSpikes spikes and an rp_contamination of at most
// MaxContamination, MUA otherwise (an undefined contamination is MUA).
func (p Params) Label(m Metrics) Label {
	p = p.Defaults()
	if m.NumSpikes >= p.MinSpikes && m.RPContamination <= p.MaxContamination {
		return Good
	}
	return MUA
}

// Unit is one sorted unit with its metrics and label (schema.Unit).
type Unit = schema.Unit

// Sorting computes the metrics of every sorted unit of a sort: every unit
// id other than 0 that has spikes or a template, in increasing id order.
// spikes may be in any order; their samples count from the first sample of
// the recording (samples long, at rate Hz). noise is the per-channel noise
// σ in µV (may be nil: snr is then NaN).
func (p Params) Sorting(spikes []sort.Spike, templates []sort.Template, noise []float32, samples uint64, rate float64) ([]Unit, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	sp := make([]sort.Spike, 0, len(spikes))
	for _, s := range spikes {
		if s.Unit != 0 {
			sp = append(sp, s)
		}
	}
	slices.SortStableFunc(sp, func(a, b sort.Spike) int {
		return cmp.Or(cmp.Compare(a.Unit, b.Unit), cmp.Compare(a.Sample, b.Sample))
	})
	tmpl := map[int32]sort.Template{}
	for _, t := range templates {
		if t.Unit != 0 {
			tmpl[t.Unit] = t
		}
	}
	var ids []int32
	for i := range sp {
		if i == 0 || sp[i].Unit != sp[i-1].Unit {
			ids = append(ids, sp[i].Unit)
		}
	}
	withSpikes := len(ids)
	for u := range tmpl {
		if _, found := slices.BinarySearch(ids[:withSpikes], u); !found {
			ids = append(ids, u)
		}
	}
	slices.Sort(ids)

	var times []uint64
	var amps []float32
	out := make([]Unit, 0, len(ids))
	for _, u := range ids {
		lo, _ := slices.BinarySearchFunc(sp, u, func(s sort.Spike, u int32) int { return cmp.Compare(s.Unit, u) })
		hi := lo
		for hi < len(sp) && sp[hi].Unit == u {
			hi++
		}
		times, amps = times[:0], amps[:0]
		for _, s := range sp[lo:hi] {
			times = append(times, s.Sample)
			amps = append(amps, s.Amplitude)
		}
		in := Input{Spikes: times, Amplitudes: amps}
		unit := Unit{ID: u, Channel: -1}
		if hi > lo {
			unit.Channel = sp[lo].Channel
		}
		if t, ok := tmpl[u]; ok {
			unit.Channel = t.Channel
			in.Template = t.Waveform
			if t.Channel >= 0 && int(t.Channel) < len(noise) {
				in.Noise = noise[t.Channel]
			}
		}
		m, err := p.Compute(in, samples, rate)
		if err != nil {
			return nil, fmt.Errorf("quality: unit %d: %w", u, err)
		}
		unit.Metrics, unit.Label = m, p.Label(m)
		out = append(out, unit)
	}
	return out, nil
}

// UnitsHeader is the header WriteUnitsCSV writes.
const UnitsHeader = "unit_id,channel,num_spikes,firing_rate,presence_ratio,snr,isi_violations_ratio,isi_violations_count,rp_contamination,rp_violations,amplitude_cutoff,amplitude_median,label"

// WriteUnitsCSV writes units as CSV (UnitsHeader, one row per unit). An
// undefined metric is written as NaN, which pandas and NumPy read as NaN.
func WriteUnitsCSV(w io.Writer, units []Unit) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(UnitsHeader + "\n")
	var b []byte
	for _, u := range units {
		b = b[:0]
		b = strconv.AppendInt(b, int64(u.ID), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(u.Channel), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(u.NumSpikes), 10)
		for _, v := range []float64{u.FiringRate, u.PresenceRatio, u.SNR, u.ISIViolationsRatio} {
			b = appendFloat(append(b, ','), v)
		}
		b = strconv.AppendInt(append(b, ','), int64(u.ISIViolationsCount), 10)
		b = appendFloat(append(b, ','), u.RPContamination)
		b = strconv.AppendInt(append(b, ','), int64(u.RPViolations), 10)
		b = appendFloat(append(b, ','), u.AmplitudeCutoff)
		b = appendFloat(append(b, ','), u.AmplitudeMedian)
		b = append(b, ',')
		b = append(b, u.Label.String()...)
		b = append(b, '\n')
		bw.Write(b)
	}
	return bw.Flush()
}

// appendFloat writes v with 6 significant digits, NaN as "NaN".
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) {
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', 6, 64)
}
