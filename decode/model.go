package decode

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/spikeline/spikeline/device"
)

// Format and Version identify a model file.
const (
	Format  = "spikeline-decoder"
	Version = 1
)

// Kind names a decoder family.
type Kind string

// The decoder kinds.
const (
	Wiener Kind = "wiener" // ridge regression on lagged z-scored counts
	Kalman Kind = "kalman" // Kalman filter fitted by least squares
)

// Kalman state layouts.
const (
	// StateVelocity uses the behaviour outputs themselves as the state
	// (e.g. [vx, vy], with the constant 1 carried as exact offsets).
	StateVelocity = "velocity"
	// StatePositionVelocity adds the running integral of each output
	// (e.g. position from velocity) to the state.
	StatePositionVelocity = "position-velocity"
)

// Model is everything needed to decode: a versioned JSON document written
// by Save and read by Load. Counts are z-scored per column with Mean and
// Std (counts per bin over the training bins) before the decoder sees them.
type Model struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	Kind       Kind      `json:"kind"`
	Grouping   Grouping  `json:"grouping"`    // unit (sorted), channel (threshold crossings) or unit+unsorted
	Keys       []int32   `json:"units"`       // unit ids (or channels) of the columns, ascending
	Rate       float64   `json:"sample_rate"` // device samples per second
	BinSamples uint64    `json:"bin_samples"` // bin width in device samples; bins start at multiples of it
	Lags       int       `json:"lags"`        // bins of history used, counting the current one
	Outputs    []string  `json:"outputs"`     // names of the decoded values, in order
	Mean       []float64 `json:"mean"`        // training mean count per bin, per column
	Std        []float64 `json:"std"`         // training standard deviation (1 for silent columns)

	Wiener *WienerParams `json:"wiener,omitempty"`
	Kalman *KalmanParams `json:"kalman,omitempty"`
	Fit    *FitInfo      `json:"fit,omitempty"`
}

// WienerParams are a ridge/Wiener filter's weights: output o of bin t is
// Intercept[o] + Σ_l Σ_j Weights[l][j][o]·z[t-l][j].
type WienerParams struct {
	Lambda    float64       `json:"lambda"` // ridge penalty on the z-scored design (chosen by cross-validation)
	Weights   [][][]float64 `json:"weights"`
	Intercept []float64     `json:"intercept"`
}

// KalmanParams are a Kalman filter with state x (len(StateNames)) and
// observation z (the z-scored counts):
//
//	x[t] = A·x[t-1] + AOffset + w,  w ~ N(0, W)
//	z[t] = H·x[t]   + HOffset + q,  q ~ N(0, Q)
//
// The offsets carry the constant 1 of the classic [x, 1] state exactly.
// Q (units × units) itself is not stored; the filter only needs
// HtQinv = Hᵀ·Q⁻¹, HtQinvH = Hᵀ·Q⁻¹·H and HtQinvOffset = Hᵀ·Q⁻¹·HOffset.
// The first len(Outputs) state components are the outputs.
type KalmanParams struct {
	State        string      `json:"state"` // StateVelocity or StatePositionVelocity
	StateNames   []string    `json:"state_names"`
	A            [][]float64 `json:"a"`
	AOffset      []float64   `json:"a_offset"`
	W            [][]float64 `json:"w"`
	HtQinv       [][]float64 `json:"ht_qinv"`   // state × units
	HtQinvH      [][]float64 `json:"ht_qinv_h"` // state × state
	HtQinvOffset []float64   `json:"ht_qinv_offset"`
	X0           []float64   `json:"x0"` // initial state (training mean)
	P0           [][]float64 `json:"p0"` // initial state covariance
	Shrink       float64     `json:"q_shrink"`
	// Steady is true when the filter runs with the steady-state
	// covariance SteadyP (the Riccati equation iterated to convergence):
	// gain K = SteadyP·HtQinv.
	Steady  bool        `json:"steady"`
	SteadyP [][]float64 `json:"steady_p,omitempty"`
}

