package device

import (
	"errors"
	"fmt"
	"io"
	"math"

	"gonum.org/v1/gonum/dsp/fourier"
)

// ErrLayout is wrapped by the error of OpenRaw when a raw file's samples
// do not look interleaved with the channel count it was given.
var ErrLayout = errors.New("samples do not fit the channel count")

// Layout check. A raw file carries no channel count: a wrong one (a
// 3-channel view of a 16-channel file whose size happens to be a multiple
// of 6) reads without error and sorts garbage. But a channel's sample is
// far closer to the same channel's previous sample (LFP, DC offsets, the
// amplifier's band limit) than to another channel's. So in the
// interleaved stream x, the mean squared difference of samples P apart,
// D(P) = mean((x[i+P]-x[i])²), is smallest at P = the true channel count.
// OpenRaw computes D(P) for every P up to MaxChannels over the first
// layoutValues values (or layoutPerChan samples per channel; one FFT,
// about 30 ms) and refuses the file when samples C
// apart, C the channel count given, differ more than layoutRatio times as
// much as at the best lag. Data without such structure (white noise,
// zeros) pass: the check refuses only what the data contradict. It does
// not catch a count that is a multiple of the true one (32 for 16), nor
// channels so alike that they differ less than a channel does in time.
const (
	layoutValues   = 1 << 17 // int16 values examined (256 KiB), more for many channels
	layoutPerChan  = 64      // samples per channel needed for the check
	layoutRatio    = 4       // D(C) / min D(P) beyond which the count is refused
	layoutMinValue = 4096    // fewer values: no check
)

// checkLayout reads the start of the samples of f (at header, size bytes
// of samples) and refuses a channel count the data contradict.
func checkLayout(f io.ReaderAt, name string, header, size int64, channels int) error {
	n := int(min(size/2, int64(max(layoutValues, 2*layoutPerChan*channels))))
	if n < layoutMinValue || n < layoutPerChan*channels {
		return nil
	}
	buf := make([]byte, 2*n)
	if _, err := f.ReadAt(buf, header); err != nil {
		return nil // the reads that follow report it
	}
	x := make([]float64, n)
	for i := range n {
		x[i] = float64(int16(uint16(buf[2*i]) | uint16(buf[2*i+1])<<8))
	}
	maxLag := min(MaxChannels, n/layoutPerChan)
	d, total := structureFunction(x, maxLag)
	if !(total > 0) {
		return nil // constant data: nothing to say
	}
	best, at := math.Inf(1), 0
	for p := 1; p <= maxLag; p++ {
		if d[p] < best {
			best, at = d[p], p
		}
	}
	claimed := d[channels]
	eps := 1e-9 * total
	if claimed > layoutRatio*best+eps {
		return &FrameError{Name: name, Offset: header,
			Reason: fmt.Sprintf("the data do not look like %d interleaved channels: samples %d apart (one channel's consecutive samples, if that count were right) differ %.1f times as much as samples %d apart: is the channel count %d? (--skip-layout-check, RawConfig.SkipLayoutCheck, reads it anyway)",
				channels, channels, claimed/max(best, eps), at, at),
			Err: ErrLayout}
	}
	return nil
}

// structureFunction returns D(P) = mean over i of (x[i+P]-x[i])² for P in
// 0..maxLag, computed with one FFT (the autocorrelation, by the
// Wiener-Khinchin theorem) and prefix sums, and the variance of x.
func structureFunction(x []float64, maxLag int) ([]float64, float64) {
	n := len(x)
	z := make([]float64, 2*nextPow2(n)) // zero-padded: no circular wrap
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(n)
	sq := make([]float64, n+1)
	for i, v := range x {
		z[i] = v - mean
		sq[i+1] = sq[i] + z[i]*z[i]
	}
	fft := fourier.NewFFT(len(z))
	c := fft.Coefficients(nil, z)
	for i, v := range c {
		c[i] = complex(real(v)*real(v)+imag(v)*imag(v), 0)
	}
	r := fft.Sequence(nil, c)
	scale := 1 / float64(len(z)) // the inverse transform is not normalised
	d := make([]float64, maxLag+1)
	for p := 1; p <= maxLag; p++ {
		// Σ_{i<n-p} z[i]² + z[i+p]² - 2 z[i] z[i+p]
		d[p] = (sq[n-p] + (sq[n] - sq[p]) - 2*r[p]*scale) / float64(n-p)
	}
	return d, sq[n] / float64(n)
}

func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
