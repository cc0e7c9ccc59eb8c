package decode

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/device"
)

// ErrBehaviourHeader reports a behaviour CSV whose header is not
// sample_index followed by at least one output name.
var ErrBehaviourHeader = errors.New("behaviour CSV header must be sample_index,<output>[,<output>…]")

// CSVError says where a CSV input (behaviour, gaps) went wrong.
type CSVError struct {
	Name string // file name, if known
	Line int    // 1-based line
	Err  error
}

func (e *CSVError) Error() string { return fmt.Sprintf("decode: %s:%d: %v", e.Name, e.Line, e.Err) }

func (e *CSVError) Unwrap() error { return e.Err }

// Behaviour is a behavioural time series (e.g. hand velocity) sampled on
// the device clock. Values are time-major: output j of sample i is
// Values[i*len(Names)+j].
type Behaviour struct {
	Names   []string
	Samples []uint64 // device sample index of each row, strictly increasing
	Values  []float64
}

// Len returns the number of rows.
func (b *Behaviour) Len() int { return len(b.Samples) }

// Append adds one row; values must have len(b.Names) entries and sample
// must follow the previous row.
func (b *Behaviour) Append(sample uint64, values []float64) error {
	if err := b.check(sample, values); err != nil {
		return fmt.Errorf("decode: behaviour %w", err)
	}
	b.Samples = append(b.Samples, sample)
	b.Values = append(b.Values, values...)
	return nil
}

func (b *Behaviour) check(sample uint64, values []float64) error {
	if len(values) != len(b.Names) {
		return fmt.Errorf("row has %d values, want %d (%s)", len(values), len(b.Names), strings.Join(b.Names, ","))
	}
	if n := len(b.Samples); n > 0 && sample <= b.Samples[n-1] {
		return fmt.Errorf("sample_index %d does not follow %d", sample, b.Samples[n-1])
	}
	for j, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s = %v at sample_index %d", b.Names[j], v, sample)
		}
	}
	return nil
}

func (b *Behaviour) appendChecked(sample uint64, values []float64) {
	b.Samples = append(b.Samples, sample)
	b.Values = append(b.Values, values...)
}

// ReadBehaviourCSV reads a behaviour CSV: a header "sample_index" followed
// by one column per output (e.g. "sample_index,vx,vy"), then one row per
// behaviour sample with strictly increasing sample indices. Any regular
// rate works; rows are averaged into bins by Bin. name labels errors. A
// line longer than device.MaxLineBytes is an error.
func ReadBehaviourCSV(r io.Reader, name string) (*Behaviour, error) {
	cr := csv.NewReader(bufio.NewReader(device.LineLimit(r, device.MaxLineBytes)))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	head, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil, &CSVError{name, 1, fmt.Errorf("%w: empty file", ErrBehaviourHeader)}
		}
		return nil, &CSVError{name, 1, err}
	}
	if len(head) < 2 || strings.TrimSpace(strings.ToLower(head[0])) != "sample_index" {
		return nil, &CSVError{name, 1, fmt.Errorf("%w (got %q)", ErrBehaviourHeader, strings.Join(head, ","))}
	}
	b := &Behaviour{}
	for i, h := range head[1:] {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, &CSVError{name, 1, fmt.Errorf("%w: column %d has no name", ErrBehaviourHeader, i+2)}
		}
		if slices.Contains(b.Names, h) {
			return nil, &CSVError{name, 1, fmt.Errorf("%w: column %q twice", ErrBehaviourHeader, h)}
		}
		b.Names = append(b.Names, h)
	}
	vals := make([]float64, len(b.Names))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &CSVError{name, csvErrLine(err), err}
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(head) {
			return nil, &CSVError{name, line, fmt.Errorf("%d fields, header has %d", len(rec), len(head))}
		}
		s, err := strconv.ParseUint(strings.TrimSpace(rec[0]), 10, 64)
		if err != nil {
			return nil, &CSVError{name, line, fmt.Errorf("sample_index: %w", err)}
		}
		for j := range vals {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[j+1]), 64)
			if err != nil {
				return nil, &CSVError{name, line, fmt.Errorf("%s: %w", b.Names[j], err)}
			}
			vals[j] = v
		}
		if err := b.check(s, vals); err != nil {
			return nil, &CSVError{name, line, err}
		}
		b.appendChecked(s, vals)
	}
	if b.Len() == 0 {
		return nil, &CSVError{name, 2, errors.New("no behaviour rows")}
	}
	return b, nil
}

