package quality

import (
	"math"
)

// amplitudeCutoff is Hill et al.'s estimate of the fraction of a unit's
// spikes lost below the detection threshold, as SpikeInterface computes it
// (misc_metrics.amplitude_cutoff): the amplitudes (negated when their
// median is negative, so that the lost tail is the low one) are binned in
// CutoffBins bins between their minimum and maximum, the histogram is
// smoothed with a Gaussian of CutoffSmoothing bins, and the spikes
// "missing" are the smoothed counts above the last bin whose count is at
// least that of the first bin (the distribution is assumed symmetric).
// NaN with fewer than CutoffBins·CutoffMinRatio spikes. sorted is amps in
// increasing order; negate says the median is negative.
func (p Params) amplitudeCutoff(amps, sorted []float32, negate bool) float64 {
	n := len(amps)
	if float64(n)/float64(p.CutoffBins) < p.CutoffMinRatio || n == 0 {
		return math.NaN()
	}
	lo, hi := sorted[0], sorted[n-1]
	if negate {
		lo, hi = -hi, -lo
	}
	h := make([]float64, p.CutoffBins)
	hb := newHistBins(lo, hi, p.CutoffBins)
	for _, a := range amps {
		if negate {
			a = -a
		}
		h[hb.index(a)]++
	}
	return cutoffFromHistogram(h, n, gaussianKernel(p.CutoffSmoothing), nil)
}

// cutoffFromHistogram finishes amplitudeCutoff from the amplitude
// histogram h of n spikes (counts; whole numbers but for the Tracker's),
// smoothed with kernel w (gaussianKernel) into pdf (reused if large
// enough).
func cutoffFromHistogram(h []float64, n int, w []float64, pdf []int64) float64 {
	pdf = smooth(pdf, h, w)
	cut := pdf[0]
	g := 0
	for i, v := range pdf {
		if v >= cut {
			g = i
		}
	}
	var missed int64
	for _, v := range pdf[g+1:] {
		missed += v
	}
	return min(float64(missed)/float64(int64(n)+missed), 0.5)
}

// histBins are NumPy's equal-width histogram bins over [lo, hi]
// (numpy.histogram(a, bins) with float32 data), reproduced to the last
// rounding: the edges are computed in float64 and stored as float32, and
// a value's bin is found in float32 arithmetic and corrected against the
// edges, so that values on an edge land where NumPy puts them.
type histBins struct {
	first float32
	norm  float32
	edges []float32
	nbins int
}

func newHistBins(lo, hi float32, nbins int) histBins {
	first, last := float64(lo), float64(hi)
	var norm float64
	if lo == hi {
		// NumPy widens an empty range by half a unit on each side.
		first, last = first-0.5, last+0.5
		norm = float64(nbins) / (last - first)
	} else {
		norm = float64(nbins) / float64(hi-lo) // float32 difference, float64 quotient
	}
	edges := make([]float32, nbins+1)
	step := (last - first) / float64(nbins)
	for i := range edges {
		edges[i] = float32(float64(i)*step + first)
	}
	edges[nbins] = float32(last)
	return histBins{first: float32(first), norm: float32(norm), edges: edges, nbins: nbins}
}

// index returns the bin of v, which must lie within the edges.
func (b histBins) index(v float32) int {
	d := v - b.first
	f := d * b.norm
	i := int(f)
	if i >= b.nbins {
		i = b.nbins - 1
	}
	if i < 0 {
		i = 0
	}
	if v < b.edges[i] {
		i--
	} else if i != b.nbins-1 && v >= b.edges[i+1] {
		i++
	}
	return i
}

// smooth is scipy.ndimage.gaussian_filter1d(h, sigma, mode="nearest"),
// w = gaussianKernel(sigma), into dst, for
// an integer histogram: the kernel has radius int(4·sigma + 0.5), the
// edges are extended with the first and last counts, and the result is
// truncated to integers because SciPy keeps the input's integer type.
// The kernel and the sums are formed in the order NumPy and SciPy use
// (pairwise kernel sum; symmetric correlation from the outside in), so
// that the truncation falls the same way.
func smooth(dst []int64, h []float64, w []float64) []int64 {
	r := len(w) / 2
	at := func(i int) float64 {
		return h[min(max(i, 0), len(h)-1)]
	}
	out := dst[:0]
	if cap(out) < len(h) {
		out = make([]int64, len(h))
	}
	out = out[:len(h)]
	for i := range h {
		acc := at(i) * w[r]
		for j := -r; j < 0; j++ {
			acc += (at(i+j) + at(i-j)) * w[r+j]
		}
		out[i] = int64(acc) // C's conversion: truncation toward zero
	}
	return out
}

// gaussianKernel is SciPy's normalised Gaussian kernel of standard
// deviation sigma and radius int(4·sigma + 0.5).
func gaussianKernel(sigma float64) []float64 {
	r := int(4*sigma + 0.5)
	w := make([]float64, 2*r+1)
	c := -0.5 / (sigma * sigma)
	for i := range w {
		x := float64((i - r) * (i - r))
		w[i] = math.Exp(c * x)
	}
	sum := pairwiseSum(w)
	for i := range w {
		w[i] /= sum
	}
	return w
}

// pairwiseSum is NumPy's summation of a float64 array (numpy.add.reduce):
// eight partial sums over blocks of up to 128 elements, combined in a
// tree; larger arrays are split in halves (on a multiple of 8).
func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		s := 0.0 // NumPy starts from -0.0; equal for these sums
		for _, v := range a {
			s += v
		}
		return s
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range r {
				r[j] += a[i+j]
			}
		}
		s := (r[0] + r[1]) + (r[2] + r[3]) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += a[i]
		}
		return s
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
	}
}