// FitInfo records how a model was fitted, for reports and for eval.
type FitInfo struct {
	Split       float64   `json:"split"`        // fraction of the session used for training
	StartSample uint64    `json:"start_sample"` // session start (first bin start)
	SplitSample uint64    `json:"split_sample"` // first sample of the held-out part
	EndSample   uint64    `json:"end_sample"`   // session end
	TrainBins   int       `json:"train_bins"`   // bins used in the fit
	Lambdas     []float64 `json:"cv_lambdas,omitempty"`
	CVR2        []float64 `json:"cv_r2,omitempty"` // mean cross-validated R² per lambda
	Folds       int       `json:"cv_folds,omitempty"`
}

// UnitMismatchError reports that a stream's units are not the model's.
type UnitMismatchError struct {
	Grouping Grouping
	Missing  []int32 // in the model, not in the stream
	Extra    []int32 // in the stream, not in the model
}

func (e *UnitMismatchError) Error() string {
	what := e.Grouping.Columns()
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("missing from the stream: %s", idList(e.Missing)))
	}
	if len(e.Extra) > 0 {
		parts = append(parts, fmt.Sprintf("not in the model: %s", idList(e.Extra)))
	}
	return fmt.Sprintf("decode: %s do not match the model (%s)", what, strings.Join(parts, "; "))
}

func idList(ids []int32) string {
	const show = 20
	var b strings.Builder
	for i, id := range ids {
		if i == show {
			fmt.Fprintf(&b, " … (%d in all)", len(ids))
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, id)
	}
	return b.String()
}

// CheckKeys returns a *UnitMismatchError if keys (the units, or channels,
// present in a stream) are not exactly the model's.
func (m *Model) CheckKeys(keys []int32) error {
	have := map[int32]bool{}
	for _, k := range keys {
		have[k] = true
	}
	e := &UnitMismatchError{Grouping: m.Grouping}
	in := map[int32]bool{}
	for _, k := range m.Keys {
		in[k] = true
		if !have[k] {
			e.Missing = append(e.Missing, k)
		}
	}
	for k := range have {
		if !in[k] {
			e.Extra = append(e.Extra, k)
		}
	}
	slices.Sort(e.Extra)
	if len(e.Missing)+len(e.Extra) > 0 {
		return e
	}
	return nil
}

// BinSeconds returns the bin width in seconds.
func (m *Model) BinSeconds() float64 { return float64(m.BinSamples) / m.Rate }

