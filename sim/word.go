package sim

import (
	"encoding/binary"
	"unsafe"
)

// littleEndian says whether store4 puts element 0 in the low bits,
// which transpose relies on.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// store4 stores a word (element 0 in the low bits) into four int16; len(s) must
// be 4.
func store4(s []int16, w uint64) {
	_ = s[3]
	*(*uint64)(unsafe.Pointer(&s[0])) = w
}

// bytesLE returns s as little-endian bytes: its own memory on
// little-endian machines, else a copy in buf (reused and returned).
func bytesLE(s []int16, buf []byte) (p, scratch []byte) {
	if littleEndian && len(s) > 0 {
		return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 2*len(s)), buf
	}
	buf = appendLE(buf[:0], s)
	return buf, buf
}

// appendLE appends s as little-endian bytes to dst: a plain copy of the
// memory on little-endian machines.
func appendLE(dst []byte, s []int16) []byte {
	if littleEndian && len(s) > 0 {
		return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 2*len(s))...)
	}
	for _, v := range s {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(v))
	}
	return dst
}
