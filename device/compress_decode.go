package device

import (
	"encoding/binary"
	"math/bits"
)

// This file is the fast decoder of compressed payloads (compress.go
// describes the format). decompressRef, in compress.go, is its
// reference: it decodes channel by channel with every check in line and
// is what the fast path falls back to whenever a frame is anything but
// well formed and within the int16 range without clamped predictions.
// So the fast path decides only how quickly a frame decodes, never what
// it decodes to or which error it reports (TestDecompressFastMatchesRef,
// FuzzDecompressFast).
//
// The fast path works in two passes:
//
//  1. The bit stream of a group of channels (about 4,096 values, so
//     that they stay in the L1 cache), channel by channel, into
//     residuals stored time-major (res[t·G + c]), read at absolute bit
//     positions of a copy of the payload padded with zero bytes, so
//     every read is one unaligned 8-byte load. Quotients: the set bits
//     of 56-bit words. Low bits: when no value of the channel escaped
//     they are n fields of k bits, read three per load at positions
//     known in advance (no carried state).
//  2. The group's samples. Linear prediction on differences is
//     rewritten as a filter on the samples themselves (Σ cᵢ·dᵢ =
//     Σ bⱼ·x[t-j], see firTaps), which needs no running differences.
//     Order 4, the default, goes channel by channel with the last five
//     samples in registers (predictCols5); predictors 0 and 1 and the
//     other orders go row by row (one sample time across the group's
//     channels), reading the previous rows of the output. Range
//     violations are accumulated in one word and checked once per
//     group.

// decodeScratch holds the buffers a Decoder reuses for compressed frames.
type decodeScratch struct {
	res []int32  // residuals of a group of channels, time-major
	q   []uint32 // one channel's Rice quotients
	ks  []uint8  // Rice parameter of each channel
	p   []byte   // the payload's bit stream followed by zero bytes
	ref []int32  // one channel's residuals for decompressRef
}

// decompress decodes a compressed payload of channels × n samples into s
// (time-major): by the fast path if the frame allows, else by
// decompressRef, which also reports what is wrong with a bad frame.
func decompress(s []int16, p []byte, channels, n int, sc *decodeScratch) error {
	if decompressFast(s, p, channels, n, sc) {
		return nil
	}
	if cap(sc.ref) < n {
		sc.ref = make([]int32, n)
	}
	return decompressRef(s, p, channels, n, sc.ref[:n])
}

// peek64 returns the bits of b from bit position bp on (at least 57 of
// them, the next in bit 0).
func peek64(b []byte, bp int) uint64 {
	return binary.LittleEndian.Uint64(b[bp>>3:]) >> (uint(bp) & 7)
}

// decompressFast decodes what decompress does, and reports false, with s
// in an unspecified state, where the frame is malformed or needs what
// only decompressRef does (clamped predictions, errors).
func decompressFast(s []int16, p []byte, channels, n int, sc *decodeScratch) bool {
	pred, q, shift, coef, p, err := parsePredictor(p)
	if err != nil {
		return false
	}
	m := channels * n
	if 8*len(p) < m {
		return false
	}
	// The stream, padded: reads at bit positions up to limit are in
	// bounds.
	if cap(sc.p) < len(p)+16 {
		sc.p = make([]byte, len(p)+16, len(p)+len(p)/4+16)
	}
	b := sc.p[:len(p)+16]
	copy(b, p)
	clear(b[len(p):])
	limit := 8 * len(p)
	bp := 0
	var kf uint
	if pred != predictNone {
		kf = uint(peek64(b, bp) & (1<<riceParamBit - 1))
		bp += riceParamBit
		if kf > maxRiceK {
			return false
		}
	}
	if cap(sc.ks) < channels {
		sc.ks = make([]uint8, channels)
	}
	ks := sc.ks[:channels]
	prev := -1
	for ch := range ks {
		if bp > limit {
			return false
		}
		w := peek64(b, bp)
		var k int
		switch {
		case prev < 0:
			k, bp = int(w&(1<<riceParamBit-1)), bp+riceParamBit
		case w&1 == 1:
			k, bp = prev, bp+1
		case w&2 != 0:
			k, bp = prev+1-2*int(w>>2&1), bp+3
		default:
			k, bp = int(w>>2&(1<<riceParamBit-1)), bp+2+riceParamBit
		}
		if k < 0 || k > maxRiceK {
			return false
		}
		ks[ch] = uint8(k)
		prev = k
	}
	// Channels in groups whose residuals stay in the L1 cache: decode a
	// group's bit streams, then reconstruct its columns of s.
	g := max(1, min(channels, groupValues/n))
	if cap(sc.res) < g*n {
		sc.res = make([]int32, g*n)
	}
	if cap(sc.q) < n {
		sc.q = make([]uint32, n)
	}
	first := 0
	if pred != predictNone {
		first = 1
	}
	qb := sc.q[:n-first]
	var taps [maxLPCOrder + 1]int64
	if pred == predictLPC {
		taps = firTaps(&coef, q, shift)
	}
	for c0 := 0; c0 < channels; c0 += g {
		gw := min(g, channels-c0)
		res := sc.res[:gw*n]
		for j, k8 := range ks[c0 : c0+gw] {
			if first == 1 {
				if bp > limit {
					return false
				}
				u, l := riceAt(b, bp, kf)
				res[j] = unzigzag(u)
				bp += l
			}
			if len(qb) == 0 {
				continue
			}
			var ok bool
			if bp, ok = splitRunAt(b, bp, limit, qb, uint(k8), res[j+first*gw:], gw); !ok {
				return false
			}
		}
		if !reconstructRows(s[c0:], channels, res, gw, n, pred, q, &taps, shift) {
			return false
		}
	}
	return bp <= limit && limit-bp < 8 && peek64(b, bp)&(1<<uint(limit-bp)-1) == 0
}

