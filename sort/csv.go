package sort

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/device"
)

// SpikesHeader is the header WriteSpikesCSV writes.
const SpikesHeader = "unit_id,sample_index,channel,amplitude_uv"

// ErrSpikesHeader reports a spikes CSV without the required columns.
var ErrSpikesHeader = errors.New("spikes CSV needs columns unit_id and sample_index")

// CSVError says where a spikes CSV went wrong.
type CSVError struct {
	Name string // file name, if known
	Line int    // 1-based line
	Err  error
}

func (e *CSVError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err)
}

func (e *CSVError) Unwrap() error { return e.Err }

// ReadSpikesCSV reads spikes from CSV with a header naming at least
// unit_id and sample_index; channel and amplitude_uv are read when present
// (channel defaults to -1, amplitude to 0) and other columns are ignored.
// name labels errors (usually the file name). A line longer than
// device.MaxLineBytes is an error, so memory follows the file's real size.
func ReadSpikesCSV(r io.Reader, name string) ([]Spike, error) {
	cr := csv.NewReader(bufio.NewReader(device.LineLimit(r, device.MaxLineBytes)))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil, &CSVError{name, 1, ErrSpikesHeader}
		}
		return nil, &CSVError{name, 1, err}
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.ToLower(h))] = i
	}
	iu, ok1 := col["unit_id"]
	is, ok2 := col["sample_index"]
	if !ok1 || !ok2 {
		return nil, &CSVError{name, 1, fmt.Errorf("%w (header %q)", ErrSpikesHeader, strings.Join(head, ","))}
	}
	ic, hasCh := col["channel"]
	ia, hasAmp := col["amplitude_uv"]
	var out []Spike
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, &CSVError{name, line, err}
		}
		field := func(i int, what string) (string, error) {
			if i >= len(rec) {
				return "", fmt.Errorf("missing %s (only %d fields)", what, len(rec))
			}
			return strings.TrimSpace(rec[i]), nil
		}
		var sp Spike
		sp.Channel = -1
		f, err := field(iu, "unit_id")
		if err == nil {
			var v int64
			v, err = strconv.ParseInt(f, 10, 32)
			sp.Unit = int32(v)
		}
		if err == nil {
			f, err = field(is, "sample_index")
			if err == nil {
				sp.Sample, err = strconv.ParseUint(f, 10, 64)
			}
		}
		if err == nil && hasCh {
			f, err = field(ic, "channel")
			if err == nil {
				var v int64
				v, err = strconv.ParseInt(f, 10, 32)
				sp.Channel = int32(v)
			}
		}
		if err == nil && hasAmp {
			f, err = field(ia, "amplitude_uv")
			if err == nil && f != "" {
				var v float64
				v, err = strconv.ParseFloat(f, 32)
				sp.Amplitude = float32(v)
			}
		}
		if err != nil {
			return out, &CSVError{name, line, err}
		}
		out = append(out, sp)
	}
}

// WriteSpikesCSV writes spikes with the header SpikesHeader.
func WriteSpikesCSV(w io.Writer, spikes []Spike) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(SpikesHeader + "\n")
	var buf []byte
	for _, s := range spikes {
		buf = AppendSpikeCSV(buf[:0], s)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// AppendSpikeCSV appends s as one line of the spikes CSV (SpikesHeader
// columns, newline included).
func AppendSpikeCSV(b []byte, s Spike) []byte {
	b = strconv.AppendInt(b, int64(s.Unit), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, s.Sample, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(s.Channel), 10)
	b = append(b, ',')
	b = strconv.AppendFloat(b, float64(s.Amplitude), 'f', 2, 32)
	return append(b, '\n')
}
