package phy

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ReadPositionsCSV reads channel positions in µm for a probe of channels
// channels from CSV with a header naming x (or x_um) and y (or y_um)
// columns and optionally channel: with a channel column each channel
// appears exactly once in any order, without one the rows are channels
// 0, 1, … in order. Positions must be distinct (Phy lays out its
// waveform view by them). name labels errors, which give the line.
func ReadPositionsCSV(r io.Reader, name string, channels int) ([][2]float64, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	fail := func(line int, f string, a ...any) error {
		return fmt.Errorf("phy: %s:%d: %s", name, line, fmt.Sprintf(f, a...))
	}
	head, err := cr.Read()
	if err != nil {
		return nil, fail(1, "reading header: %v", err)
	}
	ix, iy, ic := -1, -1, -1
	for i, h := range head {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "x", "x_um", "xcoords":
			ix = i
		case "y", "y_um", "ycoords":
			iy = i
		case "channel", "chan", "ch":
			ic = i
		}
	}
	if ix < 0 || iy < 0 {
		return nil, fail(1, "need columns x and y (header %q)", strings.Join(head, ","))
	}
	pos := make([][2]float64, channels)
	set := make([]bool, channels)
	row := 0
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fail(line, "%v", err)
		}
		if len(rec) <= max(ix, iy, ic) {
			return nil, fail(line, "%d fields, want at least %d", len(rec), max(ix, iy, ic)+1)
		}
		ch := row
		if ic >= 0 {
			v, err := strconv.Atoi(strings.TrimSpace(rec[ic]))
			if err != nil {
				return nil, fail(line, "channel: %v", err)
			}
			ch = v
		}
		if ch < 0 || ch >= channels {
			return nil, fail(line, "channel %d outside 0..%d", ch, channels-1)
		}
		if set[ch] {
			return nil, fail(line, "channel %d given twice", ch)
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(rec[ix]), 64)
		if err != nil {
			return nil, fail(line, "x: %v", err)
		}
		y, err := strconv.ParseFloat(strings.TrimSpace(rec[iy]), 64)
		if err != nil {
			return nil, fail(line, "y: %v", err)
		}
		pos[ch], set[ch] = [2]float64{x, y}, true
		row++
	}
	if row != channels {
		return nil, fmt.Errorf("phy: %s: %d channel positions, the recording has %d channels", name, row, channels)
	}
	seen := map[[2]float64]int{}
	for ch, p := range pos {
		if o, dup := seen[p]; dup {
			return nil, fmt.Errorf("phy: %s: channels %d and %d share position (%g, %g)", name, o, ch, p[0], p[1])
		}
		seen[p] = ch
	}
	return pos, nil
}
