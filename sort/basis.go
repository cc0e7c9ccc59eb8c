package sort

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// isoDims is the dimension of the subspace in which learning with
// geometry compares clusters (isoSplit): room for the mean and the
// derivative of the few units of a neighbourhood, few enough that two
// pieces of one unit do not differ on noise.
const isoDims = 12

// principalBasis returns the k leading principal axes of the rows of x
// (centred), as k orthonormal rows, by subspace iteration (a few passes of
// x, so it costs n·dim·k per pass rather than a full decomposition); nil
// when x has no more than k rows or dimensions.
func principalBasis(x [][]float64, k int, rng *rand.Rand) [][]float64 {
	n := len(x)
	if n <= k || len(x[0]) <= k {
		return nil
	}
	dim := len(x[0])
	mean := make([]float64, dim)
	for _, r := range x {
		for t, v := range r {
			mean[t] += v
		}
	}
	for t := range mean {
		mean[t] /= float64(n)
	}
	q := mat.NewDense(dim, k, nil)
	for i := range dim {
		for j := range k {
			q.Set(i, j, rng.NormFloat64())
		}
	}
	orth := func(z *mat.Dense) *mat.Dense {
		// Modified Gram-Schmidt on the k columns (a full QR would form a
		// dim × dim Q).
		cols := make([][]float64, k)
		for j := range k {
			c := mat.Col(nil, j, z)
			for _, p := range cols[:j] {
				dot := dmDot(c, p)
				for t := range c {
					c[t] -= dot * p[t]
				}
			}
			norm := math.Sqrt(dmDot(c, c))
			if norm == 0 {
				c[j%dim] = 1
				norm = 1
			}
			for t := range c {
				c[t] /= norm
			}
			cols[j] = c
		}
		out := mat.NewDense(dim, k, nil)
		for j, c := range cols {
			out.SetCol(j, c)
		}
		return out
	}
	q = orth(q)
	y := make([]float64, k)
	for range 8 {
		z := mat.NewDense(dim, k, nil)
		zr := z.RawMatrix()
		qr := q.RawMatrix()
		for _, r := range x {
			// y = (r - mean)·Q, then z += (r - mean) ⊗ y.
			clear(y)
			for t, v := range r {
				c := v - mean[t]
				row := qr.Data[t*qr.Stride : t*qr.Stride+k]
				for j, qv := range row {
					y[j] += c * qv
				}
			}
			for t, v := range r {
				c := v - mean[t]
				row := zr.Data[t*zr.Stride : t*zr.Stride+k]
				for j, yv := range y {
					row[j] += c * yv
				}
			}
		}
		q = orth(z)
	}
	out := make([][]float64, k)
	for j := range k {
		out[j] = mat.Col(nil, j, q)
	}
	return out
}

// inBasis returns the coordinates of v in basis.
func inBasis(basis [][]float64, v []float64) []float64 {
	out := make([]float64, len(basis))
	for j, b := range basis {
		out[j] = dmDot(b, v)
	}
	return out
}

// fromBasis returns the vector of coordinates c in basis.
func fromBasis(basis [][]float64, c []float64) []float64 {
	out := make([]float64, len(basis[0]))
	for j, b := range basis {
		for t, v := range b {
			out[t] += c[j] * v
		}
	}
	return out
}

// principalAxes returns X with its columns centred on their means and the
// principal directions of its rows (the columns of vecs, by decreasing
// variance): what gonum's stat.PC gives, bit for bit — the same centring
// and the same SVD's right singular vectors — without the left singular
// vectors PC also computes and learning never uses (about half of the
// decomposition's time on a thousand snippets).
func principalAxes(X *mat.Dense) (centred, vecs *mat.Dense, ok bool) {
	n, d := X.Dims()
	centred = mat.NewDense(n, d, nil)
	col := make([]float64, n)
	for j := range d {
		mat.Col(col, j, X)
		m := stat.Mean(col, nil)
		for i := range col {
			col[i] -= m
		}
		centred.SetCol(j, col)
	}
	var svd mat.SVD
	if !svd.Factorize(centred, mat.SVDThinV) {
		return nil, nil, false
	}
	vecs = &mat.Dense{}
	svd.VTo(vecs)
	return centred, vecs, true
}
