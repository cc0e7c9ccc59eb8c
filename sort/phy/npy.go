package phy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Elem is an element type WriteNPY and ReadNPY handle.
type Elem interface {
	int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32 | float64
}

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// Descr returns the NumPy dtype descriptor of T, e.g. "<i8" for int64
// and "<f4" for float32 ("|i1"/"|u1" for single bytes).
func Descr[T Elem]() string {
	var z T
	switch any(z).(type) {
	case int8:
		return "|i1"
	case uint8:
		return "|u1"
	case int16:
		return "<i2"
	case uint16:
		return "<u2"
	case int32:
		return "<i4"
	case uint32:
		return "<u4"
	case int64:
		return "<i8"
	case uint64:
		return "<u8"
	case float32:
		return "<f4"
	case float64:
		return "<f8"
	}
	panic("unreachable")
}

// header builds the NPY 1.0 header (magic through the trailing newline)
// for descr and shape, padded so the data starts at a multiple of 64.
func header(descr string, shape []int) ([]byte, error) {
	var sh strings.Builder
	sh.WriteByte('(')
	for i, n := range shape {
		if n < 0 {
			return nil, fmt.Errorf("phy: negative dimension %d in shape %v", n, shape)
		}
		if i > 0 {
			sh.WriteString(", ")
		}
		sh.WriteString(strconv.Itoa(n))
	}
	if len(shape) == 1 {
		sh.WriteByte(',')
	}
	sh.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, sh.String())
	// magic(6) + version(2) + header_len(2) + dict + padding + '\n'
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	hlen := len(dict) + pad + 1
	if hlen > math.MaxUint16 {
		return nil, fmt.Errorf("phy: NPY header of %d bytes does not fit version 1.0", hlen)
	}
	b := make([]byte, 0, 10+hlen)
	b = append(b, npyMagic...)
	b = append(b, 1, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(hlen))
	b = append(b, dict...)
	for range pad {
		b = append(b, ' ')
	}
	return append(b, '\n'), nil
}

// WriteNPY writes data as an NPY 1.0 array of the given shape (C order,
// little-endian). The product of shape must equal len(data); an empty
// shape writes a scalar from data[0].
func WriteNPY[T Elem](w io.Writer, shape []int, data []T) error {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("phy: shape %v holds %d elements, have %d", shape, n, len(data))
	}
	h, err := header(Descr[T](), shape)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.Write(h)
	writeLE(bw, data, nil)
	return bw.Flush()
}

// writeLE writes data little-endian to bw (whose error the caller's Flush
// reports), encoding through buf (grown to 64 KiB if smaller), which it
// returns for reuse. About 1 ns per element, no allocation per call once
// buf has grown: encoding/binary.Write allocates a buffer per call.
func writeLE[T Elem](bw *bufio.Writer, data []T, buf []byte) []byte {
	const size = 1 << 16
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	for len(data) > 0 {
		b := buf[:0]
		var k int
		switch d := any(data).(type) {
		case []int8:
			k = min(len(d), size)
			for _, v := range d[:k] {
				b = append(b, byte(v))
			}
		case []uint8:
			k = min(len(d), size)
			b = append(b, d[:k]...)
		case []int16:
			k = min(len(d), size/2)
			for _, v := range d[:k] {
				b = binary.LittleEndian.AppendUint16(b, uint16(v))
			}
		case []uint16:
			k = min(len(d), size/2)
			for _, v := range d[:k] {
				b = binary.LittleEndian.AppendUint16(b, v)
			}
		case []int32:
			k = min(len(d), size/4)
			for _, v := range d[:k] {
				b = binary.LittleEndian.AppendUint32(b, uint32(v))
			}
		case []uint32:
			k = min(len(d), size/4)
			for _, v := range d[:k] {
				b = binary.LittleEndian.AppendUint32(b, v)
			}
		case []float32:
			k = min(len(d), size/4)
			for _, v := range d[:k] {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			}
		case []int64:
			k = min(len(d), size/8)
			for _, v := range d[:k] {
				b = binary.LittleEndian.AppendUint64(b, uint64(v))
			}
		case []uint64:
			k = min(len(d), size/8)
			for _, v := range d[:k] {
				b = binary.LittleEndian.AppendUint64(b, v)
			}
		case []float64:
			k = min(len(d), size/8)
			for _, v := range d[:k] {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
			}
		}
		bw.Write(b)
		data = data[k:]
	}
	return buf
}