// Validate reports the first inconsistency in m.
func (m *Model) Validate() error {
	nu, no := len(m.Keys), len(m.Outputs)
	switch {
	case m.Format != Format:
		return fmt.Errorf("format %q, want %q", m.Format, Format)
	case m.Version != Version:
		return fmt.Errorf("version %d, this build reads version %d", m.Version, Version)
	case m.Grouping.valid() != nil:
		return m.Grouping.valid()
	case nu == 0:
		return errors.New("no units")
	case !slices.IsSorted(m.Keys) || len(slices.Compact(slices.Clone(m.Keys))) != nu:
		return errors.New("units must be ascending and distinct")
	case !(m.Rate > 0) || math.IsInf(m.Rate, 0):
		return fmt.Errorf("sample_rate %v, want > 0", m.Rate)
	case m.BinSamples == 0 || m.BinSamples > 1<<32:
		return fmt.Errorf("bin_samples %d, want 1..2^32", m.BinSamples)
	case m.Lags < 1 || m.Lags > 1<<16:
		return fmt.Errorf("lags %d, want 1..65536", m.Lags)
	case no == 0:
		return errors.New("no outputs")
	case len(m.Mean) != nu || len(m.Std) != nu:
		return fmt.Errorf("mean/std have %d/%d entries, want %d (one per unit)", len(m.Mean), len(m.Std), nu)
	}
	for j := range nu {
		if !finite(m.Mean[j]) || !(m.Std[j] > 0) || !finite(m.Std[j]) {
			return fmt.Errorf("unit %d: mean %v std %v", m.Keys[j], m.Mean[j], m.Std[j])
		}
	}
	switch m.Kind {
	case Wiener:
		w := m.Wiener
		if w == nil {
			return errors.New(`kind "wiener" without "wiener" parameters`)
		}
		if len(w.Intercept) != no || !allFinite(w.Intercept) {
			return fmt.Errorf("wiener intercept: want %d finite values", no)
		}
		if len(w.Weights) != m.Lags {
			return fmt.Errorf("wiener weights: %d lags, want %d", len(w.Weights), m.Lags)
		}
		for l, wl := range w.Weights {
			if len(wl) != nu {
				return fmt.Errorf("wiener weights[%d]: %d units, want %d", l, len(wl), nu)
			}
			for j, wj := range wl {
				if len(wj) != no || !allFinite(wj) {
					return fmt.Errorf("wiener weights[%d][%d]: want %d finite values", l, j, no)
				}
			}
		}
	case Kalman:
		k := m.Kalman
		if k == nil {
			return errors.New(`kind "kalman" without "kalman" parameters`)
		}
		if m.Lags != 1 {
			return fmt.Errorf("kalman: lags %d, want 1", m.Lags)
		}
		d := len(k.StateNames)
		if d < no {
			return fmt.Errorf("kalman: %d state components for %d outputs", d, no)
		}
		checks := []struct {
			name string
			a    [][]float64
			r, c int
		}{{"a", k.A, d, d}, {"w", k.W, d, d}, {"ht_qinv", k.HtQinv, d, nu}, {"ht_qinv_h", k.HtQinvH, d, d}, {"p0", k.P0, d, d}}
		if k.Steady {
			checks = append(checks, struct {
				name string
				a    [][]float64
				r, c int
			}{"steady_p", k.SteadyP, d, d})
		}
		for _, c := range checks {
			if err := checkMatrix(c.a, c.r, c.c); err != nil {
				return fmt.Errorf("kalman %s: %v", c.name, err)
			}
		}
		for _, v := range []struct {
			name string
			v    []float64
		}{{"a_offset", k.AOffset}, {"ht_qinv_offset", k.HtQinvOffset}, {"x0", k.X0}} {
			if len(v.v) != d || !allFinite(v.v) {
				return fmt.Errorf("kalman %s: want %d finite values", v.name, d)
			}
		}
	default:
		return fmt.Errorf("kind %q, want %q or %q", m.Kind, Wiener, Kalman)
	}
	return nil
}

func checkMatrix(a [][]float64, r, c int) error {
	if len(a) != r {
		return fmt.Errorf("%d rows, want %d", len(a), r)
	}
	for i, row := range a {
		if len(row) != c {
			return fmt.Errorf("row %d has %d values, want %d", i, len(row), c)
		}
		if !allFinite(row) {
			return fmt.Errorf("row %d has a non-finite value", i)
		}
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func allFinite(v []float64) bool {
	for _, x := range v {
		if !finite(x) {
			return false
		}
	}
	return true
}

// Save writes m as JSON to path.
func (m *Model) Save(path string) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("decode: refusing to save an invalid model: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if err := device.WriteFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// Load reads and validates a model file (at most device.MaxModelBytes).
func Load(path string) (*Model, error) {
	b, err := device.ReadFileLimit(path, device.MaxModelBytes)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	m, err := ParseModel(b)
	if err != nil {
		return nil, fmt.Errorf("decode: %s: %w", path, err)
	}
	return m, nil
}

// ParseModel decodes and validates a model from JSON.
func ParseModel(b []byte) (*Model, error) {
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("byte offset %d: %w", se.Offset, err)
		}
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
