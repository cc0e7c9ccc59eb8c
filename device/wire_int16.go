package device

import "encoding/binary"

// decodeInt16 converts the little-endian int16 bytes p into s; len(p) must
// be at least 2*len(s). It is the hot loop of the Decoder. It computes
//
//	for i := range s {
//		s[i] = int16(binary.LittleEndian.Uint16(p[2*i:]))
//	}
//
// (decodeInt16Ref) eight samples at a time from two 64-bit loads, which
// is about twice as fast on amd64 and arm64 and needs no unsafe.
func decodeInt16(s []int16, p []byte) {
	p = p[:2*len(s)]
	n := len(s) &^ 7
	for i := 0; i < n; i += 8 {
		q := p[2*i : 2*i+16 : 2*i+16]
		t := s[i : i+8 : i+8]
		v := binary.LittleEndian.Uint64(q)
		w := binary.LittleEndian.Uint64(q[8:])
		t[0], t[1], t[2], t[3] = int16(v), int16(v>>16), int16(v>>32), int16(v>>48)
		t[4], t[5], t[6], t[7] = int16(w), int16(w>>16), int16(w>>32), int16(w>>48)
	}
	for i := n; i < len(s); i++ {
		s[i] = int16(binary.LittleEndian.Uint16(p[2*i:]))
	}
}

// decodeInt16Ref is the reference for decodeInt16.
func decodeInt16Ref(s []int16, p []byte) {
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(p[2*i:]))
	}
}

// encodeInt16 writes s into p as little-endian int16 bytes; len(p) must be
// at least 2*len(s). It computes
//
//	for i, v := range s {
//		binary.LittleEndian.PutUint16(p[2*i:], uint16(v))
//	}
//
// (encodeInt16Ref) four samples at a time with one 64-bit store.
func encodeInt16(p []byte, s []int16) {
	p = p[:2*len(s)]
	n := len(s) &^ 3
	for i := 0; i < n; i += 4 {
		t := s[i : i+4 : i+4]
		v := uint64(uint16(t[0])) | uint64(uint16(t[1]))<<16 | uint64(uint16(t[2]))<<32 | uint64(uint16(t[3]))<<48
		binary.LittleEndian.PutUint64(p[2*i:2*i+8:2*i+8], v)
	}
	for i := n; i < len(s); i++ {
		binary.LittleEndian.PutUint16(p[2*i:], uint16(s[i]))
	}
}

// encodeInt16Ref is the reference for encodeInt16.
func encodeInt16Ref(p []byte, s []int16) {
	for i, v := range s {
		binary.LittleEndian.PutUint16(p[2*i:], uint16(v))
	}
}
