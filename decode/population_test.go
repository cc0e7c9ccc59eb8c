package decode

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

// population is a cosine-tuned Poisson population driven by a 2-D
// velocity, generated in the test for exact control: the rate of unit i is
// λ_i = Base + Mod·(v·d_i), piecewise constant over each bin, with
// preferred directions d_i evenly spaced on the circle and v an AR(1)
// process per axis with unit stationary variance.
type population struct {
	Units   int
	Base    float64 // baseline rate b, Hz
	Mod     float64 // modulation depth m, Hz per unit velocity
	Rate    float64 // device sample rate
	Width   uint64  // bin width in samples
	Bins    int
	Rho     float64 // AR(1) coefficient of the velocity per bin (0: white)
	Seed    uint64
	FirstID int32 // unit ids are FirstID, FirstID+1, …

	rectified int // bins×units whose rate was clipped at 0
}

func (p *population) binSeconds() float64 { return float64(p.Width) / p.Rate }

// bound is the R² per axis of the optimal instantaneous linear estimator:
// S/(1+S) with S = N·Δ·m²/(2b).
func (p *population) bound() float64 {
	s := float64(p.Units) * p.binSeconds() * p.Mod * p.Mod / (2 * p.Base)
	return s / (1 + s)
}

// generate returns the spikes (sorted by sample; unit ids from FirstID,
// channel = unit index) and the behaviour at one row per bin, stamped at
// the bin's first sample.
func (p *population) generate() ([]sort.Spike, *Behaviour) {
	r := rand.New(rand.NewPCG(p.Seed, 0x5eed))
	dirs := make([][2]float64, p.Units)
	for i := range dirs {
		a := 2 * math.Pi * float64(i) / float64(p.Units)
		dirs[i] = [2]float64{math.Cos(a), math.Sin(a)}
	}
	beh := &Behaviour{Names: []string{"vx", "vy"}}
	var spikes []sort.Spike
	innov := math.Sqrt(1 - p.Rho*p.Rho)
	v := [2]float64{r.NormFloat64(), r.NormFloat64()}
	dt := p.binSeconds()
	for k := range p.Bins {
		if k > 0 {
			v[0] = p.Rho*v[0] + innov*r.NormFloat64()
			v[1] = p.Rho*v[1] + innov*r.NormFloat64()
		}
		start := uint64(k) * p.Width
		if err := beh.Append(start, v[:]); err != nil {
			panic(err)
		}
		for i, d := range dirs {
			lam := p.Base + p.Mod*(v[0]*d[0]+v[1]*d[1])
			if lam < 0 {
				lam = 0
				p.rectified++
			}
			n := poisson(r, lam*dt)
			for range n {
				spikes = append(spikes, sort.Spike{
					Sample:  start + uint64(r.Float64()*float64(p.Width)),
					Channel: int32(i),
					Unit:    p.FirstID + int32(i),
				})
			}
		}
	}
	slices.SortFunc(spikes, func(a, b sort.Spike) int {
		if a.Sample != b.Sample {
			if a.Sample < b.Sample {
				return -1
			}
			return 1
		}
		return int(a.Unit - b.Unit)
	})
	return spikes, beh
}

// poisson draws from Poisson(mean) by inversion (mean is small here).
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	l := math.Exp(-mean)
	k, p := 0, r.Float64()
	for cum := l; p > cum; {
		k++
		l *= mean / float64(k)
		cum += l
		if k > 1000 {
			break
		}
	}
	return k
}

// dataset bins the population's output by unit.
func (p *population) dataset(t *testing.T, spikes []sort.Spike, beh *Behaviour) *Dataset {
	t.Helper()
	ds, err := NewDataset(spikes, beh, ByUnit, nil, p.Rate, p.Width, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestPoissonGenerator(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, mean := range []float64{0.05, 0.4, 3} {
		var s, s2 float64
		const n = 200000
		for range n {
			k := float64(poisson(r, mean))
			s += k
			s2 += k * k
		}
		m := s / n
		v := s2/n - m*m
		if math.Abs(m-mean) > 5*math.Sqrt(mean/n) || math.Abs(v-mean) > 0.03*mean+0.002 {
			t.Errorf("Poisson(%g): mean %g variance %g", mean, m, v)
		}
	}
}