// Bin averages the behaviour into nb bins of width samples starting at bin
// index first (bin k covers samples [k*width, (k+1)*width)). Values are
// time-major (nb rows of len(Names)). A bin holding no behaviour sample
// takes the linear interpolation of its neighbours at the bin centre when
// they are at most 2.5 median sampling intervals apart (behaviour slower
// than the bin rate); otherwise it is not observed (observed[i] false).
func (b *Behaviour) Bin(width, first uint64, nb int) (values []float64, observed []bool) {
	d := len(b.Names)
	values = make([]float64, nb*d)
	observed = make([]bool, nb)
	counts := make([]int, nb)
	for i, s := range b.Samples {
		k := s / width
		if k < first || k-first >= uint64(nb) {
			continue
		}
		r := int(k - first)
		counts[r]++
		for j := 0; j < d; j++ {
			values[r*d+j] += b.Values[i*d+j]
		}
	}
	for r := 0; r < nb; r++ {
		if counts[r] > 0 {
			observed[r] = true
			for j := 0; j < d; j++ {
				values[r*d+j] /= float64(counts[r])
			}
		}
	}
	if len(b.Samples) < 2 {
		return values, observed
	}
	diffs := make([]uint64, len(b.Samples)-1)
	for i := range diffs {
		diffs[i] = b.Samples[i+1] - b.Samples[i]
	}
	slices.Sort(diffs)
	maxGap := float64(diffs[len(diffs)/2]) * 2.5
	for r := 0; r < nb; r++ {
		if counts[r] > 0 {
			continue
		}
		centre := (float64(first+uint64(r)) + 0.5) * float64(width)
		// i: first sample after the centre.
		i, _ := slices.BinarySearchFunc(b.Samples, centre, func(s uint64, c float64) int {
			if float64(s) < c {
				return -1
			}
			return 1
		})
		if i == 0 || i == len(b.Samples) {
			continue
		}
		s0, s1 := float64(b.Samples[i-1]), float64(b.Samples[i])
		if s1-s0 > maxGap {
			continue
		}
		w := (centre - s0) / (s1 - s0)
		for j := 0; j < d; j++ {
			values[r*d+j] = (1-w)*b.Values[(i-1)*d+j] + w*b.Values[i*d+j]
		}
		observed[r] = true
	}
	return values, observed
}

// ReadGapsCSV reads gaps in the neural data from a CSV with header
// "start_sample,end_sample" (device sample indices, end exclusive). A
// line longer than device.MaxLineBytes is an error.
func ReadGapsCSV(r io.Reader, name string) ([]Gap, error) {
	cr := csv.NewReader(bufio.NewReader(device.LineLimit(r, device.MaxLineBytes)))
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	head, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil, &CSVError{name, 1, errors.New("empty file, want header start_sample,end_sample")}
		}
		return nil, &CSVError{name, 1, err}
	}
	if len(head) < 2 || strings.TrimSpace(head[0]) != "start_sample" || strings.TrimSpace(head[1]) != "end_sample" {
		return nil, &CSVError{name, 1, fmt.Errorf("header %q, want start_sample,end_sample", strings.Join(head, ","))}
	}
	var gaps []Gap
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return gaps, nil
		}
		if err != nil {
			return nil, &CSVError{name, csvErrLine(err), err}
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < 2 {
			return nil, &CSVError{name, line, fmt.Errorf("%d fields, want 2", len(rec))}
		}
		a, err1 := strconv.ParseUint(strings.TrimSpace(rec[0]), 10, 64)
		e, err2 := strconv.ParseUint(strings.TrimSpace(rec[1]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, &CSVError{name, line, err}
		}
		if e <= a {
			return nil, &CSVError{name, line, fmt.Errorf("end_sample %d not after start_sample %d", e, a)}
		}
		gaps = append(gaps, Gap{a, e})
	}
}

// csvErrLine returns the line of a csv.ParseError, or 0.
func csvErrLine(err error) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Line
	}
	return 0
}
