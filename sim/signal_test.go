package sim

import (
	"context"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/spikeline/spikeline/dsp"
)

// bandpass filters one channel of time-major data (in µV) with the
// sorter's default band-pass and drops the first settle samples.
func bandpass(t testing.TB, data []int16, C, ch int, gain, rate float64, settle int) []float64 {
	t.Helper()
	sec, err := dsp.Butterworth(3, 300, 6000, rate)
	if err != nil {
		t.Fatal(err)
	}
	n := len(data) / C
	x := make([]float64, n)
	for i := range x {
		x[i] = float64(data[i*C+ch]) * gain
	}
	filterSOS(sec, make([]float64, 2*len(sec)), x)
	return x[settle:]
}

func rms(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s / float64(len(x)))
}

func madSigma(x []float64) float64 {
	a := make([]float64, len(x))
	for i, v := range x {
		a[i] = math.Abs(v)
	}
	slices.Sort(a)
	return a[len(a)/2] / 0.6745
}

func TestNoiseInBand(t *testing.T) {
	// Everything on but units and artifacts: LFP, mains and DC must not
	// leak into the spike band, and the band noise must be as reported.
	for _, rate := range []float64{30000, 20000} {
		cfg := Config{Channels: 8, Seed: 3, Rate: rate, MaxUnits: -1, NoArtifacts: true, Duration: uint64(4 * rate)}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		data, spikes, _ := collect(t, s)
		if len(spikes) != 0 {
			t.Fatalf("%d spikes with no units", len(spikes))
		}
		noise := s.NoiseUV()
		var mean float64
		for c := range noise {
			x := bandpass(t, data, cfg.Channels, c, s.Config().Gain, rate, int(0.2*rate))
			r, m := rms(x), madSigma(x)
			mean += noise[c] / float64(len(noise))
			if math.Abs(r/noise[c]-1) > 0.05 {
				t.Errorf("%g Hz channel %d: band rms %.3f µV, reported %.3f", rate, c, r, noise[c])
			}
			if math.Abs(m/noise[c]-1) > 0.1 {
				t.Errorf("%g Hz channel %d: band MAD/0.6745 %.3f µV, reported %.3f", rate, c, m, noise[c])
			}
			// The broadband signal is much larger (LFP, 1/f, mains).
			var bb []float64
			for i := c; i < len(data); i += cfg.Channels {
				bb = append(bb, float64(data[i])*s.Config().Gain)
			}
			mu := 0.0
			for _, v := range bb {
				mu += v / float64(len(bb))
			}
			for i := range bb {
				bb[i] -= mu
			}
			if rb := rms(bb); rb < 5*noise[c] {
				t.Errorf("%g Hz channel %d: broadband rms %.1f µV, want well above the band noise %.1f", rate, c, rb, noise[c])
			}
		}
		if math.Abs(mean/7-1) > 0.15 {
			t.Errorf("%g Hz: mean band noise %.2f µV, configured 7", rate, mean)
		}
	}
}

func TestNoiseChannelsUncorrelated(t *testing.T) {
	cfg := Config{Channels: 16, Seed: 5, MaxUnits: -1, NoLFP: true, NoMains: true, NoArtifacts: true, Duration: 60000}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := collect(t, s)
	xs := make([][]float64, cfg.Channels)
	for c := range xs {
		xs[c] = bandpass(t, data, cfg.Channels, c, 0.195, 30000, 3000)
	}
	for a := 0; a < cfg.Channels; a++ {
		for b := a + 1; b < cfg.Channels; b++ {
			var sab, saa, sbb float64
			for i := range xs[a] {
				sab += xs[a][i] * xs[b][i]
				saa += xs[a][i] * xs[a][i]
				sbb += xs[b][i] * xs[b][i]
			}
			if r := sab / math.Sqrt(saa*sbb); math.Abs(r) > 0.05 {
				t.Errorf("channels %d and %d: band noise correlation %.3f", a, b, r)
			}
		}
	}
}

