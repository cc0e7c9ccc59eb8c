package sim

import (
	"math"
	"math/rand/v2"
)

// BehaviourSample is the simulated 2-D hand velocity (cm/s) from sample
// index Sample until the next BehaviourSample.
type BehaviourSample struct {
	Sample uint64
	VX, VY float64
}

// behaviour generates velocity steps in order; step j starts at signal
// sample j·step.
type behaviour struct {
	cfg  BehaviourConfig
	r    *rand.Rand
	dt   float64 // seconds per step
	rho  float64 // OU decay per step
	vx   float64
	vy   float64
	next uint64 // index of the next step to generate

	// reach state
	phase   int     // 0 hold at centre, 1 out, 2 hold at target, 3 back
	left    float64 // seconds left in the phase
	dur     float64 // duration of the current movement
	dist    float64
	dir     float64
	elapsed float64
	started bool
}

func newBehaviour(cfg BehaviourConfig, seed int64, stepSeconds float64) *behaviour {
	b := &behaviour{cfg: cfg, r: rand.New(rand.NewPCG(uint64(seed), 0x6265686176)), dt: stepSeconds} // "behav"
	b.rho = math.Exp(-stepSeconds / cfg.Tau.Seconds())
	if cfg.Model == "ou" { // start in the stationary distribution
		b.vx = cfg.Speed * b.r.NormFloat64()
		b.vy = cfg.Speed * b.r.NormFloat64()
	}
	return b
}

// step returns the velocity of step b.next and advances.
func (b *behaviour) step() (vx, vy float64) {
	b.next++
	if b.cfg.Model == "ou" {
		vx, vy = b.vx, b.vy
		s := b.cfg.Speed * math.Sqrt(1-b.rho*b.rho)
		b.vx = b.rho*b.vx + s*b.r.NormFloat64()
		b.vy = b.rho*b.vy + s*b.r.NormFloat64()
		return vx, vy
	}
	return b.reach()
}

// reach: hold at centre 0.3–0.6 s, reach to one of 8 targets (min-jerk,
// 0.5–0.8 s, peak speed Speed), hold 0.3–0.6 s, return, repeat.
func (b *behaviour) reach() (vx, vy float64) {
	if !b.started {
		b.started = true
		b.phase, b.left = 0, uniform(b.r, 0.3, 0.6)
	}
	for b.left <= 0 {
		b.phase = (b.phase + 1) % 4
		switch b.phase {
		case 0, 2:
			b.left = uniform(b.r, 0.3, 0.6)
		case 1:
			b.dir = float64(b.r.IntN(8)) * math.Pi / 4
			fallthrough
		case 3:
			if b.phase == 3 {
				b.dir += math.Pi
			}
			b.dur = uniform(b.r, 0.5, 0.8)
			b.dist = b.cfg.Speed * b.dur / 1.875 // peak of min-jerk is 1.875·D/T
			b.left, b.elapsed = b.dur, 0
		}
	}
	if b.phase == 1 || b.phase == 3 {
		s := (b.elapsed + b.dt/2) / b.dur
		s = math.Min(1, math.Max(0, s))
		v := b.dist / b.dur * 30 * s * s * (1 - s) * (1 - s)
		vx, vy = v*math.Cos(b.dir), v*math.Sin(b.dir)
		b.elapsed += b.dt
	}
	b.left -= b.dt
	return vx, vy
}
