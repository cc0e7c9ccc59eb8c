package openephys

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// The .npy files of the binary format are NumPy format 1.0 arrays,
// little-endian, C order. The Open Ephys GUI writes their headers padded
// to 128 bytes and rewrites the shape in place as records are added
// (NpyFile.cpp); its File Reader even assumes the data start at byte 128
// (BinaryFileSource.h, EVENT_HEADER_SIZE_IN_BYTES). npyWriter does the
// same, so a file being written is always a valid array of the records
// counted at the last header update.

// npyHeaderSize is the size of the headers npyWriter writes.
const npyHeaderSize = 128

const npyMagic = "\x93NUMPY"

// npyHeader is a parsed .npy header.
type npyHeader struct {
	Descr string // dtype, e.g. "<i8"
	Shape []int64
	Data  int64 // byte offset of the first element
}

// records returns the first dimension (the number of records).
func (h npyHeader) records() int64 {
	if len(h.Shape) == 0 {
		return 1
	}
	return h.Shape[0]
}

// recordSize returns the bytes per record (the product of the other
// dimensions times the item size), or 0 for an unknown dtype.
func (h npyHeader) recordSize() int64 {
	n := int64(itemSize(h.Descr))
	for _, d := range h.Shape[min(1, len(h.Shape)):] {
		n *= d
	}
	return n
}

// itemSize returns the bytes of one element of descr, or 0.
func itemSize(descr string) int {
	switch descr {
	case "|i1", "|u1", "<i1", "<u1", "|b1":
		return 1
	case "<i2", "<u2":
		return 2
	case "<i4", "<u4", "<f4":
		return 4
	case "<i8", "<u8", "<f8":
		return 8
	}
	return 0
}

// errNPY is wrapped by every malformed-.npy error.
var errNPY = errors.New("malformed .npy file")

// readNPYHeader reads the header of the .npy file f (named name in
// errors). Only format versions 1.0 to 3.0, little-endian and C order
// are accepted; a dimension larger than the file is refused.
func readNPYHeader(f *os.File, name string) (npyHeader, error) {
	var h npyHeader
	bad := func(off int64, format string, a ...any) (npyHeader, error) {
		return h, fmt.Errorf("openephys: %s: byte %d: %w: %s", name, off, errNPY, fmt.Sprintf(format, a...))
	}
	fi, err := f.Stat()
	if err != nil {
		return h, fmt.Errorf("openephys: %w", err)
	}
	var pre [12]byte
	if n, _ := f.ReadAt(pre[:], 0); n < 10 {
		return bad(int64(n), "%d bytes: too short for a .npy header", fi.Size())
	}
	if string(pre[:6]) != npyMagic {
		return bad(0, "no NumPy magic (starts %q)", pre[:6])
	}
	var hlen, off int64
	switch pre[6] {
	case 1:
		hlen, off = int64(binary.LittleEndian.Uint16(pre[8:])), 10
	case 2, 3:
		hlen, off = int64(binary.LittleEndian.Uint32(pre[8:])), 12
	default:
		return bad(6, "format version %d.%d", pre[6], pre[7])
	}
	if hlen > 1<<16 || off+hlen > fi.Size() {
		return bad(8, "header of %d bytes in a file of %d", hlen, fi.Size())
	}
	buf := make([]byte, hlen)
	if _, err := f.ReadAt(buf, off); err != nil {
		return bad(off, "reading the header: %v", err)
	}
	h.Data = off + hlen
	dict := strings.TrimRight(string(buf), " \n\x00")
	value := func(key string) (string, bool) {
		i := strings.Index(dict, "'"+key+"'")
		if i < 0 {
			return "", false
		}
		rest := strings.TrimSpace(dict[i+len(key)+2:])
		if !strings.HasPrefix(rest, ":") {
			return "", false
		}
		return strings.TrimSpace(rest[1:]), true
	}
	v, ok := value("descr")
	if !ok || len(v) < 2 || v[0] != '\'' {
		return bad(off, "no dtype in header %q", dict)
	}
	end := strings.IndexByte(v[1:], '\'')
	if end < 0 {
		return bad(off, "no dtype in header %q", dict)
	}
	h.Descr = v[1 : 1+end]
	if itemSize(h.Descr) == 0 {
		return bad(off, "dtype %q: not a little-endian number type", h.Descr)
	}
	if v, ok = value("fortran_order"); !ok || !strings.HasPrefix(v, "False") {
		return bad(off, "not a C-order array (header %q)", dict)
	}
	if v, ok = value("shape"); !ok || !strings.HasPrefix(v, "(") || !strings.Contains(v, ")") {
		return bad(off, "no shape in header %q", dict)
	}
	for _, f := range strings.Split(v[1:strings.IndexByte(v, ')')], ",") {
		if f = strings.TrimSuffix(strings.TrimSpace(f), "L"); f == "" {
			continue
		}
		d, err := strconv.ParseInt(f, 10, 64)
		if err != nil || d < 0 || d > fi.Size() {
			return bad(off, "dimension %q in shape %s (file of %d bytes)", f, v, fi.Size())
		}
		h.Shape = append(h.Shape, d)
	}
	if len(h.Shape) == 0 {
		return bad(off, "a scalar, want an array")
	}
	return h, nil
}

