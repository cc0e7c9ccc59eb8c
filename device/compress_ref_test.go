package device

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

// The encoder as it was before it was made faster (commit a4c1236's
// compress.go, names prefixed with ref, and the plain bitWriter in place
// of fastWriter), kept as the reference the Compressor must match byte
// for byte: TestCompressorMatchesRef, FuzzCompressorMatchesRef.

// refWriter is the reference's bit writer: bitWriter, one value at a
// time.
type refWriter struct{ bitWriter }

// splitRun writes the quotients of u in unary, then their low bits
// (compress_bits.go).
func (w *refWriter) splitRun(u []uint32, k uint) {
	for _, v := range u {
		q := min(v>>k, riceEscape)
		w.write(1<<q, uint(q)+1)
	}
	for _, v := range u {
		if v>>k >= riceEscape {
			w.write(uint64(v), escapeBits)
		} else {
			w.write(uint64(v&(1<<k-1)), k)
		}
	}
}

func (w *refWriter) finish() []byte { return w.flush() }

// refCompressor is the state of the reference encoder (Compressor's).
type refCompressor struct {
	order int
	acc   [maxLPCOrder + 1]int64
	coef  [maxLPCOrder]int16
	shift uint
	have  bool
	x     []int32
	ed    []int32
	el    []int32
	u     []uint32
	first []uint32
	ks    []uint8
}

