package phy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestNPYHeaderBytes(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteNPY(&buf, []int{3}, []int64{1, -2, 3}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// Magic, version 1.0, little-endian header length.
	if !bytes.HasPrefix(b, []byte("\x93NUMPY\x01\x00")) {
		t.Fatalf("prefix % x", b[:8])
	}
	hlen := int(binary.LittleEndian.Uint16(b[8:10]))
	if (10+hlen)%64 != 0 {
		t.Fatalf("data starts at %d, not a multiple of 64", 10+hlen)
	}
	dict := string(b[10 : 10+hlen])
	want := "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"
	if !strings.HasPrefix(dict, want) || !strings.HasSuffix(dict, "\n") || strings.TrimRight(dict, " \n") != want {
		t.Fatalf("header dict %q, want %q padded with spaces and a newline", dict, want)
	}
	if len(b) != 10+hlen+24 {
		t.Fatalf("file is %d bytes, want %d", len(b), 10+hlen+24)
	}
	data := b[10+hlen:]
	if v := int64(binary.LittleEndian.Uint64(data[8:])); v != -2 {
		t.Fatalf("element 1 = %d, want -2", v)
	}
	// This exact header is what numpy.save writes for np.array([1,-2,3])
	// (numpy >= 1.23 pads to 128 bytes here too; see TestNumPyLoads).
	golden := "\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }" + strings.Repeat(" ", 60) + "\n"
	if string(b[:10+hlen]) != golden {
		t.Fatalf("header\n%q\nwant\n%q", b[:10+hlen], golden)
	}
}

func TestNPYDescrAndShapes(t *testing.T) {
	check := func(t *testing.T, got []byte, descr, shape string) {
		t.Helper()
		h, err := ReadHeader(bytes.NewReader(got), "x.npy")
		if err != nil {
			t.Fatal(err)
		}
		if h.Descr != descr {
			t.Errorf("descr %q, want %q", h.Descr, descr)
		}
		if !strings.Contains(string(got[:h.DataOffset]), "'shape': "+shape+",") {
			t.Errorf("header %q lacks shape %s", got[:h.DataOffset], shape)
		}
		if h.DataOffset%64 != 0 {
			t.Errorf("data offset %d", h.DataOffset)
		}
	}
	var b bytes.Buffer
	WriteNPY(&b, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	check(t, b.Bytes(), "<f4", "(2, 3)")
	b.Reset()
	WriteNPY(&b, []int{1, 2, 2}, []uint32{1, 2, 3, 4})
	check(t, b.Bytes(), "<u4", "(1, 2, 2)")
	b.Reset()
	WriteNPY(&b, []int{0}, []int32{})
	check(t, b.Bytes(), "<i4", "(0,)")
	b.Reset()
	WriteNPY(&b, []int{}, []float64{math.Pi})
	check(t, b.Bytes(), "<f8", "()")
	b.Reset()
	WriteNPY(&b, []int{2}, []uint8{1, 2})
	check(t, b.Bytes(), "|u1", "(2,)")

	if err := WriteNPY(&b, []int{2, 2}, []int16{1, 2, 3}); err == nil {
		t.Error("shape/length mismatch accepted")
	}
}

func TestNPYRoundTrip(t *testing.T) {
	in := make([]float32, 20000) // more than one write chunk
	for i := range in {
		in[i] = float32(i) * 0.25
	}
	var b bytes.Buffer
	if err := WriteNPY(&b, []int{100, 200}, in); err != nil {
		t.Fatal(err)
	}
	h, out, err := ReadNPY[float32](bytes.NewReader(b.Bytes()), "rt.npy")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.Shape, []int{100, 200}) || h.Fortran || !slices.Equal(in, out) {
		t.Fatalf("round trip: header %+v, equal %v", h, slices.Equal(in, out))
	}
	// Wrong dtype is refused.
	if _, _, err := ReadNPY[int32](bytes.NewReader(b.Bytes()), "rt.npy"); !errors.Is(err, ErrNPY) {
		t.Fatalf("dtype mismatch: err = %v", err)
	}
}

func TestNPYReadErrors(t *testing.T) {
	var good bytes.Buffer
	WriteNPY(&good, []int{4}, []int64{1, 2, 3, 4})
	g := good.Bytes()
	tests := []struct {
		name string
		in   []byte
		off  int64
		msg  string
	}{
		{"empty", nil, 0, "too short"},
		{"magic", append([]byte("\x93NUMPX"), g[6:]...), 0, "bad magic"},
		{"version", append(append([]byte{}, g[:6]...), append([]byte{9, 0}, g[8:]...)...), 6, "unsupported version"},
		{"short header", g[:40], 40, "header ends early"},
		{"short data", g[:len(g)-3], 128 + 29, "data ends early"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadNPY[int64](bytes.NewReader(tt.in), "bad.npy")
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FormatError", err)
			}
			if fe.Offset != tt.off || !strings.Contains(fe.Reason, tt.msg) || fe.Name != "bad.npy" {
				t.Fatalf("err = %v (offset %d), want offset %d and %q", err, fe.Offset, tt.off, tt.msg)
			}
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	var b bytes.Buffer
	WriteNPY(&b, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	f.Add(b.Bytes())
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'shape': (1,)}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		// The array readers must not panic either.
		ReadNPYInt64(bytes.NewReader(in), "fuzz.npy")
		ReadNPYFloat64(bytes.NewReader(in), "fuzz.npy")
		h, err := ReadHeader(bytes.NewReader(in), "fuzz.npy")
		if err != nil {
			return
		}
		if h.DataOffset > len(in) {
			t.Fatalf("data offset %d past %d bytes", h.DataOffset, len(in))
		}
		for _, d := range h.Shape {
			if d < 0 {
				t.Fatalf("negative dimension in %v", h.Shape)
			}
		}
		if n := h.Len(); n < 0 || n > 1<<40 {
			t.Fatalf("shape %v holds %d elements", h.Shape, n)
		}
	})
}

func BenchmarkWriteNPY(b *testing.B) {
	data := make([]int64, 1<<20)
	for i := range data {
		data[i] = int64(i) * 7
	}
	b.SetBytes(8 << 20)
	for b.Loop() {
		if err := WriteNPY(io.Discard, []int{len(data)}, data); err != nil {
			b.Fatal(err)
		}
	}
}
