package device

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// testSignal returns n samples of channels channels (time-major) of a
// neural-like signal: a DC offset per channel, a slow common oscillation
// (LFP), white noise and occasional spikes; extreme adds full-scale
// steps and rail-to-rail jumps.
func testSignal(rng *rand.Rand, channels, n int, extreme bool) []int16 {
	s := make([]int16, channels*n)
	dc := make([]float64, channels)
	for c := range dc {
		dc[c] = rng.NormFloat64() * 1500
	}
	phase := rng.Float64() * 2 * math.Pi
	for t := range n {
		lfp := 600 * math.Sin(phase+float64(t)*2*math.Pi*8/30000)
		for c := range channels {
			v := dc[c] + lfp + rng.NormFloat64()*40
			if rng.IntN(3000) == 0 {
				v -= 800
			}
			if extreme && rng.IntN(50) == 0 {
				v = float64([]int{-32768, 32767, 0}[rng.IntN(3)])
			}
			s[t*channels+c] = int16(max(min(math.Round(v), 32767), -32768))
		}
	}
	return s
}

func TestCompressRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name        string
		channels, n int
		order       int
		extreme     bool
	}{
		{"1x1", 1, 1, 0, false},
		{"1x2", 1, 2, 0, false},
		{"3x5", 3, 5, 0, false},
		{"32x30", 32, 30, 0, false},
		{"32x30 order8", 32, 30, 8, false},
		{"32x30 no lpc", 32, 30, -1, false},
		{"16x300", 16, 300, 0, false},
		{"64x32 extreme", 64, 32, 0, true},
		{"1024x30", 1024, 30, 0, false},
		{"2x4096 extreme", 2, 4096, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCompressor(CompressConfig{Order: tc.order})
			var stream []byte
			var frames [][]int16
			for f := range 12 {
				s := testSignal(rng, tc.channels, tc.n, tc.extreme)
				if f == 5 {
					clear(s) // silence
				}
				if f == 6 {
					for i := range s {
						s[i] = int16(rng.Uint32()) // white over the full range
					}
				}
				frames = append(frames, s)
				stream = c.AppendCompressed(stream, uint64(1000+f*tc.n), 30000, 0.195, tc.channels, s, uint16(f&1))
			}
			d := NewDecoder(bytes.NewReader(stream))
			for f, want := range frames {
				fr, err := d.Next()
				if err != nil {
					t.Fatalf("frame %d: %v", f, err)
				}
				if fr.Type != FrameCompressed || fr.Channels != tc.channels || fr.Len() != tc.n || fr.Counter != uint64(1000+f*tc.n) || fr.Flags != uint16(f&1) {
					t.Fatalf("frame %d: %+v", f, fr)
				}
				if !slices.Equal(fr.Samples, want) {
					t.Fatalf("frame %d does not round-trip", f)
				}
			}
			if _, err := d.Next(); err != io.EOF {
				t.Fatalf("after the frames: %v", err)
			}
			if st := d.Stats(); st.BadFrames+st.CRCErrors+st.SkippedBytes+st.Gaps != 0 || st.Frames != 12 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestCompressDamage changes payload bytes of compressed frames and
// re-seals their CRCs: every damaged frame either decodes to some
// samples or is counted as a bad frame, never a panic.
func TestCompressDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := NewCompressor(CompressConfig{})
	s := testSignal(rng, 8, 30, false)
	c.AppendCompressed(nil, 0, 30000, 0.195, 8, s, 0)           // the first frame primes the LPC statistics
	frame := c.AppendCompressed(nil, 30, 30000, 0.195, 8, s, 0) // with LPC statistics
	for i := 0; i < 2000; i++ {
		b := bytes.Clone(frame)
		for range 1 + rng.IntN(3) {
			b[HeaderSize+rng.IntN(len(b)-FrameOverhead)] ^= byte(1 + rng.IntN(255))
		}
		if rng.IntN(4) == 0 { // cut or grow the payload
			p := b[HeaderSize : len(b)-TrailerSize]
			p = p[:rng.IntN(len(p))]
			b = append(append(b[:HeaderSize:HeaderSize], p...), 0, 0, 0, 0)
			putHeaderV(b, ProtocolVersion2, FrameCompressed, 0, len(p), 8, 30, 30000, 0.195, 30)
		}
		b = reseal(b)
		d := NewDecoder(bytes.NewReader(b))
		fr, err := d.Next()
		switch {
		case err == nil:
			if len(fr.Samples) != 8*30 {
				t.Fatalf("damaged frame decoded to %d samples", len(fr.Samples))
			}
		case err == io.EOF:
			if d.Stats().BadFrames != 1 {
				t.Fatalf("damaged frame: %+v", d.Stats())
			}
		default:
			t.Fatal(err)
		}
	}
}

func TestLevinsonKnownFilter(t *testing.T) {
	// First differences of an AR(1) process d[t] = 0.8 d[t-1] + e: the
	// predictor of order 2 is (0.8, 0).
	rng := rand.New(rand.NewPCG(7, 8))
	var r [3]int64
	d := make([]int64, 200000)
	for i := 1; i < len(d); i++ {
		d[i] = int64(math.Round(0.8*float64(d[i-1]) + 100*rng.NormFloat64()))
	}
	for lag := range r {
		for i := lag; i < len(d); i++ {
			r[lag] += d[i] * d[i-lag]
		}
	}
	var coef [2]int16
	var shift uint
	if !levinson(r[:], coef[:], &shift) {
		t.Fatal("levinson failed")
	}
	c1 := float64(coef[0]) / float64(int(1)<<shift)
	c2 := float64(coef[1]) / float64(int(1)<<shift)
	if math.Abs(c1-0.8) > 0.01 || math.Abs(c2) > 0.01 || shift != 14 {
		t.Fatalf("coefficients %v %v (shift %d), want 0.8 0", c1, c2, shift)
	}
}

func TestBitStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var w bitWriter
	type item struct {
		v uint32
		k uint
	}
	var items []item
	for range 5000 {
		k := uint(rng.IntN(maxRiceK + 1))
		v := uint32(rng.IntN(1 << escapeBits))
		if rng.IntN(2) == 0 {
			v = uint32(rng.IntN(4 << k))
		}
		items = append(items, item{v, k})
		w.rice(v, k)
	}
	bits := w.bits
	b := w.flush()
	r := newBitReader(b)
	for i, it := range items {
		if got := r.rice(it.k); got != it.v {
			t.Fatalf("item %d: %d, want %d", i, got, it.v)
		}
	}
	if r.consumed() != bits {
		t.Fatalf("consumed %d bits, wrote %d", r.consumed(), bits)
	}
	if err := r.end(); err != nil {
		t.Fatal(err)
	}
}
