package probe

import (
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

// ReadCSV reads a probe from CSV with a header naming the x (or x_um,
// xcoords) and y (or y_um, ycoords) columns and, optionally, channel:
// with a channel column every channel 0..N-1 appears exactly once, in any
// order; without one the rows are channels 0, 1, … in order. Other columns
// are ignored. name labels errors, which give the line.
func ReadCSV(r io.Reader, name string) (*Probe, error) {
	cr := csv.NewReader(device.LineLimit(r, device.MaxLineBytes))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	fail := func(line int, kind error, f string, a ...any) error {
		return &Error{File: name, Line: line, Err: kind, Msg: fmt.Sprintf(f, a...)}
	}
	head, err := cr.Read()
	if err != nil {
		return nil, fail(1, ErrFormat, "reading header: %v", err)
	}
	head = slices.Clone(head) // ReuseRecord

	ix, iy, ic := -1, -1, -1
	for i, h := range head {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "x", "x_um", "xcoords":
			ix = i
		case "y", "y_um", "ycoords":
			iy = i
		case "channel", "chan", "ch":
			ic = i
		}
	}
	if ix < 0 || iy < 0 {
		return nil, fail(1, ErrFormat, "need columns x and y, or x_um and y_um (header %q)", strings.Join(head, ","))
	}
	type row struct {
		ch   int
		line int
		p    [2]float64
	}
	var rows []row
	byCh := map[int]int{} // channel -> line
	maxCh := -1
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fail(line, ErrFormat, "%v", err)
		}
		if len(rec) <= max(ix, iy, ic) {
			return nil, fail(line, ErrFormat, "%d fields, want at least %d", len(rec), max(ix, iy, ic)+1)
		}
		if len(rows) == device.MaxChannels {
			return nil, fail(line, ErrCount, "more than %d channels", device.MaxChannels)
		}
		ch := len(rows)
		if ic >= 0 {
			v, err := strconv.Atoi(strings.TrimSpace(rec[ic]))
			if err != nil {
				return nil, fail(line, ErrNumber, "channel = %q, want a whole number", rec[ic])
			}
			if v < 0 || v >= device.MaxChannels {
				return nil, fail(line, ErrCount, "channel %d outside 0..%d", v, device.MaxChannels-1)
			}
			ch = v
		}
		if l, dup := byCh[ch]; dup {
			return nil, fail(line, ErrDuplicate, "channel %d given twice (first on line %d)", ch, l)
		}
		var p [2]float64
		for k, i := range []int{ix, iy} {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fail(line, ErrNumber, "%s = %q, want a number (µm)", strings.TrimSpace(head[i]), rec[i])
			}
			p[k] = v
		}
		byCh[ch] = line
		maxCh = max(maxCh, ch)
		rows = append(rows, row{ch, line, p})
	}
	if len(rows) == 0 {
		return nil, fail(0, ErrCount, "no channels")
	}
	if maxCh >= len(rows) {
		for c := range maxCh {
			if _, ok := byCh[c]; !ok {
				return nil, fail(0, ErrMissing, "channel %d missing (channels 0..%d listed, %d rows)", c, maxCh, len(rows))
			}
		}
	}
	pos := make([][2]float64, len(rows))
	at := make([]int, len(rows))
	for _, r := range rows {
		pos[r.ch], at[r.ch] = r.p, r.line
	}
	p, err := New(name, pos)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) && errors.Is(err, ErrPlace) {
			// Name the line of the second channel.
			for c, q := range pos {
				for o := range c {
					if pos[o] == q {
						pe.Line = at[c]
						return nil, pe
					}
				}
			}
		}
		return nil, err
	}
	return p, nil
}

// WriteCSV writes the probe as CSV: channel,x_um,y_um, one row per channel.
func (p *Probe) WriteCSV(w io.Writer) error {
	var b strings.Builder
	b.WriteString("channel,x_um,y_um\n")
	for c, q := range p.Positions {
		fmt.Fprintf(&b, "%d,%s,%s\n", c, strconv.FormatFloat(q[0], 'g', -1, 64), strconv.FormatFloat(q[1], 'g', -1, 64))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