// appendPayload appends the compressed payload of samples (time-major,
// channels wide) to dst.
func (c *refCompressor) appendPayload(dst []byte, channels int, samples []int16) []byte {
	n := len(samples) / channels
	m := len(samples)
	if cap(c.x) < m {
		c.x, c.ed, c.el, c.u = make([]int32, m), make([]int32, m), make([]int32, m), make([]uint32, m)
	}
	x, ed, el, u := c.x[:m], c.ed[:m], c.el[:m], c.u[:m]
	refTranspose(x, samples, channels, n)
	c.updateLPC(x, channels, n)
	q := 0
	if c.have {
		q = c.order
	}
	// Residuals of predictors 1 and 2 and the sums of absolute
	// residuals of all three.
	var sumNone, sumPrev, sumLPC uint64
	for ch := range channels {
		o := ch * n
		a, b, l := refResidualSums(x[o:o+n], ed[o:o+n], el[o:o+n], q, &c.coef, c.shift)
		sumNone += a
		sumPrev += b
		sumLPC += l
	}
	pred, src := predictNone, x
	if sumPrev < sumNone {
		pred, src = predictPrev, ed
	}
	if q > 0 && sumLPC < min(sumNone, sumPrev) {
		pred, src = predictLPC, el
	}
	for i, v := range src {
		u[i] = zigzag(v)
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
	w := refWriter{bitWriter{buf: dst}}
	first, kf := 0, uint(0) // values coded with the channel's own parameter start at first
	if pred != predictNone {
		first = 1
		c.first = c.first[:0]
		for ch := range channels {
			c.first = append(c.first, u[ch*n])
		}
		k, _ := refRiceParam(c.first)
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
		k, cost := refRiceParam(v)
		if prevK >= 0 && k != prevK {
			side := kSideBits(k, prevK)
			for _, alt := range [3]int{prevK, prevK - 1, prevK + 1} {
				if alt < 0 || alt > maxRiceK || alt == k {
					continue
				}
				if ca := refRiceCost(v, uint(alt)); ca+kSideBits(alt, prevK) < cost+side {
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
func refTranspose(x []int32, samples []int16, channels, n int) {
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

// residualSums writes the residuals of predictors 1 (ed) and 2 (el, if q
// > 0) of one channel's samples x and returns the sums of absolute
// residuals of predictors 0, 1 and 2. The first residual is x[0].
func refResidualSums(x, ed, el []int32, q int, coef *[maxLPCOrder]int16, shift uint) (none, prev, lpc uint64) {
	n := len(x)
	if n == 0 {
		return
	}
	ed[0], el[0] = x[0], x[0]
	a0 := uint64(abs32(x[0]))
	none, prev, lpc = a0, a0, a0
	var d [maxLPCOrder]int64 // d[i] = x[t-1-i] - x[t-2-i]
	c0, c1, c2, c3 := int64(coef[0]), int64(coef[1]), int64(coef[2]), int64(coef[3])
	c4, c5, c6, c7 := int64(coef[4]), int64(coef[5]), int64(coef[6]), int64(coef[7])
	for t := 1; t < n; t++ {
		v := x[t]
		df := v - x[t-1]
		none += uint64(abs32(v))
		ad := uint64(abs32(df))
		prev += ad
		ed[t] = df
		if q > 0 {
			if t <= q {
				el[t] = df
				lpc += ad
			} else {
				s := c0*d[0] + c1*d[1] + c2*d[2] + c3*d[3]
				if q > 4 {
					s += c4*d[4] + c5*d[5] + c6*d[6] + c7*d[7]
				}
				p := min(max(int64(x[t-1])+s>>shift, math.MinInt16), math.MaxInt16)
				e := v - int32(p)
				el[t] = e
				lpc += uint64(abs32(e))
			}
		}
		d[7], d[6], d[5], d[4], d[3], d[2], d[1], d[0] = d[6], d[5], d[4], d[3], d[2], d[1], d[0], int64(df)
	}
	return none, prev, lpc
}

// riceParam returns the Rice parameter the Compressor chooses for u (see
// Compressor) and the bits it codes them in.
func refRiceParam(u []uint32) (int, int) {
	if len(u) == 0 {
		return 0, 0
	}
	var sum uint64
	for _, v := range u {
		sum += uint64(v)
	}
	mean := sum / uint64(len(u))
	k0 := 0
	if mean > 0 {
		k0 = min(bits.Len64(mean)-1, maxRiceK)
	}
	lo, hi := max(k0-1, 0), min(k0+1, maxRiceK)
	var costs [3]int
	refRiceCosts(u, uint(lo), hi-lo+1, &costs)
	best, bc := lo, costs[0]
	for i := 1; i <= hi-lo; i++ {
		if costs[i] < bc {
			best, bc = lo+i, costs[i]
		}
	}
	return best, bc
}

// riceCosts sets costs[i] to the bits of u coded with parameter k+i, for
// i < m (m <= 3).
func refRiceCosts(u []uint32, k uint, m int, costs *[3]int) {
	var s0, s1, s2, n int
	for _, v := range u {
		if v>>k >= riceEscape {
			// Rare: count exactly.
			for i := range m {
				costs[i] += riceLen(v, k+uint(i))
			}
			continue
		}
		s0 += int(v >> k)
		s1 += int(v >> (k + 1))
		s2 += int(v >> (k + 2))
		n++
	}
	costs[0] += s0 + n*(int(k)+1)
	costs[1] += s1 + n*(int(k)+2)
	costs[2] += s2 + n*(int(k)+3)
}

// riceCost returns the bits of u coded with Rice parameter k.
func refRiceCost(u []uint32, k uint) int {
	total := 0
	for _, v := range u {
		total += riceLen(v, k)
	}
	return total
}

// updateLPC adds the frame's autocorrelation of first differences (of
// every step-th channel of x, channel-major) to the decayed statistics
// and recomputes the coefficients.
func (c *refCompressor) updateLPC(x []int32, channels, n int) {
	q := c.order
	if q == 0 {
		return
	}
	step := (channels + maxLPCChannels - 1) / maxLPCChannels
	var r [maxLPCOrder + 1]int64
	for ch := 0; ch < channels; ch += step {
		y := x[ch*n : (ch+1)*n]
		for t := 1; t < n; t++ {
			d := int64(y[t]) - int64(y[t-1])
			for i := 0; i <= q && t-i >= 1; i++ {
				r[i] += d * (int64(y[t-i]) - int64(y[t-i-1]))
			}
		}
	}
	for i := 0; i <= q; i++ {
		c.acc[i] += r[i] - c.acc[i]>>3
	}
	c.have = levinson(c.acc[:q+1], c.coef[:q], &c.shift)
}

// TestCompressorMatchesRef feeds the same frames to a Compressor and to
// the reference encoder: every frame's bytes must be the same, over
// streams long enough for the LPC statistics to move, at every order,
// on noise, silence, rails and full-range white frames.
func TestCompressorMatchesRef(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	shapes := []struct{ channels, n int }{{1, 1}, {1, 2}, {3, 5}, {5, 40}, {32, 30}, {33, 30}, {16, 240}, {100, 7}, {1024, 30}, {2, 3000}}
	for _, shape := range shapes {
		for order := -1; order <= maxLPCOrder; order++ {
			c := NewCompressor(CompressConfig{Order: order})
			r := &refCompressor{order: c.order}
			for f := range 10 {
				s := testSignal(rng, shape.channels, shape.n, f%3 == 2)
				switch f {
				case 4:
					clear(s)
				case 7:
					for i := range s {
						s[i] = int16(rng.Uint32())
					}
				case 8:
					for i := range s {
						s[i] = int16(rng.IntN(3) - 1)
					}
				}
				got := c.appendPayload(nil, shape.channels, s)
				want := r.appendPayload(nil, shape.channels, s)
				if !slices.Equal(got, want) {
					t.Fatalf("%d x %d order %d frame %d: %d bytes, reference %d bytes, first difference at %d",
						shape.channels, shape.n, order, f, len(got), len(want), firstDiff(got, want))
				}
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// FuzzCompressorMatchesRef: arbitrary samples, as three frames in a row,
// encode to the reference's bytes.
func FuzzCompressorMatchesRef(f *testing.F) {
	f.Add(uint16(3), uint8(4), []byte{1, 2, 3, 4, 200, 100, 0, 0, 255, 255, 7, 0})
	f.Fuzz(func(t *testing.T, ch uint16, order uint8, raw []byte) {
		channels := int(ch%40) + 1
		n := len(raw) / 2 / channels
		if n == 0 || n > 2000 {
			return
		}
		s := make([]int16, channels*n)
		for i := range s {
			s[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		c := NewCompressor(CompressConfig{Order: int(order%10) - 1})
		r := &refCompressor{order: c.order}
		for range 3 {
			if got, want := c.appendPayload(nil, channels, s), r.appendPayload(nil, channels, s); !slices.Equal(got, want) {
				t.Fatalf("%d x %d: differs from the reference at byte %d", channels, n, firstDiff(got, want))
			}
			slices.Reverse(s)
		}
	})
}
