package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// This file is the lossless sample codec of compressed frames (type 4,
// docs/protocol.md "Compressed data frames"). A frame's payload codes
// its C channels × N samples with one predictor shared by all channels
// and one Rice parameter per channel:
//
//	byte 0     predictor: 0 none (x̂ = 0), 1 previous sample, 2 linear
//	           prediction on first differences
//	predictor 2 only:
//	byte 1     order q (1..8)
//	byte 2     shift s (0..15)
//	bytes 3..  q coefficients c_1..c_q, int16 LE
//	then a bit stream (compress_bits.go), to the end of the payload:
//	  predictors 1, 2: 5 bits kFirst, the Rice parameter of each
//	                   channel's first sample
//	  channel 0's Rice parameter k_0, 5 bits; then for each further
//	  channel: 1 = the previous channel's, 01 then a sign bit (0: +1,
//	  1: -1), 00 then 5 bits: that value
//	  channel by channel, in channel order:
//	    predictor 0: the N values zigzag(x[t]), Rice(k_c)
//	    predictors 1, 2: zigzag(x[0]) Rice(kFirst), then the N-1 values
//	                     zigzag(x[t] - x̂[t]), Rice(k_c)
//	  zero bits to the end of the last byte
//
// Predictions (t >= 1): predictor 1, and predictor 2 for t <= q, is
// x̂[t] = x[t-1]; predictor 2 for t > q is
//
//	x̂[t] = clamp(x[t-1] + ((Σ_{i=1..q} c_i·(x[t-i] - x[t-i-1])) >> s))
//
// with >> an arithmetic (flooring) shift and clamp to the int16 range.
// Every frame decodes on its own: nothing is carried from one frame to
// the next. What the encoder carries (LPC statistics) only decides
// what it writes.

// Compressed-frame predictors.
const (
	predictNone  = 0 // x̂ = 0
	predictPrev  = 1 // x̂ = x[t-1]
	predictLPC   = 2 // linear prediction on first differences
	maxLPCOrder  = 8
	maxLPCShift  = 15
	riceParamBit = 5 // bits of an explicit Rice parameter
)

// Errors of compressed payloads (wrapped in the Decoder's bad-frame
// events).
var (
	errShortStream = errors.New("compressed stream ends early")
	errLongStream  = errors.New("compressed stream has bytes after its end")
	errPadding     = errors.New("compressed stream padding is not zero")
	errZeroRun     = errors.New("compressed stream has a unary code longer than an escape")
)

// maxFrameQ is the most samples per channel whose quotients the decoder
// keeps on the stack.
const maxFrameQ = 1024

// CompressConfig configures a Compressor. The zero value uses every
// predictor with order-4 linear prediction, what TestCReference checks
// against the C reference.
type CompressConfig struct {
	// Order is the order of the linear predictor on differences (0:
	// DefaultLPCOrder; -1: no linear prediction, only predictors 0 and 1).
	Order int
}

// DefaultLPCOrder is the default order of a Compressor's linear predictor.
const DefaultLPCOrder = 4

// Compressor encodes frames of samples losslessly (frame type 4). It keeps
// statistics of past frames to choose its linear predictor, so encode a
// stream's frames with one Compressor, in order; every frame it writes
// still decodes on its own. A Compressor is not safe for concurrent use;
// it does not allocate once its buffers have grown.
//
// Its choices are integer arithmetic, specified here so that another
// encoder (testdata/c/headstage.c) writes the same bytes:
//
//   - LPC statistics: r[i] = Σ d[t]·d[t-i] (i = 0..q, t-i >= 1, d the
//     first differences) over channels 0, s, 2s... (s = ceil(C/32)) of
//     the frame; acc[i] += r[i] - acc[i]>>3; coefficients from acc by
//     levinson.
//   - Predictor: the smallest sum of absolute residuals (first sample
//     included) over all channels; ties go to none, then previous.
//   - Rice parameter of a set of values (each channel's after its first
//     sample, and the first samples): with m = Σv / count, k0 =
//     bitlen(m)-1 (0 if m = 0, at most 16), the k of k0-1, k0, k0+1 that
//     codes them in the fewest bits (ties to the smaller). A channel then
//     takes the previous channel's parameter, or one next to it, if that
//     costs fewer bits with its side information (kSideBits), tried in
//     the order prev, prev-1, prev+1.
type Compressor struct {
	order int
	acc   [maxLPCOrder + 1]int64 // decayed autocorrelation of first differences
	coef  [maxLPCOrder]int16     // current coefficients (Q shift)
	shift uint
	have  bool    // coef valid
	x     []int32 // channel-major samples of the frame
	ed    []int32 // channel-major residuals of predictor 1
	el    []int32 // channel-major residuals of predictor 2
	u     []uint32
	first []uint32
	ks    []uint8
}

