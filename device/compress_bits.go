package device

import (
	"encoding/binary"
	"math/bits"
)

// Bit streams of the compressed frame types (docs/protocol.md, "Bit
// streams") are least-significant-bit first: bit i of the stream is bit
// i mod 8 of byte i/8. A Rice code is its quotient in unary (that many
// zero bits, then a one) followed by the low k bits of the value; a
// quotient of riceEscape or more is written as riceEscape zero bits and
// the value in escapeBits bits.
const (
	riceEscape = 24 // zero bits that start an escaped value
	escapeBits = 17 // bits of an escaped value (a zigzag residual of int16 is < 2^17)
	maxRiceK   = 16 // largest Rice parameter
	maxCode    = riceEscape + escapeBits
)

// bitWriter appends bits to a byte slice, least significant first.
type bitWriter struct {
	buf  []byte
	acc  uint64 // pending bits, the oldest in bit 0
	n    uint   // pending bits in acc (< 8 between calls)
	bits int    // bits written in all
}

// write appends the low n bits of v (n <= 56).
func (w *bitWriter) write(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	w.bits += int(n)
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

// rice appends u as a Rice code with parameter k.
func (w *bitWriter) rice(u uint32, k uint) {
	q := u >> k
	if q < riceEscape {
		// q zeros, a one, then the low k bits: q+1+k <= 40 bits.
		w.write(uint64(u&(1<<k-1))<<(q+1)|1<<q, uint(q)+1+k)
		return
	}
	w.write(uint64(u)<<riceEscape, maxCode)
}

// flush pads the stream with zero bits to a whole byte and returns it.
func (w *bitWriter) flush() []byte {
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc))
		w.bits += int(8 - w.n)
		w.acc, w.n = 0, 0
	}
	return w.buf
}

// fastWriter writes a bit stream into buf[pos:], which has room for
// everything it will write plus 8 bytes: it stores 8 bytes at a time.
type fastWriter struct {
	buf []byte
	pos int
	acc uint64
	n   uint
}

// write appends the low n bits of v (n <= 56).
func (w *fastWriter) write(v uint64, n uint) {
	if w.n+n > 64 {
		w.spill()
	}
	w.acc |= v << w.n
	w.n += n
}

// spill stores the whole bytes of acc.
func (w *fastWriter) spill() {
	binary.LittleEndian.PutUint64(w.buf[w.pos:], w.acc)
	k := w.n >> 3
	w.pos += int(k)
	w.acc = w.acc >> (k << 3) // k <= 8: a shift by 64 gives 0
	if k == 8 {
		w.acc = 0
	}
	w.n &= 7
}

// rice appends u as a Rice code with parameter k.
func (w *fastWriter) rice(u uint32, k uint) {
	q := u >> k
	if q < riceEscape {
		w.write(uint64(u&(1<<k-1))<<(q+1)|1<<q, uint(q)+1+k)
		return
	}
	w.write(uint64(u)<<riceEscape, maxCode)
}

// splitRun appends the values u as Rice codes with parameter k, split
// in two sections (docs/protocol.md, "Compressed data frames"): first the
// quotients of every value in unary (q zero bits and a one; an escape,
// q >= riceEscape, as riceEscape zeros and a one), then the low bits of
// every value (k bits, or escapeBits bits of the value if it escaped).
//
// Codes are put together before they are written, to shorten the chain
// of dependent shifts: two unary codes (at most 50 bits), and three
// fields of low bits (at most 48) when no value escaped.
func (w *fastWriter) splitRun(u []uint32, k uint) {
	k &= 31
	acc, n, pos, buf := w.acc, w.n, w.pos, w.buf
	var or uint32
	i := 0
	for ; i+1 < len(u); i += 2 {
		a, b := u[i], u[i+1]
		or |= a | b
		q0, q1 := uint(min(a>>k, riceEscape)), uint(min(b>>k, riceEscape))
		code, l := uint64(1)<<q0|uint64(1)<<(q0+1+q1), q0+q1+2
		if n+l > 64 {
			acc, n, pos = spillAcc(buf, acc, n, pos)
		}
		acc |= code << (n & 63)
		n += l
	}
	if i < len(u) {
		a := u[i]
		or |= a
		q := uint(min(a>>k, riceEscape))
		if n+q+1 > 64 {
			acc, n, pos = spillAcc(buf, acc, n, pos)
		}
		acc |= uint64(1) << ((n + q) & 63)
		n += q + 1
	}
	mask := uint32(1)<<k - 1
	i = 0
	if or>>k < riceEscape {
		// No escapes: fields of k bits, three at a time.
		for ; i+2 < len(u); i += 3 {
			code := uint64(u[i]&mask) | uint64(u[i+1]&mask)<<k | uint64(u[i+2]&mask)<<(2*k)
			if n+3*k > 64 {
				acc, n, pos = spillAcc(buf, acc, n, pos)
			}
			acc |= code << (n & 63)
			n += 3 * k
		}
	}
	for _, v := range u[i:] {
		code, l := uint64(v&mask), k
		if v>>k >= riceEscape {
			code, l = uint64(v), escapeBits
		}
		if n+l > 64 {
			acc, n, pos = spillAcc(buf, acc, n, pos)
		}
		acc |= code << (n & 63)
		n += l
	}
	w.acc, w.n, w.pos = acc, n, pos
}

// spillAcc stores the whole bytes of the n bits of acc at buf[pos:] and
// returns what remains.
func spillAcc(buf []byte, acc uint64, n uint, pos int) (uint64, uint, int) {
	binary.LittleEndian.PutUint64(buf[pos:], acc)
	b := n >> 3
	if b == 8 {
		acc = 0
	} else {
		acc >>= b << 3
	}
	return acc, n & 7, pos + int(b)
}