// Header is a parsed NPY header.
type Header struct {
	Major, Minor int    // format version
	Descr        string // dtype, e.g. "<i8"
	Fortran      bool   // column-major data
	Shape        []int
	DataOffset   int // byte offset of the first element
}

// ErrNPY reports a malformed .npy file.
var ErrNPY = errors.New("malformed NPY")

// FormatError says where an NPY file went wrong.
type FormatError struct {
	Name   string // file name, if known
	Offset int64  // byte offset of the problem
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("phy: %s: byte %d: %s: %s", e.Name, e.Offset, ErrNPY, e.Reason)
}

// Unwrap returns ErrNPY.
func (e *FormatError) Unwrap() error { return ErrNPY }

// ReadHeader reads and parses an NPY header (versions 1.0, 2.0 and 3.0).
// name labels errors.
func ReadHeader(r io.Reader, name string) (Header, error) {
	var h Header
	fail := func(off int64, f string, a ...any) (Header, error) {
		return h, &FormatError{name, off, fmt.Sprintf(f, a...)}
	}
	pre := make([]byte, 8)
	if n, err := io.ReadFull(r, pre); err != nil {
		return fail(int64(n), "file too short for the NPY magic (%v)", err)
	}
	if string(pre[:6]) != npyMagic {
		return fail(0, "bad magic %q", pre[:6])
	}
	h.Major, h.Minor = int(pre[6]), int(pre[7])
	var hlen, off int
	switch h.Major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fail(8, "short header length")
		}
		hlen, off = int(binary.LittleEndian.Uint16(b[:])), 10
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fail(8, "short header length")
		}
		l := binary.LittleEndian.Uint32(b[:])
		if l > 1<<24 {
			return fail(8, "header length %d too large", l)
		}
		hlen, off = int(l), 12
	default:
		return fail(6, "unsupported version %d.%d", h.Major, h.Minor)
	}
	buf := make([]byte, hlen)
	if n, err := io.ReadFull(r, buf); err != nil {
		return fail(int64(off+n), "header ends early: %d of %d bytes", n, hlen)
	}
	h.DataOffset = off + hlen
	dict := strings.TrimRight(string(buf), " \n\x00")
	if !strings.HasPrefix(dict, "{") || !strings.HasSuffix(dict, "}") {
		return fail(int64(off), "header is not a dict: %q", dict)
	}
	body := dict[1 : len(dict)-1]
	get := func(key string) (string, bool) {
		i := strings.Index(body, "'"+key+"'")
		if i < 0 {
			return "", false
		}
		rest := strings.TrimSpace(body[i+len(key)+2:])
		if !strings.HasPrefix(rest, ":") {
			return "", false
		}
		return strings.TrimSpace(rest[1:]), true
	}
	v, ok := get("descr")
	if !ok || len(v) < 2 || (v[0] != '\'' && v[0] != '"') {
		return fail(int64(off), "no descr in %q", dict)
	}
	end := strings.IndexByte(v[1:], v[0])
	if end < 0 {
		return fail(int64(off), "unterminated descr in %q", dict)
	}
	h.Descr = v[1 : 1+end]
	v, ok = get("fortran_order")
	switch {
	case !ok:
		return fail(int64(off), "no fortran_order in %q", dict)
	case strings.HasPrefix(v, "True"):
		h.Fortran = true
	case strings.HasPrefix(v, "False"):
	default:
		return fail(int64(off), "bad fortran_order in %q", dict)
	}
	v, ok = get("shape")
	if !ok || !strings.HasPrefix(v, "(") {
		return fail(int64(off), "no shape in %q", dict)
	}
	close := strings.IndexByte(v, ')')
	if close < 0 {
		return fail(int64(off), "unterminated shape in %q", dict)
	}
	h.Shape = []int{}
	for _, f := range strings.Split(v[1:close], ",") {
		f = strings.TrimSpace(f)
		f = strings.TrimSuffix(f, "L")
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil || d < 0 {
			return fail(int64(off), "bad dimension %q in shape", f)
		}
		h.Shape = append(h.Shape, d)
	}
	total := 1
	for _, d := range h.Shape {
		if d != 0 && total > (1<<40)/d {
			return fail(int64(off), "shape %v holds more than 2^40 elements", h.Shape)
		}
		total *= d
	}
	return h, nil
}

// Len returns the number of elements the header's shape holds.
func (h Header) Len() int {
	n := 1
	for _, d := range h.Shape {
		n *= d
	}
	return n
}