// groupValues is the number of residuals decompressFast decodes before
// it reconstructs them (16 KB).
const groupValues = 4096

// reconstructRows writes the samples of a group of w channels (columns
// of s, rows stride apart) from their residuals res (time-major, w
// wide) and reports whether the fast path may keep them: no clamped
// prediction, every sample int16.
func reconstructRows(s []int16, stride int, res []int32, w, n int, pred byte, q int, taps *[maxLPCOrder + 1]int64, shift uint) bool {
	switch pred {
	case predictNone:
		return sumRows(s, stride, res, w, 0, n, false)
	case predictPrev:
		return sumRows(s, stride, res, w, 0, n, true)
	}
	last := min(q+1, n)
	if !sumRows(s, stride, res, w, 0, last, true) {
		return false
	}
	if last == n {
		return true
	}
	if q == 4 {
		return predictCols5(s, stride, res, w, last, n, taps, shift)
	}
	return predictRows(s, stride, res, w, last, n, taps[:q+1], shift)
}

// riceAt decodes the Rice code with parameter k at bit bp of b and
// returns it and its length in bits.
func riceAt(b []byte, bp int, k uint) (uint32, int) {
	w := peek64(b, bp)
	k &= 31
	q := uint(bits.TrailingZeros64(w))
	if q < riceEscape {
		return uint32(q)<<k | uint32(w>>(q+1))&(1<<k-1), int(q + 1 + k)
	}
	return uint32(w>>riceEscape) & (1<<escapeBits - 1), maxCode
}

// splitRunAt decodes len(qb) values written by fastWriter.splitRun with
// parameter k from bit bp of b (padded: limit is the stream's length in
// bits), using qb for their quotients, and stores them unzigzagged at
// dst[0], dst[step]... It returns the bit position after them, or false
// where decompressRef would fail or the stream ends.
func splitRunAt(b []byte, bp, limit int, qb []uint32, k uint, dst []int32, step int) (int, bool) {
	k &= 31
	cnt := len(qb)
	if cnt == 0 || (cnt-1)*step >= len(dst) {
		return bp, false
	}
	// Quotients: the set bits of 56-bit words; a quotient is the count
	// of zero bits before its one.
	i, carry, top := 0, uint(0), uint(0)
	for {
		if bp > limit {
			return bp, false
		}
		w := peek64(b, bp) & (1<<56 - 1)
		prev := uint(0) // bit after the last one found in w
		for ; w != 0 && i < cnt; i++ {
			tz := uint(bits.TrailingZeros64(w))
			z := carry + tz - prev
			top |= z
			qb[i] = uint32(z)
			carry, prev = 0, tz+1
			w &= w - 1
		}
		if i == cnt {
			bp += int(prev)
			break
		}
		carry += 56 - prev
		if carry > riceEscape {
			return bp, false
		}
		bp += 56
	}
	// top, the OR of the quotients, is below 16 if all are: then none
	// escaped (riceEscape = 24); else look at them one by one.
	escaped := false
	if top >= 16 {
		for _, z := range qb {
			if z > riceEscape {
				return bp, false
			}
			escaped = escaped || z == riceEscape
		}
	}
	if !escaped {
		// n fields of k bits.
		if bp+cnt*int(k) > limit {
			return bp, false
		}
		mask := uint64(1)<<k - 1
		// Three fields per load (3k <= 48 of the 57 bits a load gives).
		pos, j, i := bp, 0, 0
		for ; i+2 < cnt; i += 3 {
			w := peek64(b, pos)
			dst[j] = unzigzag(qb[i]<<k | uint32(w&mask))
			dst[j+step] = unzigzag(qb[i+1]<<k | uint32(w>>k&mask))
			dst[j+2*step] = unzigzag(qb[i+2]<<k | uint32(w>>(2*k)&mask))
			pos += 3 * int(k)
			j += 3 * step
		}
		for _, z := range qb[i:] {
			dst[j] = unzigzag(z<<k | uint32(peek64(b, pos)&mask))
			pos += int(k)
			j += step
		}
		return pos, true
	}
	for i, z := range qb {
		if bp > limit {
			return bp, false
		}
		w := peek64(b, bp)
		var u uint32
		if z < riceEscape {
			u = z<<k | uint32(w)&(1<<k-1)
			bp += int(k)
		} else {
			u = uint32(w) & (1<<escapeBits - 1)
			bp += escapeBits
		}
		dst[i*step] = unzigzag(u)
	}
	return bp, true
}

