package probe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/device"
)

// MaxFileBytes bounds a probe file (a 1,024-contact probeinterface file
// with its contact shapes is about 500 KB).
const MaxFileBytes = 64 << 20

// piFile is the part of a probeinterface file (a ProbeGroup, format
// 0.2/0.3) that says where each channel is.
type piFile struct {
	Specification string    `json:"specification"`
	Probes        []piProbe `json:"probes"`
}

type piProbe struct {
	Ndim      int               `json:"ndim"`
	Units     string            `json:"si_units"`
	Positions []json.RawMessage `json:"contact_positions"`
	Channels  []json.RawMessage `json:"device_channel_indices"`
}

// ReadJSON reads a probeinterface JSON file (what probeinterface's
// write_probeinterface, SpikeInterface and the Open Ephys probe tools
// write): every probe of the group, contact i of a probe on channel
// device_channel_indices[i] (contacts wired to -1 are not recorded and
// are left out; without device_channel_indices, contacts are channels
// 0, 1, … in the order of the file). Positions are in si_units ("um",
// "mm" or "m"; µm when absent); only planar (ndim 2) probes are read.
// name labels errors, which give the line.
func ReadJSON(r io.Reader, name string) (*Probe, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, &Error{File: name, Err: ErrFormat, Msg: err.Error()}
	}
	if len(data) > MaxFileBytes {
		return nil, &Error{File: name, Err: ErrFormat, Msg: fmt.Sprintf("more than %d bytes", MaxFileBytes)}
	}
	fail := func(kind error, path []any, f string, a ...any) error {
		return &Error{File: name, Line: lineOf(data, path...), Err: kind, Msg: fmt.Sprintf(f, a...)}
	}
	var f piFile
	if err := json.Unmarshal(data, &f); err != nil {
		e := &Error{File: name, Err: ErrFormat, Msg: err.Error()}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			e.Line = lineAt(data, se.Offset)
		case errors.As(err, &te):
			e.Line = lineAt(data, te.Offset)
			e.Msg = fmt.Sprintf("%s is a %s, want %s", te.Field, te.Value, te.Type)
		}
		return nil, e
	}
	if len(f.Probes) == 0 {
		return nil, fail(ErrFormat, nil, "no probes (want a probeinterface file: {\"specification\": \"probeinterface\", \"probes\": [...]})")
	}
	type contact struct {
		p    [2]float64
		path []any
	}
	byCh := map[int]contact{}
	var inOrder []contact
	wired := -1 // whether probes give device_channel_indices (-1: not yet known)
	for pi, pr := range f.Probes {
		at := func(rest ...any) []any { return append([]any{"probes", pi}, rest...) }
		if pr.Ndim != 2 && pr.Ndim != 0 {
			return nil, fail(ErrFormat, at("ndim"), "probe %d has ndim %d: only planar (2-D) probes are read", pi, pr.Ndim)
		}
		scale := 1.0
		switch strings.ToLower(pr.Units) {
		case "", "um", "µm", "μm":
		case "mm":
			scale = 1e3
		case "m":
			scale = 1e6
		default:
			return nil, fail(ErrFormat, at("si_units"), "probe %d: si_units %q (want um, mm or m)", pi, pr.Units)
		}
		has := 0
		if len(pr.Channels) > 0 {
			has = 1
			if len(pr.Channels) != len(pr.Positions) {
				return nil, fail(ErrCount, at("device_channel_indices"), "probe %d: %d device_channel_indices for %d contact_positions", pi, len(pr.Channels), len(pr.Positions))
			}
		}
		if wired >= 0 && wired != has {
			return nil, fail(ErrFormat, at(), "probe %d: device_channel_indices given for some probes and not others", pi)
		}
		wired = has
		for k, raw := range pr.Positions {
			var xy []any
			if err := json.Unmarshal(raw, &xy); err != nil || len(xy) != 2 {
				return nil, fail(ErrNumber, at("contact_positions", k), "probe %d contact %d: position %s, want [x, y]", pi, k, compact(raw))
			}
			var p [2]float64
			for i, v := range xy {
				fv, ok := v.(float64)
				if !ok || math.IsNaN(fv*scale) || math.IsInf(fv*scale, 0) {
					return nil, fail(ErrNumber, at("contact_positions", k), "probe %d contact %d: position %s is not a pair of numbers", pi, k, compact(raw))
				}
				p[i] = fv * scale
			}
			c := contact{p, at("contact_positions", k)}
			if has == 0 {
				if len(inOrder) == device.MaxChannels {
					return nil, fail(ErrCount, c.path, "more than %d contacts", device.MaxChannels)
				}
				inOrder = append(inOrder, c)
				continue
			}
			var chf float64
			if err := json.Unmarshal(pr.Channels[k], &chf); err != nil || chf != math.Trunc(chf) {
				return nil, fail(ErrNumber, at("device_channel_indices", k), "probe %d contact %d: device channel %s, want a whole number", pi, k, compact(pr.Channels[k]))
			}
			if chf < 0 {
				continue // not connected
			}
			if chf >= device.MaxChannels {
				return nil, fail(ErrCount, at("device_channel_indices", k), "probe %d contact %d: device channel %g outside 0..%d", pi, k, chf, device.MaxChannels-1)
			}
			ch := int(chf)
			if o, dup := byCh[ch]; dup {
				return nil, fail(ErrDuplicate, at("device_channel_indices", k), "channel %d given twice (probe %d contact %d, and %s)", ch, pi, k, pathString(o.path))
			}
			c.path = at("device_channel_indices", k)
			byCh[ch] = c
		}
	}
	var pos [][2]float64
	var paths [][]any
	if wired == 1 {
		pos = make([][2]float64, len(byCh))
		paths = make([][]any, len(byCh))
		for ch, c := range byCh {
			if ch >= len(byCh) {
				for m := range ch {
					if _, ok := byCh[m]; !ok {
						return nil, fail(ErrMissing, nil, "channel %d missing: no contact is wired to it (device_channel_indices go up to %d)", m, maxKey(byCh))
					}
				}
			}
			pos[ch], paths[ch] = c.p, c.path
		}
	} else {
		for _, c := range inOrder {
			pos = append(pos, c.p)
			paths = append(paths, c.path)
		}
	}
	p, err := New(name, pos)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) && errors.Is(err, ErrPlace) {
			for c, q := range pos {
				for o := range c {
					if pos[o] == q {
						pe.Line = lineOf(data, paths[c]...)
						return nil, pe
					}
				}
			}
		}
		return nil, err
	}
	return p, nil
}