// NewCompressor returns a Compressor configured by cfg.
func NewCompressor(cfg CompressConfig) *Compressor {
	c := &Compressor{order: cfg.Order}
	if c.order == 0 {
		c.order = DefaultLPCOrder
	}
	c.order = min(max(c.order, 0), maxLPCOrder)
	return c
}

// AppendCompressed appends one compressed data frame (type 4) to dst;
// the arguments are those of AppendData. It panics where AppendData
// does: a compressed frame holds at most the samples a data frame may
// (2·channels·samples <= MaxPayload), and its payload is never larger
// than about 2.6 bytes per sample.
func (c *Compressor) AppendCompressed(dst []byte, counter uint64, rate uint32, gain float32, channels int, samples []int16, flags uint16) []byte {
	if channels <= 0 || channels > math.MaxUint16 || len(samples) == 0 || len(samples)%channels != 0 {
		panic(fmt.Sprintf("device.AppendCompressed: %d samples for %d channels", len(samples), channels))
	}
	n := len(samples) / channels
	if n > math.MaxUint16 || 2*len(samples) > MaxPayload {
		panic(fmt.Sprintf("device.AppendCompressed: frame of %d channels x %d samples exceeds the protocol's bounds", channels, n))
	}
	dst, start := grow(dst, HeaderSize)
	dst = c.appendPayload(dst, channels, samples)
	payload := len(dst) - start - HeaderSize
	if payload > MaxPayload {
		panic(fmt.Sprintf("device.AppendCompressed: payload of %d bytes exceeds %d", payload, MaxPayload))
	}
	putHeaderV(dst[start:], ProtocolVersion2, FrameCompressed, flags, payload, channels, n, rate, gain, counter)
	return appendTrailer(dst, start)
}

