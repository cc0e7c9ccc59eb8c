package decode

import (
	"errors"
	"fmt"
	"math"

	"github.com/spikeline/spikeline/sort"
)

// Dataset is binned neural counts with the behaviour averaged into the
// same bins: what fitting and evaluation work on.
type Dataset struct {
	Bins    *Binned
	Outputs []string
	// Behaviour is time-major: Bins.Len() rows of len(Outputs).
	Behaviour []float64
	// BehaviourObserved[i] is false for bins with no behaviour.
	BehaviourObserved []bool
}

// Len returns the number of bins.
func (d *Dataset) Len() int { return d.Bins.Len() }

// NewDataset bins spikes and behaviour over the behaviour's extent (from
// the bin holding its first sample to the bin holding its last). keys nil
// takes every unit (or channel) present in spikes. Bins overlapping gaps
// are not observed.
func NewDataset(spikes []sort.Spike, beh *Behaviour, g Grouping, keys []int32, rate float64, width uint64, gaps []Gap) (*Dataset, error) {
	if beh == nil || beh.Len() == 0 {
		return nil, errors.New("decode: no behaviour")
	}
	if width == 0 {
		return nil, errors.New("decode: bin width 0 samples")
	}
	start := beh.Samples[0] / width * width
	end := (beh.Samples[beh.Len()-1]/width + 1) * width
	b, err := BinSpikes(spikes, g, keys, rate, width, start, end, gaps)
	if err != nil {
		return nil, err
	}
	vals, obs := beh.Bin(width, b.First, b.Len())
	return &Dataset{Bins: b, Outputs: beh.Names, Behaviour: vals, BehaviourObserved: obs}, nil
}

// SplitRow returns the first row of the held-out part when the first
// fraction split of the bins is used for training.
func (d *Dataset) SplitRow(split float64) int {
	return int(math.Round(split * float64(d.Len())))
}

// Score is a decoder's accuracy on one output.
type Score struct {
	Output string
	R2     float64 // 1 - SSE/SST, SST about the held-out mean
	Corr   float64 // Pearson correlation of decoded and true values
}

// Evaluation is a model's accuracy on rows [From, To) of a dataset.
type Evaluation struct {
	Scores []Score
	MeanR2 float64
	Bins   int // bins scored: behaviour observed and estimate not degraded
	From   int
	To     int
	// Decoded holds the model's output for every row of the dataset
	// (time-major); Degraded flags estimates made without full data.
	Decoded  []float64
	Degraded []bool
}

// Evaluate decodes the whole dataset causally (so the held-out part has
// its true history) and scores rows [from, len): bins whose behaviour is
// missing or whose estimate is degraded are not scored.
func Evaluate(m *Model, ds *Dataset, from int) (*Evaluation, error) {
	if len(ds.Outputs) != len(m.Outputs) {
		return nil, fmt.Errorf("decode: behaviour has outputs %v, model %v", ds.Outputs, m.Outputs)
	}
	for i := range ds.Outputs {
		if ds.Outputs[i] != m.Outputs[i] {
			return nil, fmt.Errorf("decode: behaviour has outputs %v, model %v", ds.Outputs, m.Outputs)
		}
	}
	out, deg, err := m.Predict(ds.Bins)
	if err != nil {
		return nil, err
	}
	if from < 0 || from >= ds.Len() {
		return nil, fmt.Errorf("decode: held-out part starts at bin %d of %d", from, ds.Len())
	}
	ev := &Evaluation{From: from, To: ds.Len(), Decoded: out, Degraded: deg}
	no := len(m.Outputs)
	var rows []int
	for i := from; i < ds.Len(); i++ {
		if ds.BehaviourObserved[i] && !deg[i] {
			rows = append(rows, i)
		}
	}
	ev.Bins = len(rows)
	if len(rows) < 2 {
		return nil, fmt.Errorf("decode: only %d scorable bins in the held-out part", len(rows))
	}
	for o := range no {
		t := make([]float64, len(rows))
		p := make([]float64, len(rows))
		for k, i := range rows {
			t[k] = ds.Behaviour[i*no+o]
			p[k] = out[i*no+o]
		}
		s := Score{Output: m.Outputs[o], R2: R2(t, p), Corr: Correlation(t, p)}
		ev.Scores = append(ev.Scores, s)
		ev.MeanR2 += s.R2 / float64(no)
	}
	return ev, nil
}

// R2 returns the coefficient of determination of predictions p for true
// values t: 1 - Σ(t-p)²/Σ(t-mean(t))². It is NaN when t is constant.
func R2(t, p []float64) float64 {
	var mean float64
	for _, v := range t {
		mean += v
	}
	mean /= float64(len(t))
	var sse, sst float64
	for i, v := range t {
		sse += (v - p[i]) * (v - p[i])
		sst += (v - mean) * (v - mean)
	}
	if sst == 0 {
		return math.NaN()
	}
	return 1 - sse/sst
}

// Correlation returns the Pearson correlation of a and b (NaN if either
// is constant).
func Correlation(a, b []float64) float64 {
	n := float64(len(a))
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= n
	mb /= n
	var sab, saa, sbb float64
	for i := range a {
		da, db := a[i]-ma, b[i]-mb
		sab += da * db
		saa += da * da
		sbb += db * db
	}
	if saa == 0 || sbb == 0 {
		return math.NaN()
	}
	return sab / math.Sqrt(saa*sbb)
}