// sumRows writes rows from..to-1 of w columns of s (rows stride apart)
// from residuals res (w wide): of predictor 1 (x[t] = x[t-1] + r[t],
// x[0] = r[0]) if prev, else of predictor 0 (x[t] = r[t]). It reports
// whether all samples are int16.
func sumRows(s []int16, stride int, res []int32, w, from, to int, prev bool) bool {
	var bad uint32
	for t := from; t < to; t++ {
		out := s[t*stride : t*stride+w]
		row := res[t*w : (t+1)*w]
		if t == 0 || !prev {
			for c, v := range row {
				bad |= uint32(v + 32768)
				out[c] = int16(v)
			}
			continue
		}
		last := s[(t-1)*stride : (t-1)*stride+w]
		for c, v := range row {
			x := int32(last[c]) + v
			bad |= uint32(x + 32768)
			out[c] = int16(x)
		}
	}
	return bad>>16 == 0
}

// firTaps rewrites the predictor on differences as a filter on samples:
// x[t-1] + (Σᵢ cᵢ·(x[t-i] - x[t-i-1])) >> s = (Σⱼ bⱼ·x[t-j]) >> s, j =
// 1..q+1, with b₁ = c₁ + 2^s, bⱼ = cⱼ - cⱼ₋₁, b_{q+1} = -c_q (exact:
// adding a multiple of 2^s before a flooring shift adds its quotient).
// taps[j-1] = bⱼ.
func firTaps(coef *[maxLPCOrder]int16, q int, shift uint) [maxLPCOrder + 1]int64 {
	var taps [maxLPCOrder + 1]int64
	taps[0] = int64(coef[0]) + 1<<shift
	for j := 1; j < q; j++ {
		taps[j] = int64(coef[j]) - int64(coef[j-1])
	}
	taps[q] = -int64(coef[q-1])
	return taps
}

// predictRows writes rows from..to-1 (from > len(taps)-1) of w columns
// of s (rows stride apart) from residuals res (w wide) of predictor 2,
// with the filter taps; it reports whether no prediction needed
// clamping and all samples are int16.
func predictRows(s []int16, stride int, res []int32, w, from, to int, taps []int64, shift uint) bool {
	var bad uint64
	shift &= 63
	for t := from; t < to; t++ {
		out := s[t*stride : t*stride+w]
		row := res[t*w : (t+1)*w]
		for c := range out {
			var acc int64
			for j, b := range taps {
				acc += b * int64(s[(t-1-j)*stride+c])
			}
			p := acc >> shift
			v := p + int64(row[c])
			bad |= uint64(p+32768) | uint64(v+32768)
			out[c] = int16(v)
		}
	}
	return bad>>16 == 0
}

// predictCols5 is predictRows for order 4 (five taps), the default,
// channel by channel with the last five samples in registers: each
// sample waits for the previous one (a multiply, two adds and a shift),
// which costs less than reloading them row by row.
func predictCols5(s []int16, stride int, res []int32, w, from, to int, taps *[maxLPCOrder + 1]int64, shift uint) bool {
	var bad uint64
	shift &= 63
	b1, b2, b3, b4, b5 := taps[0], taps[1], taps[2], taps[3], taps[4]
	for c := range w {
		x1, x2, x3 := int64(s[(from-1)*stride+c]), int64(s[(from-2)*stride+c]), int64(s[(from-3)*stride+c])
		x4, x5 := int64(s[(from-4)*stride+c]), int64(s[(from-5)*stride+c])
		for t := from; t < to; t++ {
			rest := (b2*x2 + b3*x3) + (b4*x4 + b5*x5)
			p := (b1*x1 + rest) >> shift
			v := p + int64(res[t*w+c])
			bad |= uint64(p+32768) | uint64(v+32768)
			s[t*stride+c] = int16(v)
			x5, x4, x3, x2, x1 = x4, x3, x2, x1, v
		}
	}
	return bad>>16 == 0
}