// maxKey returns the largest key of m (-1 if empty).
func maxKey[V any](m map[int]V) int {
	k := -1
	for c := range m {
		k = max(k, c)
	}
	return k
}

// compact shows a JSON value on one line, shortened.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		b.Reset()
		b.Write(raw)
	}
	s := b.String()
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func pathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch v := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		case int:
			b.WriteString("[" + strconv.Itoa(v) + "]")
		}
	}
	return b.String()
}

// lineAt returns the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

// lineOf returns the line where the JSON value at path (object keys as
// strings, array indices as ints) starts, or 0 if there is none.
func lineOf(data []byte, path ...any) int {
	if len(path) == 0 {
		return 0
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		arr       bool
		idx       int
		key       string
		expectKey bool
	}
	var stack []frame
	at := func() bool {
		if len(stack) != len(path) {
			return false
		}
		for i, f := range stack {
			switch want := path[i].(type) {
			case string:
				if f.arr || f.key != want {
					return false
				}
			case int:
				if !f.arr || f.idx != want {
					return false
				}
			}
		}
		return true
	}
	done := func() { // a value ended
		if n := len(stack); n > 0 {
			if stack[n-1].arr {
				stack[n-1].idx++
			} else {
				stack[n-1].expectKey = true
			}
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return 0
		}
		n := len(stack)
		if n > 0 && !stack[n-1].arr && stack[n-1].expectKey {
			if s, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].expectKey = s, false
				continue
			}
			stack = stack[:n-1] // '}'
			done()
			continue
		}
		if d, ok := tok.(json.Delim); ok && d == ']' {
			stack = stack[:n-1]
			done()
			continue
		}
		if at() {
			return lineAt(data, dec.InputOffset())
		}
		switch tok {
		case json.Delim('['):
			stack = append(stack, frame{arr: true})
		case json.Delim('{'):
			stack = append(stack, frame{expectKey: true})
		default:
			done()
		}
	}
}

// WriteJSON writes the probe as a probeinterface file (format 0.2: one
// probe, circular contacts of 6 µm radius, device_channel_indices
// 0..N-1), which probeinterface.read_probeinterface and ReadJSON read.
func (p *Probe) WriteJSON(w io.Writer) error {
	n := len(p.Positions)
	pr := map[string]any{
		"ndim":                   2,
		"si_units":               "um",
		"annotations":            map[string]any{"name": p.Name, "manufacturer": ""},
		"contact_annotations":    map[string]any{},
		"contact_positions":      p.Positions,
		"contact_plane_axes":     repeat([][2]float64{{1, 0}, {0, 1}}, n),
		"contact_shapes":         repeat("circle", n),
		"contact_shape_params":   repeat(map[string]float64{"radius": 6}, n),
		"device_channel_indices": seq(n),
		"contact_ids":            ids(n),
	}
	b, err := json.MarshalIndent(map[string]any{"specification": "probeinterface", "version": "0.2.24", "probes": []any{pr}}, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}
