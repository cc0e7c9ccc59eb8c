package decode

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// DefaultLags is the default number of causal lags of the Wiener filter
// (10 bins: 200 ms at 20 ms bins), counting the current bin.
const DefaultLags = 10

// DefaultFolds is the default number of chronological cross-validation
// folds used to choose the ridge penalty.
const DefaultFolds = 5

// DefaultLambdas are the candidate ridge penalties, as multiples of the
// number of training bins (the z-scored design has unit diagonal per bin,
// so λ/n is a scale-free shrinkage). The best decade is refined by half a
// decade either side.
var DefaultLambdas = []float64{1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100}

// FitConfig configures Fit. The zero value fits a Wiener filter with
// DefaultLags lags and DefaultFolds folds.
type FitConfig struct {
	Kind Kind // Wiener (default) or Kalman

	// Wiener
	Lags    int       // causal lags counting the current bin (default DefaultLags)
	Lambdas []float64 // candidate penalties per training bin (default DefaultLambdas)
	Folds   int       // blocked chronological folds (default DefaultFolds)

	// Kalman
	State  string  // StateVelocity (default) or StatePositionVelocity
	Steady bool    // run with the steady-state gain
	Shrink float64 // shrinkage of Q toward its diagonal in [0,1]; 0 means units/(units+bins)
}

// MaxWienerFeatures bounds units × lags for a Wiener fit: the direct
// method keeps one features² matrix per cross-validation fold and costs
// O(bins·features² + features³); beyond this, use fewer lags or a Kalman
// filter (whose cost grows with units², not (units·lags)²).
const MaxWienerFeatures = 4096

// ErrTooFewBins reports a training set too short to fit.
var ErrTooFewBins = errors.New("decode: too few usable training bins")

// Fit fits a decoder on rows [0, trainEnd) of ds. Bins with a gap in
// their lag window or without behaviour are left out. The model's FitInfo
// records the split.
func Fit(ds *Dataset, trainEnd int, cfg FitConfig) (*Model, error) {
	if trainEnd <= 0 || trainEnd > ds.Len() {
		return nil, fmt.Errorf("decode: training part of %d bins out of %d", trainEnd, ds.Len())
	}
	b := ds.Bins
	nu := len(b.Keys)
	if nu == 0 {
		return nil, errors.New("decode: no units in the spikes")
	}
	m := &Model{
		Format:     Format,
		Version:    Version,
		Kind:       cfg.Kind,
		Grouping:   b.Grouping,
		Keys:       b.Keys,
		Rate:       b.Rate,
		BinSamples: b.Width,
		Outputs:    ds.Outputs,
		Fit: &FitInfo{
			Split:       float64(trainEnd) / float64(ds.Len()),
			StartSample: b.Start(0),
			SplitSample: b.Start(trainEnd),
			EndSample:   b.End(ds.Len() - 1),
		},
	}
	if m.Kind == "" {
		m.Kind = Wiener
	}
	if err := checkOutputs(ds, trainEnd); err != nil {
		return nil, err
	}
	m.Mean, m.Std = countStats(b, trainEnd)
	var err error
	switch m.Kind {
	case Wiener:
		err = fitWiener(m, ds, trainEnd, cfg)
	case Kalman:
		err = fitKalman(m, ds, trainEnd, cfg)
	default:
		return nil, fmt.Errorf("decode: kind %q, want %q or %q", cfg.Kind, Wiener, Kalman)
	}
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("decode: fitted model invalid: %w", err)
	}
	return m, nil
}

// checkOutputs refuses a training part in which an output never varies
// (nothing to decode, and R² undefined).
func checkOutputs(ds *Dataset, end int) error {
	no := len(ds.Outputs)
	for o := range no {
		first, varies, n := 0.0, false, 0
		for t := range end {
			if !ds.BehaviourObserved[t] {
				continue
			}
			v := ds.Behaviour[t*no+o]
			if n == 0 {
				first = v
			} else if v != first {
				varies = true
				break
			}
			n++
		}
		if !varies {
			return fmt.Errorf("decode: output %q is constant over the %d training bins with behaviour: nothing to decode", ds.Outputs[o], n)
		}
	}
	return nil
}