// ReadNPY reads an NPY array whose dtype is exactly T's (see Descr) and
// returns its header and data. name labels errors.
func ReadNPY[T Elem](r io.Reader, name string) (Header, []T, error) {
	br := bufio.NewReader(r)
	h, err := ReadHeader(br, name)
	if err != nil {
		return h, nil, err
	}
	if want := Descr[T](); h.Descr != want && !(len(want) == 3 && want[0] == '|' && h.Descr == "<"+want[1:]) {
		return h, nil, &FormatError{name, int64(h.DataOffset), fmt.Sprintf("dtype %q, want %q", h.Descr, want)}
	}
	data, err := readData[T](br, h, name)
	return h, data, err
}

// readData reads the h.Len() elements that follow a header.
func readData[T Elem](br io.Reader, h Header, name string) ([]T, error) {
	n := h.Len()
	if n > 1<<31 {
		return nil, &FormatError{name, int64(h.DataOffset), fmt.Sprintf("%d elements is too many", n)}
	}
	data := make([]T, 0, min(n, 1<<20))
	const chunk = 8192
	buf := make([]T, chunk)
	size := binary.Size(buf[0])
	raw := make([]byte, chunk*size)
	off := int64(h.DataOffset)
	for len(data) < n {
		k := min(chunk, n-len(data))
		m, err := io.ReadFull(br, raw[:k*size])
		if err != nil {
			return nil, &FormatError{name, off + int64(m), fmt.Sprintf("data ends early: %d of %d elements (%v)", len(data)+m/size, n, err)}
		}
		off += int64(m)
		if _, err := binary.Decode(raw[:k*size], binary.LittleEndian, buf[:k]); err != nil {
			return nil, err
		}
		data = append(data, buf[:k]...)
	}
	return data, nil
}

func convert[T Elem, U int64 | float64](in []T) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = U(v)
	}
	return out
}

// ReadNPYFloat64 reads any little-endian integer or float NPY array (C
// order, or of at most one dimension larger than 1) as float64.
func ReadNPYFloat64(r io.Reader, name string) (Header, []float64, error) {
	return readAs[float64](r, name)
}

// ReadNPYInt64 reads any little-endian integer NPY array (C order, or of at
// most one dimension larger than 1) as int64. uint64 values above the
// int64 range are refused.
func ReadNPYInt64(r io.Reader, name string) (Header, []int64, error) {
	return readAs[int64](r, name)
}

func readAs[U int64 | float64](r io.Reader, name string) (Header, []U, error) {
	br := bufio.NewReader(r)
	h, err := ReadHeader(br, name)
	if err != nil {
		return h, nil, err
	}
	if h.Fortran {
		big := 0
		for _, d := range h.Shape {
			if d > 1 {
				big++
			}
		}
		if big > 1 {
			return h, nil, &FormatError{name, int64(h.DataOffset), "Fortran-order arrays are not supported"}
		}
	}
	var zero U
	_, wantFloat := any(zero).(float64)
	bad := func() (Header, []U, error) {
		kind := "an integer"
		if wantFloat {
			kind = "a number"
		}
		return h, nil, &FormatError{name, int64(h.DataOffset), fmt.Sprintf("dtype %q is not %s type this reader handles", h.Descr, kind)}
	}
	var out []U
	switch h.Descr {
	case "|i1", "<i1":
		d, err := readData[int8](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[int8, U](d)
	case "|u1", "<u1":
		d, err := readData[uint8](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[uint8, U](d)
	case "<i2":
		d, err := readData[int16](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[int16, U](d)
	case "<u2":
		d, err := readData[uint16](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[uint16, U](d)
	case "<i4":
		d, err := readData[int32](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[int32, U](d)
	case "<u4":
		d, err := readData[uint32](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[uint32, U](d)
	case "<i8":
		d, err := readData[int64](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[int64, U](d)
	case "<u8":
		d, err := readData[uint64](br, h, name)
		if err != nil {
			return h, nil, err
		}
		for i, v := range d {
			if v > 1<<63-1 {
				return h, nil, &FormatError{name, int64(h.DataOffset) + int64(8*i), fmt.Sprintf("element %d = %d overflows int64", i, v)}
			}
		}
		out = convert[uint64, U](d)
	case "<f4":
		if !wantFloat {
			return bad()
		}
		d, err := readData[float32](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[float32, U](d)
	case "<f8":
		if !wantFloat {
			return bad()
		}
		d, err := readData[float64](br, h, name)
		if err != nil {
			return h, nil, err
		}
		out = convert[float64, U](d)
	default:
		return bad()
	}
	return h, out, nil
}
