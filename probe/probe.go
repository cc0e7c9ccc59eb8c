package probe

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/spikeline/spikeline/device"
)

// Probe is a probe layout: channel c's contact is at Positions[c] = (x, y)
// in µm (x across the shank, y along it, as probeinterface and Phy have
// them).
type Probe struct {
	Name      string       // what it is: a built-in layout's name or the file it was read from
	Positions [][2]float64 // one per channel, µm
}

// The kinds of bad geometry, wrapped by every *Error.
var (
	ErrDuplicate = errors.New("channel given twice")
	ErrMissing   = errors.New("channel missing")
	ErrNumber    = errors.New("not a number")
	ErrCount     = errors.New("channel count disagrees")
	ErrPlace     = errors.New("two channels at one place")
	ErrFormat    = errors.New("not a probe file")
)

// Error is bad geometry: what is wrong (Err, one of the sentinels above)
// and where (the file and, when known, the line).
type Error struct {
	File string // file name, or the built-in layout
	Line int    // 1-based line, 0 when the error is about the whole file
	Err  error  // the kind (ErrDuplicate, …)
	Msg  string // the details
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("probe: %s: %s", where, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a probe of the given positions after checking them: at least
// one channel, at most device.MaxChannels, finite coordinates, no two
// channels at one place. name labels errors and the probe.
func New(name string, pos [][2]float64) (*Probe, error) {
	if len(pos) == 0 || len(pos) > device.MaxChannels {
		return nil, &Error{File: name, Err: ErrCount, Msg: fmt.Sprintf("%d channels, want 1..%d", len(pos), device.MaxChannels)}
	}
	seen := make(map[[2]float64]int, len(pos))
	for c, p := range pos {
		for _, v := range p {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, &Error{File: name, Err: ErrNumber, Msg: fmt.Sprintf("channel %d at (%g, %g): coordinates must be finite", c, p[0], p[1])}
			}
		}
		if o, dup := seen[p]; dup {
			return nil, &Error{File: name, Err: ErrPlace, Msg: fmt.Sprintf("channels %d and %d share position (%g, %g)", o, c, p[0], p[1])}
		}
		seen[p] = c
	}
	return &Probe{Name: name, Positions: slices.Clone(pos)}, nil
}

// Channels returns the number of channels.
func (p *Probe) Channels() int { return len(p.Positions) }

// Check reports an error unless the probe has exactly channels channels
// (the recording's count).
func (p *Probe) Check(channels int) error {
	if len(p.Positions) != channels {
		return &Error{File: p.Name, Err: ErrCount, Msg: fmt.Sprintf("%d channels, the recording has %d", len(p.Positions), channels)}
	}
	return nil
}

// Distance returns the distance between the contacts of channels a and b
// in µm.
func (p *Probe) Distance(a, b int) float64 {
	return math.Hypot(p.Positions[a][0]-p.Positions[b][0], p.Positions[a][1]-p.Positions[b][1])
}

// Neighbours returns, for every channel c, the channels within radius µm
// of it, c first and then the others by distance (ties by channel), at
// most limit in all (limit < 1: no limit).
func (p *Probe) Neighbours(radius float64, limit int) [][]int {
	n := len(p.Positions)
	out := make([][]int, n)
	type nb struct {
		c int
		d float64
	}
	var near []nb
	for c := range n {
		near = near[:0]
		for o := range n {
			if d := p.Distance(c, o); o != c && d <= radius {
				near = append(near, nb{o, d})
			}
		}
		slices.SortFunc(near, func(a, b nb) int {
			if a.d != b.d {
				return cmp.Compare(a.d, b.d)
			}
			return a.c - b.c
		})
		k := len(near) + 1
		if limit > 0 {
			k = min(k, limit)
		}
		list := make([]int, 0, k)
		list = append(list, c)
		for _, x := range near[:k-1] {
			list = append(list, x.c)
		}
		out[c] = list
	}
	return out
}

// Bounds returns the smallest and largest x and y of the contacts.
func (p *Probe) Bounds() (min, max [2]float64) {
	min = [2]float64{math.Inf(1), math.Inf(1)}
	max = [2]float64{math.Inf(-1), math.Inf(-1)}
	for _, q := range p.Positions {
		for i := range 2 {
			min[i] = math.Min(min[i], q[i])
			max[i] = math.Max(max[i], q[i])
		}
	}
	return min, max
}