// countStats returns per-column mean and standard deviation of counts over
// the observed bins of rows [0, end); silent columns get std 1.
func countStats(b *Binned, end int) (mean, std []float64) {
	nu := len(b.Keys)
	mean = make([]float64, nu)
	std = make([]float64, nu)
	n := 0
	for i := range end {
		if !b.Observed[i] {
			continue
		}
		n++
		for j, c := range b.Row(i) {
			mean[j] += c
			std[j] += c * c
		}
	}
	for j := range nu {
		if n > 0 {
			mean[j] /= float64(n)
			v := std[j]/float64(n) - mean[j]*mean[j]
			if n > 1 {
				v *= float64(n) / float64(n-1)
			}
			std[j] = math.Sqrt(max(v, 0))
		}
		if !(std[j] > 1e-9) {
			std[j] = 1
		}
	}
	return mean, std
}

// usableRows returns the rows t in [0, end) with behaviour and with every
// bin t-lags+1..t observed.
func usableRows(ds *Dataset, end, lags int) []int {
	var rows []int
	run := 0 // observed bins ending at t
	for t := range end {
		if ds.Bins.Observed[t] {
			run++
		} else {
			run = 0
		}
		if run >= lags && ds.BehaviourObserved[t] {
			rows = append(rows, t)
		}
	}
	return rows
}

// ridgeStats are the sufficient statistics of a block of design rows.
type ridgeStats struct {
	n   float64
	g   *mat.SymDense // Σ x xᵀ
	sx  *mat.VecDense // Σ x
	sxy *mat.Dense    // Σ x yᵀ
	sy  []float64     // Σ y
	syy []float64     // Σ y²
}

func newRidgeStats(p, no int) *ridgeStats {
	return &ridgeStats{g: mat.NewSymDense(p, nil), sx: mat.NewVecDense(p, nil), sxy: mat.NewDense(p, no, nil), sy: make([]float64, no), syy: make([]float64, no)}
}

func (s *ridgeStats) add(o *ridgeStats, sign float64) {
	s.n += sign * o.n
	s.g.AddSym(s.g, scaledSym(o.g, sign))
	s.sx.AddScaledVec(s.sx, sign, o.sx)
	var t mat.Dense
	t.Scale(sign, o.sxy)
	s.sxy.Add(s.sxy, &t)
	for i := range s.sy {
		s.sy[i] += sign * o.sy[i]
		s.syy[i] += sign * o.syy[i]
	}
}

func scaledSym(a *mat.SymDense, f float64) *mat.SymDense {
	if f == 1 {
		return a
	}
	var s mat.SymDense
	s.ScaleSym(f, a)
	return &s
}

// zScored returns the z-scored counts of every bin (bins × units).
func zScored(m *Model, b *Binned) *mat.Dense {
	nu := len(b.Keys)
	z := mat.NewDense(b.Len(), nu, nil)
	for i := range b.Len() {
		dst := z.RawRowView(i)
		for j, c := range b.Row(i) {
			dst[j] = (c - m.Mean[j]) / m.Std[j]
		}
	}
	return z
}

// behaviourRows returns the behaviour of rows as a len(rows) × outputs matrix.
func behaviourRows(ds *Dataset, rows []int) *mat.Dense {
	no := len(ds.Outputs)
	y := mat.NewDense(len(rows), no, nil)
	for r, t := range rows {
		copy(y.RawRowView(r), ds.Behaviour[t*no:(t+1)*no])
	}
	return y
}