func TestTuning(t *testing.T) {
	secs := 60.0
	if testing.Short() {
		secs = 30
	}
	cfg := quiet(48)
	cfg.TunedFraction = 0.7
	cfg.NoBursts = true
	cfg.Duration = uint64(secs * 30000)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, spikes, beh := collect(t, s)
	// Counts in 50 ms bins against the velocity averaged over the bin.
	const bin = 1500
	nb := int(cfg.Duration / bin)
	vx, vy := make([]float64, nb), make([]float64, nb)
	for _, b := range beh {
		k := int(b.Sample / bin)
		vx[k] += b.VX / (bin / 30)
		vy[k] += b.VY / (bin / 30)
	}
	counts := map[int32][]float64{}
	for _, u := range s.Units() {
		counts[u.ID] = make([]float64, nb)
	}
	for _, sp := range spikes {
		counts[sp.Unit][int(sp.Sample/bin)]++
	}
	good, tuned := 0, 0
	for _, u := range s.Units() {
		c := counts[u.ID]
		// Correlation of counts with the projection on the preferred
		// direction.
		proj := make([]float64, nb)
		for k := range proj {
			proj[k] = vx[k]*math.Cos(u.PreferredDir) + vy[k]*math.Sin(u.PreferredDir)
		}
		r := corr(c, proj)
		if !u.Tuned {
			// Four standard errors of a correlation over nb bins.
			if math.Abs(r) > 4/math.Sqrt(float64(nb)) {
				t.Errorf("untuned unit %d: count correlation with velocity %.2f", u.ID, r)
			}
			continue
		}
		tuned++
		// Least squares c = a + bx·vx + by·vy recovers the direction.
		bx, by := regress2(c, vx, vy)
		d := math.Remainder(math.Atan2(by, bx)-u.PreferredDir, 2*math.Pi)
		if r > 0.1 && math.Abs(d) < 0.4 {
			good++
		} else {
			t.Logf("unit %d (b %.1f Hz, m %.1f Hz): r %.2f, direction error %.2f rad", u.ID, u.BaselineHz, u.ModulationHz, r, d)
		}
	}
	if tuned < 10 || float64(good) < 0.8*float64(tuned) {
		t.Errorf("%d of %d tuned units show their tuning", good, tuned)
	}
}

func corr(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= float64(len(a))
	mb /= float64(len(b))
	var sab, saa, sbb float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	return sab / math.Sqrt(saa*sbb)
}

// regress2 fits y = a + bx·x1 + by·x2 by least squares.
func regress2(y, x1, x2 []float64) (bx, by float64) {
	n := float64(len(y))
	var m1, m2, my float64
	for i := range y {
		m1 += x1[i] / n
		m2 += x2[i] / n
		my += y[i] / n
	}
	var s11, s22, s12, s1y, s2y float64
	for i := range y {
		a, b, c := x1[i]-m1, x2[i]-m2, y[i]-my
		s11 += a * a
		s22 += b * b
		s12 += a * b
		s1y += a * c
		s2y += b * c
	}
	det := s11*s22 - s12*s12
	return (s22*s1y - s12*s2y) / det, (s11*s2y - s12*s1y) / det
}

func TestBehaviourModels(t *testing.T) {
	for _, model := range []string{"ou", "reach"} {
		cfg := Config{Channels: 1, Seed: 9, MaxUnits: -1, NoNoise: true, Duration: 60 * 30000}
		cfg.Behaviour.Model = model
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, _, beh := collect(t, s)
		if len(beh) != 60000 {
			t.Fatalf("%s: %d behaviour samples in 60 s, want 60000", model, len(beh))
		}
		var sx, sy, maxSpeed float64
		for i, b := range beh {
			if b.Sample != uint64(30*i) {
				t.Fatalf("%s: sample %d at %d, want %d", model, i, b.Sample, 30*i)
			}
			sx += b.VX * b.VX
			sy += b.VY * b.VY
			maxSpeed = math.Max(maxSpeed, math.Hypot(b.VX, b.VY))
		}
		sdx, sdy := math.Sqrt(sx/60000), math.Sqrt(sy/60000)
		switch model {
		case "ou":
			// 60 s is 120 time constants: the std is known to ~±15%.
			if math.Abs(sdx/10-1) > 0.3 || math.Abs(sdy/10-1) > 0.3 {
				t.Errorf("ou: velocity std (%.2f, %.2f), want about 10", sdx, sdy)
			}
		case "reach":
			if maxSpeed > 10.01 || maxSpeed < 9 {
				t.Errorf("reach: peak speed %.2f, want 10", maxSpeed)
			}
		}
	}
}