// appendPayload appends the compressed payload of samples (time-major,
// channels wide) to dst.
func (c *Compressor) appendPayload(dst []byte, channels int, samples []int16) []byte {
	n := len(samples) / channels
	m := len(samples)
	if cap(c.x) < m {
		c.x, c.ed, c.el, c.u = make([]int32, m), make([]int32, m), make([]int32, m), make([]uint32, m)
	}
	x, ed, el, u := c.x[:m], c.ed[:m], c.el[:m], c.u[:m]
	transpose(x, samples, channels, n)
	// Residuals of predictors 1 and 2 and the sums of absolute
	// residuals of all three. The LPC statistics come from the first
	// differences (ed) and set the coefficients this frame uses.
	var sumNone, sumPrev, sumLPC uint64
	for ch := range channels {
		o := ch * n
		a, b := diffSums(x[o:o+n], ed[o:o+n])
		sumNone += a
		sumPrev += b
	}
	c.updateLPC(ed, channels, n)
	q := 0
	if c.have {
		q = c.order
	}
	if q > 0 {
		taps := firTaps(&c.coef, q, c.shift)
		for ch := range channels {
			o := ch * n
			sumLPC += lpcResiduals(x[o:o+n], ed[o:o+n], el[o:o+n], q, &taps, c.shift)
		}
	}
	pred, src := predictNone, x
	if sumPrev < sumNone {
		pred, src = predictPrev, ed
	}
	if q > 0 && sumLPC < min(sumNone, sumPrev) {
		pred, src = predictLPC, el
	}
	// An upper bound of the payload: 11 bytes of predictor, 41 bits per
	// value and 7 bits per Rice parameter, 8 bytes of writer slack.
	bound := 11 + (41*m+7*channels+5)/8 + 16
	if cap(dst)-len(dst) < bound {
		nb := make([]byte, len(dst), len(dst)+bound+len(dst)/4)
		copy(nb, dst)
		dst = nb
	}
	dst = append(dst, byte(pred))
	if pred == predictLPC {
		dst = append(dst, byte(q), byte(c.shift))
		for _, v := range c.coef[:q] {
			dst = binary.LittleEndian.AppendUint16(dst, uint16(v))
		}
	}
	w := fastWriter{buf: dst[:cap(dst)], pos: len(dst)}
	first, kf := 0, uint(0) // values coded with the channel's own parameter start at first
	if pred != predictNone {
		first = 1
		c.first = c.first[:0]
		for ch := range channels {
			u[ch*n] = zigzag(src[ch*n])
			c.first = append(c.first, u[ch*n])
		}
		k, _ := riceParam(c.first)
		kf = uint(k)
		w.write(uint64(kf), riceParamBit)
	}
	// Rice parameters.
	if cap(c.ks) < channels {
		c.ks = make([]uint8, channels)
	}
	ks := c.ks[:channels]
	prevK := -1
	for ch := range channels {
		v := u[ch*n+first : (ch+1)*n]
		rc := zigzagRice(v, src[ch*n+first:(ch+1)*n])
		k, cost := rc.k, rc.cost()
		if prevK >= 0 && k != prevK {
			side := kSideBits(k, prevK)
			for _, alt := range [3]int{prevK, prevK - 1, prevK + 1} {
				if alt < 0 || alt > maxRiceK || alt == k {
					continue
				}
				if ca := rc.costAt(v, alt); ca+kSideBits(alt, prevK) < cost+side {
					k, cost, side = alt, ca, kSideBits(alt, prevK)
				}
			}
		}
		ks[ch] = uint8(k)
		switch d := k - prevK; {
		case prevK < 0:
			w.write(uint64(k), riceParamBit)
		case d == 0:
			w.write(1, 1)
		case d == 1:
			w.write(0b010, 3) // 0, 1, sign 0
		case d == -1:
			w.write(0b110, 3) // 0, 1, sign 1
		default:
			w.write(uint64(k)<<2, 2+riceParamBit)
		}
		prevK = k
	}
	for ch := range channels {
		v := u[ch*n : (ch+1)*n]
		if first == 1 {
			w.rice(v[0], kf)
			v = v[1:]
		}
		w.splitRun(v, uint(ks[ch]))
	}
	return w.finish()
}

// transpose copies time-major samples into channel-major x.
func transpose(x []int32, samples []int16, channels, n int) {
	if channels == 1 {
		for t, v := range samples {
			x[t] = int32(v)
		}
		return
	}
	for t := range n {
		row := samples[t*channels : (t+1)*channels]
		for ch, v := range row {
			x[ch*n+t] = int32(v)
		}
	}
}

// diffSums writes the residuals of predictor 1 (the first differences,
// and x[0] first) of one channel's samples x into ed and returns the
// sums of absolute residuals of predictors 0 and 1.
func diffSums(x, ed []int32) (none, prev uint64) {
	if len(x) == 0 {
		return
	}
	ed = ed[:len(x)]
	ed[0] = x[0]
	a0 := uint64(abs32(x[0]))
	none, prev = a0, a0
	last := x[0]
	for t, v := range x[1:] {
		df := v - last
		ed[t+1] = df
		none += uint64(abs32(v))
		prev += uint64(abs32(df))
		last = v
	}
	return none, prev
}