// lagStatsDense computes the statistics of rows (ascending) from the
// explicit lagged design X: G = XᵀX costs 2·rows·(units·lags)². It is the
// reference for lagStats.
func lagStatsDense(z *mat.Dense, ds *Dataset, rows []int, lags int) *ridgeStats {
	_, nu := z.Dims()
	p, no := lags*nu, len(ds.Outputs)
	x := mat.NewDense(len(rows), p, nil)
	for r, t := range rows {
		dst := x.RawRowView(r)
		for l := range lags {
			copy(dst[l*nu:(l+1)*nu], z.RawRowView(t-l))
		}
	}
	y := behaviourRows(ds, rows)
	s := newRidgeStats(p, no)
	s.n = float64(len(rows))
	// Dgemm is blocked and parallel; gonum's Dsyrk is not, and is several
	// times slower here despite half the flops.
	var g mat.Dense
	g.Mul(x.T(), x)
	s.g = mat.NewSymDense(p, g.RawMatrix().Data)
	s.sxy.Mul(x.T(), y)
	for r := range rows {
		s.sx.AddVec(s.sx, x.RowView(r))
	}
	s.addY(y)
	return s
}

func (s *ridgeStats) addY(y *mat.Dense) {
	r, no := y.Dims()
	for i := range r {
		for o := range no {
			v := y.At(i, o)
			s.sy[o] += v
			s.syy[o] += v * v
		}
	}
}

// lagStats computes the statistics of rows (ascending; every row's lag
// window observed) without forming the lagged design. The Gram matrix of
// lagged rows is block-Toeplitz up to the ends of each run of consecutive
// rows: for a run [a, b) and lags l1 ≤ l2 = l1+d,
//
//	G[l1,l2] = Σ_{t=a}^{b-1} z[t-l1]·z[t-l2]ᵀ
//	         = F_d − Σ_{u=a-L+1+d}^{a-l1-1} z[u]·z[u-d]ᵀ − Σ_{u=b-l1}^{b-1} z[u]·z[u-d]ᵀ
//
// with F_d = Σ_{u=a-L+1+d}^{b-1} z[u]·z[u-d]ᵀ, one units×units product
// per lag difference: 2·rows·units²·lags flops instead of
// 2·rows·units²·lags², plus small corrections per run. Blocks with many
// short runs (behaviour missing in every other bin, say) use the dense
// reference.
func lagStats(z *mat.Dense, ds *Dataset, rows []int, lags int) *ridgeStats {
	var runs [][2]int
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j] == rows[j-1]+1 {
			j++
		}
		runs = append(runs, [2]int{rows[i], rows[j-1] + 1})
		i = j
	}
	if lags == 1 || len(runs)*lags*lags > len(rows) {
		return lagStatsDense(z, ds, rows, lags)
	}
	_, nu := z.Dims()
	p, no := lags*nu, len(ds.Outputs)
	s := newRidgeStats(p, no)
	s.n = float64(len(rows))
	g := mat.NewDense(p, p, nil)
	var f, c mat.Dense
	acc := mat.NewDense(nu, nu, nil)
	L := lags
	for _, run := range runs {
		a, b := run[0], run[1]
		for d := 0; d < L; d++ {
			lo := a - (L - 1) + d
			f.Reset()
			f.Mul(z.Slice(lo, b, 0, nu).T(), z.Slice(lo-d, b-d, 0, nu))
			for l1 := 0; l1+d < L; l1++ {
				acc.Copy(&f)
				if h := a - l1; h > lo {
					c.Reset()
					c.Mul(z.Slice(lo, h, 0, nu).T(), z.Slice(lo-d, h-d, 0, nu))
					acc.Sub(acc, &c)
				}
				if l1 > 0 {
					c.Reset()
					c.Mul(z.Slice(b-l1, b, 0, nu).T(), z.Slice(b-l1-d, b-d, 0, nu))
					acc.Sub(acc, &c)
				}
				blk := g.Slice(l1*nu, (l1+1)*nu, (l1+d)*nu, (l1+d+1)*nu).(*mat.Dense)
				blk.Add(blk, acc)
			}
		}
		y := behaviourRows(ds, rowsRange(a, b))
		for l := range L {
			var xy mat.Dense
			xy.Mul(z.Slice(a-l, b-l, 0, nu).T(), y)
			sxy := s.sxy.Slice(l*nu, (l+1)*nu, 0, no).(*mat.Dense)
			sxy.Add(sxy, &xy)
			for t := a - l; t < b-l; t++ {
				row := z.RawRowView(t)
				for j, v := range row {
					s.sx.SetVec(l*nu+j, s.sx.AtVec(l*nu+j)+v)
				}
			}
		}
		s.addY(y)
	}
	// Only blocks on and above the diagonal were filled.
	sym := mat.NewSymDense(p, nil)
	for i := range p {
		for j := i; j < p; j++ {
			sym.SetSym(i, j, g.At(i, j))
		}
	}
	s.g = sym
	return s
}