// npyWriter appends records to a .npy file and keeps the shape in its
// header current: update rewrites it in place (the header is padded to
// npyHeaderSize bytes, room for any count).
type npyWriter struct {
	f       *os.File
	w       *bufio.Writer
	name    string
	descr   string
	dims    []int64 // dimensions after the first
	count   int64   // records appended
	written int64   // records counted in the header on disk
}

// createNPY creates path for records of dtype descr and trailing
// dimensions dims (none for a 1-D array).
func createNPY(path, descr string, dims ...int64) (*npyWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	n := &npyWriter{f: f, w: bufio.NewWriterSize(f, 1<<16), name: path, descr: descr, dims: dims}
	h, err := n.header()
	if err == nil {
		_, err = n.w.Write(h)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return n, nil
}

// header returns the npyHeaderSize-byte header for the current count.
func (n *npyWriter) header() ([]byte, error) {
	shape := "(" + strconv.FormatInt(n.count, 10) + ","
	for _, d := range n.dims {
		shape += " " + strconv.FormatInt(d, 10) + ","
	}
	shape = strings.TrimSuffix(shape, ",")
	if len(n.dims) == 0 {
		shape += ","
	}
	shape += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", n.descr, shape)
	pad := npyHeaderSize - 10 - len(dict) - 1
	if pad < 0 {
		return nil, fmt.Errorf("openephys: %s: .npy header %q does not fit %d bytes", n.name, dict, npyHeaderSize)
	}
	b := make([]byte, 0, npyHeaderSize)
	b = append(b, npyMagic...)
	b = append(b, 1, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(npyHeaderSize-10))
	b = append(b, dict...)
	b = append(b, strings.Repeat(" ", pad)...)
	return append(b, '\n'), nil
}

// append writes the bytes of k records.
func (n *npyWriter) append(p []byte, k int64) error {
	if _, err := n.w.Write(p); err != nil {
		return fmt.Errorf("openephys: %s: %w", n.name, err)
	}
	n.count += k
	return nil
}

// sync flushes the records and rewrites the header's shape, so that the
// file on disk is a valid array of every record appended so far.
func (n *npyWriter) sync(fsync bool) error {
	if err := n.w.Flush(); err != nil {
		return fmt.Errorf("openephys: %s: %w", n.name, err)
	}
	if fsync {
		// Records first, then the header that counts them.
		if err := n.f.Sync(); err != nil {
			return fmt.Errorf("openephys: %s: %w", n.name, err)
		}
	}
	if n.written != n.count {
		h, err := n.header()
		if err != nil {
			return err
		}
		if _, err := n.f.WriteAt(h, 0); err != nil {
			return fmt.Errorf("openephys: %s: %w", n.name, err)
		}
		n.written = n.count
	}
	return nil
}

// close syncs and closes the file.
func (n *npyWriter) close() error {
	err := n.sync(true)
	if err == nil {
		err = n.f.Sync()
	}
	if cerr := n.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("openephys: %s: %w", n.name, cerr)
	}
	return err
}

// readInt64s reads records [from, from+len(dst)) of a 1-D int64 (or
// other integer) array into dst.
func readInt64s(f *os.File, h npyHeader, from int64, dst []int64, buf []byte) ([]byte, error) {
	size := int64(itemSize(h.Descr))
	need := int(size) * len(dst)
	if cap(buf) < need {
		buf = make([]byte, need)
	}
	buf = buf[:need]
	off := h.Data + from*size
	if n, err := f.ReadAt(buf, off); n < need {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf, fmt.Errorf("byte %d: %w", off+int64(n), err)
	}
	for i := range dst {
		p := buf[i*int(size):]
		switch h.Descr {
		case "<i8":
			dst[i] = int64(binary.LittleEndian.Uint64(p))
		case "<u8":
			dst[i] = int64(min(binary.LittleEndian.Uint64(p), 1<<63-1))
		case "<i4":
			dst[i] = int64(int32(binary.LittleEndian.Uint32(p)))
		case "<u4":
			dst[i] = int64(binary.LittleEndian.Uint32(p))
		case "<i2":
			dst[i] = int64(int16(binary.LittleEndian.Uint16(p)))
		case "<u2":
			dst[i] = int64(binary.LittleEndian.Uint16(p))
		default:
			return buf, fmt.Errorf("dtype %q is not an integer type", h.Descr)
		}
	}
	return buf, nil
}