func TestSetRate(t *testing.T) {
	s, err := New(Config{Channels: 4, Seed: 1, MinUnits: 2, MaxUnits: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var b = mustNext(t, s, ctx)
	for b.End() < 30000 {
		b = mustNext(t, s, ctx)
	}
	before := s.Units()
	if err := s.SetRate(20000); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRate(-1); err == nil {
		t.Error("SetRate(-1) accepted")
	}
	nb := mustNext(t, s, ctx)
	if nb.First != b.End() || nb.Rate != 20000 || nb.Len() != 20 {
		t.Fatalf("after SetRate: First %d (want %d), Rate %g, Len %d", nb.First, b.End(), nb.Rate, nb.Len())
	}
	after := s.Units()
	for i := range before {
		if before[i].ID != after[i].ID || before[i].PeakUV != after[i].PeakUV || len(after[i].Template) >= len(before[i].Template) {
			t.Errorf("unit %d changed identity or was not resampled", before[i].ID)
		}
	}
	for nb.End() < 30000+20000*5 {
		nb = mustNext(t, s, ctx)
	}
	spikes := s.TakeSpikes(nil)
	late := 0
	for i, sp := range spikes {
		if i > 0 && sp.Sample < spikes[i-1].Sample {
			t.Fatal("spikes out of order across SetRate")
		}
		if sp.Sample >= 30000 {
			late++
		}
	}
	if late < 20 {
		t.Errorf("only %d spikes after SetRate", late)
	}
}

func mustNext(t *testing.T, s *Sim, ctx context.Context) deviceBlock {
	t.Helper()
	b, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Channels"},
		{Config{Channels: 1, Rate: 100}, "Rate"},
		{Config{Channels: 1, Gain: -1}, "Gain"},
		{Config{Channels: 1, MinUnits: 3, MaxUnits: 2}, "units per channel"},
		{Config{Channels: 1, NoiseUV: math.NaN()}, "NoiseUV"},
		{Config{Channels: 1, MainsHz: 20000}, "MainsHz"},
		{Config{Channels: 1, Behaviour: BehaviourConfig{Model: "walk"}}, "Behaviour.Model"},
		{Config{Channels: 1, MinPeakUV: 50, MaxPeakUV: 40}, "peak amplitude"},
		{Config{Channels: 1, HumFraction: 1}, "HumFraction"},
		{Config{Channels: 1, NoiseUV: 1000}, "NoiseUV"},
	} {
		_, err := New(c.cfg)
		if err == nil || !containsFold(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
}

// The documented tuning formula predicts each unit's spike count from the
// behaviour trace: Σ λ/(1+λR)·Δt over behaviour steps, with
// λ = max(0, b + m·(vx cos θ + vy sin θ)/V).
func TestTuningFormulaPredictsCounts(t *testing.T) {
	secs := 40.0
	if os.Getenv("SPIKELINE_LONG") != "" {
		secs = 600
	}
	cfg := quiet(32)
	cfg.NoBursts = true
	cfg.Duration = uint64(secs * 30000)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, spikes, beh := collect(t, s)
	got := map[int32]float64{}
	for _, sp := range spikes {
		got[sp.Unit]++
	}
	V := s.Config().Behaviour.Speed
	dt := 30.0 / 30000
	for _, u := range s.Units() {
		var want float64
		for _, b := range beh {
			lam := math.Max(0, u.BaselineHz+u.ModulationHz*(b.VX*math.Cos(u.PreferredDir)+b.VY*math.Sin(u.PreferredDir))/V)
			want += lam / (1 + lam*u.RefractoryMs/1000) * dt
		}
		if d := got[u.ID] - want; math.Abs(d) > 4*math.Sqrt(want)+3 {
			t.Errorf("unit %d (tuned %v, b %.1f, m %.1f): %v spikes, formula predicts %.1f", u.ID, u.Tuned, u.BaselineHz, u.ModulationHz, got[u.ID], want)
		}
	}
}