func rowsRange(a, b int) []int {
	r := make([]int, b-a)
	for i := range r {
		r[i] = a + i
	}
	return r
}

// solveRidge returns the weights (p × no) and intercept for penalty lam
// on the statistics s (intercept unpenalised: the design is centred).
func solveRidge(s *ridgeStats, lam float64) (*mat.Dense, []float64, error) {
	p, no := s.sxy.Dims()
	a := mat.NewSymDense(p, nil)
	mean := mat.NewVecDense(p, nil)
	mean.ScaleVec(1/s.n, s.sx)
	// a = G - n·x̄x̄ᵀ + λI
	a.CopySym(s.g)
	a.SymRankOne(a, -s.n, mean)
	for i := range p {
		a.SetSym(i, i, a.At(i, i)+lam)
	}
	c := mat.NewDense(p, no, nil)
	c.Copy(s.sxy)
	ybar := make([]float64, no)
	for o := range no {
		ybar[o] = s.sy[o] / s.n
		for i := range p {
			c.Set(i, o, c.At(i, o)-s.n*mean.AtVec(i)*ybar[o])
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(a) {
		return nil, nil, fmt.Errorf("decode: ridge system not positive definite at λ=%g", lam)
	}
	w := mat.NewDense(p, no, nil)
	if err := ch.SolveTo(w, c); err != nil {
		var cond mat.Condition
		if !errors.As(err, &cond) {
			return nil, nil, err
		}
	}
	icpt := make([]float64, no)
	for o := range no {
		icpt[o] = ybar[o] - mat.Dot(mean, w.ColView(o))
	}
	return w, icpt, nil
}

// ridgeSSE returns, per output, the squared error and the total sum of
// squares (about the block's mean) of weights w on the block s.
func ridgeSSE(s *ridgeStats, w *mat.Dense, icpt []float64) (sse, sst []float64) {
	p, no := w.Dims()
	sse = make([]float64, no)
	sst = make([]float64, no)
	gw := mat.NewDense(p, no, nil)
	gw.Mul(s.g, w)
	for o := range no {
		b := icpt[o]
		wo := w.ColView(o)
		// Σ(y - b - xᵀw)² = Σ(y-b)² - 2wᵀΣx(y-b) + wᵀGw
		e := s.syy[o] - 2*b*s.sy[o] + s.n*b*b
		e -= 2 * (mat.Dot(wo, s.sxy.ColView(o)) - b*mat.Dot(wo, s.sx))
		e += mat.Dot(wo, gw.ColView(o))
		sse[o] = e
		sst[o] = s.syy[o] - s.sy[o]*s.sy[o]/s.n
	}
	return sse, sst
}

func fitWiener(m *Model, ds *Dataset, trainEnd int, cfg FitConfig) error {
	lags := cfg.Lags
	if lags == 0 {
		lags = DefaultLags
	}
	if lags < 1 {
		return fmt.Errorf("decode: lags %d, want >= 1", lags)
	}
	folds := cfg.Folds
	if folds == 0 {
		folds = DefaultFolds
	}
	if folds < 2 {
		return fmt.Errorf("decode: %d cross-validation folds, want >= 2", folds)
	}
	lambdas := cfg.Lambdas
	if len(lambdas) == 0 {
		lambdas = DefaultLambdas
	}
	m.Lags = lags
	nu, no := len(m.Keys), len(m.Outputs)
	p := lags * nu
	if p > MaxWienerFeatures {
		return fmt.Errorf("decode: wiener filter with %d %s × %d lags = %d features, more than %d: use fewer lags or the kalman filter",
			nu, m.Grouping.Columns(), lags, p, MaxWienerFeatures)
	}
	rows := usableRows(ds, trainEnd, lags)
	if len(rows) < 2*folds || len(rows) < 10 {
		return fmt.Errorf("%w: %d bins with full lag history and behaviour", ErrTooFewBins, len(rows))
	}
	// Per-fold sufficient statistics, one block of rows at a time.
	z := zScored(m, ds.Bins)
	blocks := make([]*ridgeStats, folds)
	total := newRidgeStats(p, no)
	for f := range folds {
		lo, hi := f*len(rows)/folds, (f+1)*len(rows)/folds
		s := lagStats(z, ds, rows[lo:hi], lags)
		blocks[f] = s
		total.add(s, 1)
	}
	// Cross-validate the candidates (one training Gram per fold, reused
	// for every λ), then refine around the best decade.
	cvScores := func(alphas []float64) []float64 {
		sse := make([][]float64, len(alphas))
		sst := make([][]float64, len(alphas))
		for i := range alphas {
			sse[i] = make([]float64, no)
			sst[i] = make([]float64, no)
		}
		tr := newRidgeStats(p, no)
		for f := range folds {
			tr.g.CopySym(total.g)
			tr.sx.CopyVec(total.sx)
			tr.sxy.Copy(total.sxy)
			copy(tr.sy, total.sy)
			copy(tr.syy, total.syy)
			tr.n = total.n
			tr.add(blocks[f], -1)
			for i, alpha := range alphas {
				w, icpt, err := solveRidge(tr, alpha*tr.n)
				if err != nil {
					sse[i][0] = math.Inf(1)
					continue
				}
				e, t := ridgeSSE(blocks[f], w, icpt)
				for o := range no {
					sse[i][o] += e[o]
					sst[i][o] += t[o]
				}
			}
		}
		r2 := make([]float64, len(alphas))
		for i := range alphas {
			for o := range no {
				r2[i] += (1 - sse[i][o]/sst[i][o]) / float64(no)
			}
			if math.IsNaN(r2[i]) {
				r2[i] = math.Inf(-1)
			}
		}
		return r2
	}
	info := m.Fit
	info.Folds = folds
	best, bestR2 := 0.0, math.Inf(-1)
	try := func(alphas []float64) {
		for i, r2 := range cvScores(alphas) {
			info.Lambdas = append(info.Lambdas, alphas[i])
			info.CVR2 = append(info.CVR2, r2)
			if r2 > bestR2 {
				best, bestR2 = alphas[i], r2
			}
		}
	}
	try(lambdas)
	if len(cfg.Lambdas) == 0 && !math.IsInf(bestR2, -1) {
		try([]float64{best / math.Sqrt(10), best * math.Sqrt(10)})
	}
	if math.IsInf(bestR2, -1) {
		return errors.New("decode: ridge fit failed for every λ")
	}
	w, icpt, err := solveRidge(total, best*total.n)
	if err != nil {
		return err
	}
	info.TrainBins = int(total.n)
	wp := &WienerParams{Lambda: best * total.n, Intercept: icpt, Weights: make([][][]float64, lags)}
	for l := range lags {
		wp.Weights[l] = make([][]float64, nu)
		for j := range nu {
			row := make([]float64, no)
			for o := range no {
				row[o] = w.At(l*nu+j, o)
			}
			wp.Weights[l][j] = row
		}
	}
	m.Wiener = wp
	return nil
}