// lpcResiduals writes the residuals of predictor 2 of one channel's
// samples x into el, given its first differences ed, and returns their
// sum of absolute values. For t > q the prediction is the filter of
// firTaps, equal to the definition's x[t-1] + (Σ cᵢ·d[t-i]) >> s; the
// first residual is x[0].
func lpcResiduals(x, ed, el []int32, q int, taps *[maxLPCOrder + 1]int64, shift uint) uint64 {
	n := len(x)
	if n == 0 {
		return 0
	}
	ed, el = ed[:n], el[:n]
	el[0] = x[0]
	sum := uint64(abs32(x[0]))
	head := min(q+1, n)
	for t := 1; t < head; t++ {
		el[t] = ed[t]
		sum += uint64(abs32(ed[t]))
	}
	shift &= 63
	if q == 4 && n > 5 {
		b1, b2, b3, b4, b5 := taps[0], taps[1], taps[2], taps[3], taps[4]
		x5, x4, x3, x2, x1 := int64(x[0]), int64(x[1]), int64(x[2]), int64(x[3]), int64(x[4])
		for t := 5; t < n; t++ {
			p := ((b1*x1 + b2*x2) + (b3*x3 + b4*x4) + b5*x5) >> shift
			p = min(max(p, math.MinInt16), math.MaxInt16)
			v := x[t]
			e := v - int32(p)
			el[t] = e
			sum += uint64(abs32(e))
			x5, x4, x3, x2, x1 = x4, x3, x2, x1, int64(v)
		}
		return sum
	}
	tp := taps[:q+1]
	for t := head; t < n; t++ {
		var acc int64
		for j, b := range tp {
			acc += b * int64(x[t-1-j])
		}
		p := min(max(acc>>shift, math.MinInt16), math.MaxInt16)
		e := x[t] - int32(p)
		el[t] = e
		sum += uint64(abs32(e))
	}
	return sum
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func abs32(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

// kSideBits returns the bits that code Rice parameter k after prev.
func kSideBits(k, prev int) int {
	switch k - prev {
	case 0:
		return 1
	case 1, -1:
		return 3
	}
	return 2 + riceParamBit
}

// riceParam returns the Rice parameter the Compressor chooses for u (see
// Compressor) and the bits it codes them in.
func riceParam(u []uint32) (int, int) {
	rc := riceChoice(u)
	return rc.k, rc.cost()
}

// riceCosts is the Compressor's choice of a Rice parameter for a set of
// values: k, and the exact costs in bits of the parameters lo..lo+m-1
// it compared.
type riceCosts struct {
	k, lo, m int
	costs    [3]int
}

// cost returns the bits of the values coded with the chosen parameter.
func (rc *riceCosts) cost() int { return rc.costs[rc.k-rc.lo] }

// costAt returns the bits of u (the values of rc) coded with parameter
// k: known if k was compared, else counted.
func (rc *riceCosts) costAt(u []uint32, k int) int {
	if k >= rc.lo && k < rc.lo+rc.m {
		return rc.costs[k-rc.lo]
	}
	return riceCost(u, uint(k))
}

// riceChoice chooses the Rice parameter of u (see Compressor): with m
// the mean, k0 = bitlen(m)-1, the cheapest of k0-1, k0, k0+1. The costs
// are sums of shifted values when no value escapes at k0-1 (the OR of
// the values bounds their largest), else counted value by value.
func riceChoice(u []uint32) riceCosts {
	var sum uint64
	var or uint32
	for _, v := range u {
		sum += uint64(v)
		or |= v
	}
	return riceFrom(u, sum, or)
}

// zigzagRice stores the zigzag values of residuals r into u (as long)
// and returns riceChoice(u), in one pass over them.
func zigzagRice(u []uint32, r []int32) riceCosts {
	u = u[:len(r)]
	var sum uint64
	var or uint32
	for i, v := range r {
		z := zigzag(v)
		u[i] = z
		sum += uint64(z)
		or |= z
	}
	return riceFrom(u, sum, or)
}

// riceFrom is riceChoice given the sum and the OR of u.
func riceFrom(u []uint32, sum uint64, or uint32) riceCosts {
	if len(u) == 0 {
		return riceCosts{m: 1}
	}
	mean := sum / uint64(len(u))
	k0 := 0
	if mean > 0 {
		k0 = min(bits.Len64(mean)-1, maxRiceK)
	}
	lo, hi := max(k0-1, 0), min(k0+1, maxRiceK)
	rc := riceCosts{lo: lo, m: hi - lo + 1}
	k := uint(lo) & 31
	if or>>k < riceEscape {
		var s0, s1, s2 int
		for _, v := range u {
			s0 += int(v >> k)
			s1 += int(v >> (k + 1))
			s2 += int(v >> (k + 2))
		}
		n := len(u)
		rc.costs = [3]int{s0 + n*(int(k)+1), s1 + n*(int(k)+2), s2 + n*(int(k)+3)}
	} else {
		for i := range rc.m {
			rc.costs[i] = riceCost(u, k+uint(i))
		}
	}
	rc.k = lo
	for i := 1; i < rc.m; i++ {
		if rc.costs[i] < rc.costs[rc.k-lo] {
			rc.k = lo + i
		}
	}
	return rc
}

// riceCost returns the bits of u coded with Rice parameter k.
func riceCost(u []uint32, k uint) int {
	total := 0
	for _, v := range u {
		total += riceLen(v, k)
	}
	return total
}

// maxLPCChannels bounds the channels of a frame whose differences feed
// the LPC statistics (every step-th channel), to keep encoding cheap on
// large probes.
const maxLPCChannels = 32

// updateLPC adds the frame's autocorrelation of first differences (of
// every step-th channel; ed holds each channel's differences after its
// first sample, channel-major) to the decayed statistics and recomputes
// the coefficients.
func (c *Compressor) updateLPC(ed []int32, channels, n int) {
	q := c.order
	if q == 0 {
		return
	}
	step := (channels + maxLPCChannels - 1) / maxLPCChannels
	var r [maxLPCOrder + 1]int64
	for ch := 0; ch < channels; ch += step {
		d := ed[ch*n+1 : (ch+1)*n] // d[j]: the difference at t = j+1
		head := min(q, len(d))
		for j := range head {
			for i := 0; i <= j; i++ {
				r[i] += int64(d[j]) * int64(d[j-i])
			}
		}
		if q == 4 && len(d) > 4 {
			d1, d2, d3, d4 := int64(d[3]), int64(d[2]), int64(d[1]), int64(d[0])
			r0, r1, r2, r3, r4 := r[0], r[1], r[2], r[3], r[4]
			for _, v := range d[4:] {
				dv := int64(v)
				r0 += dv * dv
				r1 += dv * d1
				r2 += dv * d2
				r3 += dv * d3
				r4 += dv * d4
				d4, d3, d2, d1 = d3, d2, d1, dv
			}
			r[0], r[1], r[2], r[3], r[4] = r0, r1, r2, r3, r4
			continue
		}
		for j := head; j < len(d); j++ {
			dv := int64(d[j])
			for i := 0; i <= q; i++ {
				r[i] += dv * int64(d[j-i])
			}
		}
	}
	for i := 0; i <= q; i++ {
		c.acc[i] += r[i] - c.acc[i]>>3
	}
	c.have = levinson(c.acc[:q+1], c.coef[:q], &c.shift)
}

// Fixed point of the Levinson–Durbin recursion: 1.0 = 2^lpcOne.
const lpcOne = 24

// levinson computes the linear predictor of order len(coef) from the
// autocorrelation r (r[0] > 0) by Levinson–Durbin recursion in Q24
// fixed point, with 1/1024 of white noise added to r[0] for stability,
// and quantizes it into coef with a shift chosen so that the largest
// coefficient uses the int16 range. It reports false (coef unusable)
// when r[0] <= 0. The arithmetic is integer throughout, so a C encoder
// reproduces it exactly (testdata/c/headstage.c).
func levinson(r []int64, coef []int16, shift *uint) bool {
	q := len(coef)
	if r[0] <= 0 {
		return false
	}
	// Scale so that r[0] fits in 30 bits.
	sh := 0
	for r[0]>>sh >= 1<<30 {
		sh++
	}
	var rho [maxLPCOrder + 1]int64
	r0 := r[0] >> sh
	for i := 0; i <= q; i++ {
		rho[i] = (r[i] >> sh << lpcOne) / r0
	}
	rho[0] += rho[0] >> 10
	const one = int64(1) << lpcOne
	var a, tmp [maxLPCOrder + 1]int64
	e := rho[0]
	for m := 1; m <= q; m++ {
		acc := rho[m]
		for i := 1; i < m; i++ {
			acc += a[i] * rho[m-i] >> lpcOne
		}
		k := -(acc << lpcOne) / e
		if k >= one || k <= -one {
			break
		}
		for i := 1; i < m; i++ {
			tmp[i] = a[i] + k*a[m-i]>>lpcOne
		}
		copy(a[1:m], tmp[1:m])
		a[m] = k
		e = e * (one - k*k>>lpcOne) >> lpcOne
		if e <= 0 {
			break
		}
	}
	// Predictor coefficients c_i = -a_i, in Q(lpcOne); quantize to int16
	// with the largest shift that fits.
	var big int64
	for i := 1; i <= q; i++ {
		big = max(big, abs64(a[i]))
	}
	s := int64(maxLPCShift - 1)
	for s > 0 && (big+(int64(1)<<(lpcOne-s-1)))>>(lpcOne-s) > math.MaxInt16 {
		s--
	}
	if (big+(int64(1)<<(lpcOne-s-1)))>>(lpcOne-s) > math.MaxInt16 {
		return false
	}
	for i := 1; i <= q; i++ {
		v := -a[i]
		coef[i-1] = int16((v + int64(1)<<(lpcOne-s-1)) >> (lpcOne - s))
	}
	*shift = uint(s)
	return true
}

// parsePredictor reads the predictor header of a compressed payload
// (docs/protocol.md): the predictor, and for the linear one its order,
// shift and coefficients; it returns the rest of the payload.
func parsePredictor(p []byte) (pred byte, q int, shift uint, coef [maxLPCOrder]int16, rest []byte, err error) {
	if len(p) < 1 {
		return 0, 0, 0, coef, nil, errShortStream
	}
	pred = p[0]
	p = p[1:]
	switch pred {
	case predictNone, predictPrev:
	case predictLPC:
		if len(p) < 2 {
			return 0, 0, 0, coef, nil, errShortStream
		}
		q, shift = int(p[0]), uint(p[1])
		if q < 1 || q > maxLPCOrder || shift > maxLPCShift {
			return 0, 0, 0, coef, nil, fmt.Errorf("linear predictor of order %d, shift %d (want 1..%d, 0..%d)", q, shift, maxLPCOrder, maxLPCShift)
		}
		p = p[2:]
		if len(p) < 2*q {
			return 0, 0, 0, coef, nil, errShortStream
		}
		for i := range q {
			coef[i] = int16(binary.LittleEndian.Uint16(p[2*i:]))
		}
		p = p[2*q:]
	default:
		return 0, 0, 0, coef, nil, fmt.Errorf("unknown predictor %d", pred)
	}
	return pred, q, shift, coef, p, nil
}

// decompressRef decodes a compressed payload of channels × n samples
// into s (time-major), using scratch (at least n values) for one
// channel's residuals. It is the reference decoder: channel by channel,
// every check in line, and the one that names what is wrong with a bad
// frame. decompress (compress_decode.go) decodes well-formed frames
// faster and falls back to it for anything else.
func decompressRef(s []int16, p []byte, channels, n int, scratch []int32) error {
	pred, q, shift, coef, p, err := parsePredictor(p)
	if err != nil {
		return err
	}
	// The stream cannot code a value in fewer than one bit.
	if 8*len(p) < channels*n {
		return errShortStream
	}
	br := newBitReader(p)
	var kf uint
	if pred != predictNone {
		kf = uint(br.read(riceParamBit))
		if kf > maxRiceK {
			return fmt.Errorf("rice parameter %d of first samples exceeds %d", kf, maxRiceK)
		}
	}
	var ks [8192]uint8
	kk := ks[:0]
	if channels > len(ks) {
		kk = make([]uint8, 0, channels)
	}
	prev := -1
	for range channels {
		var k int
		switch {
		case prev < 0:
			k = int(br.read(riceParamBit))
		case br.read(1) == 1:
			k = prev
		case br.read(1) == 1:
			k = prev + 1 - 2*int(br.read(1))
		default:
			k = int(br.read(riceParamBit))
		}
		if k < 0 || k > maxRiceK {
			return fmt.Errorf("rice parameter %d exceeds %d", k, maxRiceK)
		}
		kk = append(kk, uint8(k))
		prev = k
	}
	r := scratch[:n]
	var qs [maxFrameQ]uint8
	qq := qs[:]
	if n > len(qq) {
		qq = make([]uint8, n)
	}
	for ch, k8 := range kk {
		k := uint(k8)
		out := s[ch:]
		if pred == predictNone {
			if !br.splitRun(r, qq, k) {
				return errZeroRun
			}
			if br.consumed() > 8*len(p) {
				return errShortStream
			}
			for t, v := range r {
				if v < math.MinInt16 || v > math.MaxInt16 {
					return fmt.Errorf("channel %d: sample %d out of the int16 range", ch, v)
				}
				out[t*channels] = int16(v)
			}
			continue
		}
		r[0] = unzigzag(br.rice(kf))
		if !br.splitRun(r[1:], qq, k) {
			return errZeroRun
		}
		if br.consumed() > 8*len(p) {
			return errShortStream
		}
		if err := reconstruct(out, r, channels, q, &coef, shift); err != nil {
			return fmt.Errorf("channel %d: %w", ch, err)
		}
	}
	return br.end()
}

// reconstruct undoes the residuals r of predictor 1 (q = 0) or 2: it
// writes one channel's samples at stride step into out.
//
// The prediction is on differences: d[t] = r[t] + (Σ c_i·d[t-i]) >> s and
// x[t] = x[t-1] + d[t], unless x[t-1] + (Σ c_i·d[t-i]) >> s is outside
// the int16 range, where the prediction is clamped. The loop keeps the
// multiply of d[t-1] alone on the path from one sample to the next; a
// clamped prediction (a signal at the rails) takes the slow path.
func reconstruct(out []int16, r []int32, step, q int, coef *[maxLPCOrder]int16, shift uint) error {
	n := len(r)
	x := int64(r[0])
	if x < math.MinInt16 || x > math.MaxInt16 {
		return fmt.Errorf("sample %d out of the int16 range", x)
	}
	out[0] = int16(x)
	last := min(q, n-1)
	if q == 0 {
		last = n - 1
	}
	for t := 1; t <= last; t++ {
		x += int64(r[t])
		if x < math.MinInt16 || x > math.MaxInt16 {
			return fmt.Errorf("sample %d out of the int16 range", x)
		}
		out[t*step] = int16(x)
	}
	if q == 0 || n <= q+1 {
		return nil
	}
	shift &= 63
	c0, c1, c2, c3 := int64(coef[0]), int64(coef[1]), int64(coef[2]), int64(coef[3])
	c4, c5, c6, c7 := int64(coef[4]), int64(coef[5]), int64(coef[6]), int64(coef[7])
	// d[i] = x[t-1-i] - x[t-2-i] at t = q+1.
	var d [maxLPCOrder]int64
	for i := range q {
		d[i] = int64(out[(q-i)*step]) - int64(out[(q-i-1)*step])
	}
	d0, d1, d2, d3, d4, d5, d6, d7 := d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
	for t := q + 1; t < n; t++ {
		rest := (c1*d1 + c2*d2) + c3*d3
		if q > 4 {
			rest += (c4*d4 + c5*d5) + (c6*d6 + c7*d7)
		}
		p := x + (c0*d0+rest)>>shift
		if p < math.MinInt16 || p > math.MaxInt16 {
			p = min(max(p, math.MinInt16), math.MaxInt16)
		}
		v := p + int64(r[t])
		if v < math.MinInt16 || v > math.MaxInt16 {
			return fmt.Errorf("sample %d out of the int16 range", v)
		}
		out[t*step] = int16(v)
		d7, d6, d5, d4, d3, d2, d1, d0 = d6, d5, d4, d3, d2, d1, d0, v-x
		x = v
	}
	return nil
}
