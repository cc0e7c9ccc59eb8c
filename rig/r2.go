package rig

import "math"

// r2Window is the span of device time over which the live decoder R² is
// computed.
const r2Window = 30.0 // seconds

// r2Tracker scores live decoder estimates against the behaviour (the
// simulator's truth or a measured behaviour stream): each estimate is
// paired with the mean behaviour over its bin, and R² = 1 − SSres/SStot is
// computed per output over the last r2Window seconds of pairs. It belongs
// to the pipeline loop; R2 is read through pipeline.decoderR2.
type r2Tracker struct {
	outputs int
	bs      []uint64    // device samples of the behaviour not yet paired, in order
	bv      []float64   // their values, outputs per sample
	est     [][]float64 // ring of estimates, per pair
	truth   [][]float64 // ring of mean behaviour, per pair
	n, head int         // pairs held, next slot
	sum     []float64   // scratch: bin sums of the behaviour
}

func newR2Tracker(outputs int, pairs int) *r2Tracker {
	t := &r2Tracker{outputs: outputs, est: make([][]float64, pairs), truth: make([][]float64, pairs), sum: make([]float64, outputs)}
	for i := range pairs {
		t.est[i] = make([]float64, outputs)
		t.truth[i] = make([]float64, outputs)
	}
	return t
}

// addBehaviour takes one behaviour sample.
func (t *r2Tracker) addBehaviour(sample uint64, values []float64) {
	if len(values) != t.outputs {
		return
	}
	if n := len(t.bs); n > 0 && sample <= t.bs[n-1] {
		t.drop(n) // the device counter went back: start over
	}
	if len(t.bs) >= 1<<16 {
		// No estimate has consumed the behaviour for a long time (no
		// decoder yet): keep the newest half.
		t.drop(len(t.bs) / 2)
	}
	t.bs = append(t.bs, sample)
	t.bv = append(t.bv, values...)
}

// drop forgets the oldest n behaviour samples.
func (t *r2Tracker) drop(n int) {
	t.bs = t.bs[:copy(t.bs, t.bs[n:])]
	t.bv = t.bv[:copy(t.bv, t.bv[n*t.outputs:])]
}

// addEstimate pairs an estimate of the bin [end−width, end) with the mean
// behaviour in it; degraded estimates and bins without behaviour are
// skipped.
func (t *r2Tracker) addEstimate(end, width uint64, values []float64, degraded bool) {
	start := end - min(end, width)
	i := 0
	for i < len(t.bs) && t.bs[i] < start {
		i++
	}
	clear(t.sum)
	k := 0
	for ; i < len(t.bs) && t.bs[i] < end; i++ {
		for o, v := range t.bv[i*t.outputs:][:t.outputs] {
			t.sum[o] += v
		}
		k++
	}
	t.drop(i) // behaviour before this bin's end is never needed again
	if k == 0 || degraded || len(values) != t.outputs {
		return
	}
	e, tr := t.est[t.head], t.truth[t.head]
	for o := range t.outputs {
		e[o], tr[o] = values[o], t.sum[o]/float64(k)
	}
	t.head = (t.head + 1) % len(t.est)
	t.n = min(t.n+1, len(t.est))
}

// r2 returns R² per output over the pairs held (NaN without enough pairs
// or without variance in the behaviour).
func (t *r2Tracker) r2(dst []float64) []float64 {
	dst = dst[:0]
	for o := range t.outputs {
		if t.n < 10 {
			dst = append(dst, math.NaN())
			continue
		}
		var mean float64
		for i := range t.n {
			mean += t.truth[i][o]
		}
		mean /= float64(t.n)
		var res, tot float64
		for i := range t.n {
			d := t.est[i][o] - t.truth[i][o]
			res += d * d
			m := t.truth[i][o] - mean
			tot += m * m
		}
		if tot == 0 {
			dst = append(dst, math.NaN())
			continue
		}
		dst = append(dst, 1-res/tot)
	}
	return dst
}