// finish stores what remains, zero-padded to a whole byte, and returns
// the buffer up to there.
func (w *fastWriter) finish() []byte {
	for w.n > 0 {
		w.buf[w.pos] = byte(w.acc)
		w.pos++
		w.acc >>= 8
		w.n -= min(w.n, 8)
	}
	return w.buf[:w.pos]
}

// riceLen returns the length in bits of the Rice code of u with
// parameter k.
func riceLen(u uint32, k uint) int {
	if q := u >> k; q < riceEscape {
		return int(q) + 1 + int(k)
	}
	return maxCode
}

// bitReader reads a bit stream least significant bit first. Past the end
// of its bytes it reads zero bits and counts them, so that decoding
// damaged input never reads out of bounds; over reports it.
type bitReader struct {
	p    []byte
	pos  int    // next byte of p to load
	acc  uint64 // unread bits, the next in bit 0
	n    uint   // unread bits in acc
	past int    // zero bits supplied beyond the end of p
}

func newBitReader(p []byte) bitReader { return bitReader{p: p} }

// refill makes at least 56 bits available.
func (r *bitReader) refill() {
	if r.n >= 56 {
		return
	}
	if r.pos+8 <= len(r.p) {
		r.acc |= binary.LittleEndian.Uint64(r.p[r.pos:]) << r.n
		r.pos += int(63-r.n) >> 3
		r.n |= 56
		return
	}
	for r.n <= 56 {
		if r.pos < len(r.p) {
			r.acc |= uint64(r.p[r.pos]) << r.n
			r.pos++
		} else {
			r.past += 8
		}
		r.n += 8
	}
}

// read returns the next n bits (n <= 56).
func (r *bitReader) read(n uint) uint64 {
	r.refill()
	v := r.acc & (1<<n - 1)
	r.acc >>= n
	r.n -= n
	return v
}

// rice reads a Rice code with parameter k (<= maxRiceK).
func (r *bitReader) rice(k uint) uint32 {
	r.refill()
	q := uint(bits.TrailingZeros64(r.acc))
	if q < riceEscape {
		v := uint32(q)<<k | uint32(r.acc>>(q+1))&(1<<k-1)
		r.acc >>= q + 1 + k
		r.n -= q + 1 + k
		return v
	}
	v := uint32(r.acc>>riceEscape) & (1<<escapeBits - 1)
	r.acc >>= maxCode
	r.n -= maxCode
	return v
}

// splitRun reads len(dst) values written by fastWriter.splitRun with
// parameter k and stores them unzigzagged in dst, using q (len(dst)) for
// the quotients. It is the decoder's inner loop: the unary section is
// read a word at a time, one set bit per value; shift counts are masked
// so that the compiler emits plain shifts. A zero run longer than an
// escape (damaged input) reports false.
func (r *bitReader) splitRun(dst []int32, q []uint8, k uint) bool {
	k &= 63
	// Unary section: the set bits of 56-bit words.
	carry := uint(0) // zeros before the current word since the last one
	for i := 0; i < len(dst); {
		r.refill()
		w := r.acc & (1<<56 - 1)
		prev := uint(0) // bit after the last one found in this word
		for w != 0 && i < len(dst) {
			tz := uint(bits.TrailingZeros64(w)) & 63
			z := carry + tz - prev
			if z > riceEscape {
				return false
			}
			q[i] = uint8(z)
			carry, prev = 0, tz+1
			w &= w - 1
			i++
		}
		if i == len(dst) {
			r.acc >>= prev & 63
			r.n -= prev
			break
		}
		carry += 56 - prev
		if carry > riceEscape {
			return false
		}
		r.acc >>= 56
		r.n -= 56
	}
	// Low bits.
	acc, n, pos, p := r.acc, r.n, r.pos, r.p
	mask := uint64(1)<<k - 1
	for i, z := range q[:len(dst)] {
		if n < 56 {
			if pos+8 <= len(p) {
				acc |= binary.LittleEndian.Uint64(p[pos:]) << (n & 63)
				pos += int(63-n) >> 3
				n |= 56
			} else {
				r.acc, r.n, r.pos = acc, n, pos
				r.refill()
				acc, n, pos = r.acc, r.n, r.pos
			}
		}
		var v uint32
		if z < riceEscape {
			v = uint32(z)<<k | uint32(acc&mask)
			acc >>= k
			n -= k
		} else {
			v = uint32(acc & (1<<escapeBits - 1))
			acc >>= escapeBits
			n -= escapeBits
		}
		dst[i] = int32(v>>1) ^ -int32(v&1)
	}
	r.acc, r.n, r.pos = acc, n, pos
	return true
}

// consumed returns the number of bits read from the stream, including
// zero bits supplied past its end.
func (r *bitReader) consumed() int { return 8*r.pos + r.past - int(r.n) }

// end checks that the stream was read exactly: no bits were needed past
// its end, at most 7 bits remain, and they are zero (padding).
func (r *bitReader) end() error {
	used := r.consumed()
	switch {
	case used > 8*len(r.p):
		return errShortStream
	case 8*len(r.p)-used >= 8:
		return errLongStream
	}
	if pad := uint(8*len(r.p) - used); pad > 0 && r.read(pad) != 0 {
		return errPadding
	}
	return nil
}

// zigzag maps a signed residual to an unsigned value: 0, -1, 1, -2... to
// 0, 1, 2, 3...
func zigzag(v int32) uint32 { return uint32(v<<1) ^ uint32(v>>31) }

// unzigzag inverts zigzag.
func unzigzag(u uint32) int32 { return int32(u>>1) ^ -int32(u&1) }
