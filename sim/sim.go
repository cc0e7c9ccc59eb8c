package sim

import (
	"cmp"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
	"github.com/spikeline/spikeline/sort"
)

// maxPending bounds the ground truth kept for TakeSpikes; beyond it the
// oldest half is dropped (see Dropped).
const maxPending = 1 << 22

// Sim is a simulated headstage: a device.Source of synthetic
// extracellular data with ground truth. Its methods may be called from
// several goroutines (an emulator pumping Next while a test drains
// TakeSpikes); each call is atomic with respect to the others.
type Sim struct {
	mu           sync.Mutex
	cfg          Config
	blockDefault bool // BlockSamples was defaulted from the rate

	units   []*unitModel
	gen     []unitGen // parallel to units
	byChan  [][]int32 // unit indexes per channel
	chans   []chanState
	noiseUV []float64 // per channel spike-band rms
	tiles   *tileBank

	origin uint64 // absolute sample index of relative sample 0
	n      int    // samples per internal chunk
	step   int    // behaviour step, samples
	lstep  int    // LFP step, samples
	lead   int    // behaviour lead, steps
	pre    int    // template samples before the trough
	tlen   int    // template length
	phases int

	pend       [][]render // per channel: spikes still to be (partly) drawn
	out        []int16    // chunk output, time-major
	chunkStart uint64     // relative sample index of the next chunk
	chunkLen   int        // samples valid in out
	pos        int        // next sample in out to emit
	emitted    uint64     // absolute index of the next sample Next returns
	blockBuf   []int16

	// slow signals, per group of channels
	groups           int
	slow             []int32 // [group][n]
	slowMax          []int32 // per group, max |slow| in the chunk
	tileMax          int32   // max |tile value|
	mainsGain        []float64
	artGain          []float64
	lfpP             lfpParams
	lfpR             *rand.Rand   // the common source's stream
	lfpCommon        lfpSource    // shared by all groups
	lfpOwn           []lfpSource  // each group's own source
	lfpOwnR          []*rand.Rand // and its stream
	lfpC             []float64    // common source at LFP steps lfpK, lfpK+1, … of the chunk
	lfpO             [][]float64  // per group, own source at the same steps
	lfpK             uint64       // LFP step index of lfpC[0] and lfpO[g][0]
	lfpTrim          int          // this chunk: values dropped from the front
	lfpNew           int          // and steps added at the end
	mainsPhase       [2]float64
	mainsTmp, artTmp []float64
	artR             *rand.Rand
	nextArt          float64 // relative sample of the next artifact
	active           []artifact
	artifacts        []Artifact

	beh        *behaviour
	velX, velY []float64 // steps velBase..
	velBase    uint64
	behPending []BehaviourSample
	spikes     []sort.Spike
	dropped    uint64
	workers    int
	wspikes    [][]sort.Spike
	scratch    [][]int16
	quads      [][]kernelQuad // per worker, reused
	tail       [][]int16      // per worker, the kernel's last 8 rows (nil: none)
	touch      []uint32       // per worker, keeps work's template prefetch
}

type chanState struct {
	a, b   []int16 // noise tiles
	oa, ob int     // offsets into them
	group  int
	dc     int32 // DC offset, counts
}

type unitGen struct {
	r         rand.Rand
	pcg       rand.PCG
	haz, need float64 // hazard accumulated since the last spike, and the exponential target
	dead      float64 // no spike before this relative sample time
	burstLeft int
	burstIdx  int
	burstNext float64
	cos, sin  float64
	// Hazard per behaviour step, λ·step/rate, split into its constant and
	// velocity terms; refractory period in samples.
	hb, hc, hs float64
	refr       float64
	tmpl       [][]float32 // per phase, counts
	argmin     []int       // per phase
	minUV      []float32   // per phase, raw trough value µV
}

// New returns a simulator for cfg (zero fields take their defaults).
func New(cfg Config) (*Sim, error) {
	blockDefault := cfg.BlockSamples == 0
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, blockDefault: blockDefault}
	s.units = newUnits(&s.cfg)
	s.build(0)
	return s, nil
}

// build (re)creates everything that depends on the sample rate, starting
// the signal at absolute sample origin.
func (s *Sim) build(origin uint64) {
	cfg := &s.cfg
	rate := cfg.Rate
	s.origin, s.emitted = origin, origin
	s.chunkStart, s.chunkLen, s.pos = 0, 0, 0

	// The noise tiles are synthesised while the units' templates are
	// computed below (both take tens of milliseconds).
	var tiles sync.WaitGroup
	tiles.Go(func() { s.tiles = tilesFor(cfg) })
	fix := 1 / cfg.Gain // µV -> counts

	// Geometry.
	s.pre = int(math.Round(templatePreMs * rate / 1000))
	s.tlen = s.pre + int(math.Round(templatePostMs*rate/1000)) + 2
	s.step = max(1, int(math.Round(rate/cfg.Behaviour.Rate)))
	s.lstep = max(1, int(math.Round(rate/1000)))
	s.lead = int(math.Round(cfg.Behaviour.Lead.Seconds() * rate / float64(s.step)))
	// Chunks are a whole number of behaviour steps.
	s.n = s.step * ((max(256, 2*s.tlen) + s.step - 1) / s.step)
	s.phases = jitterPhases
	if cfg.NoJitter {
		s.phases = 1
	}
	s.gen = make([]unitGen, len(s.units))
	s.unitTemplates()
	tiles.Wait()
	// Extend every tile by a chunk so that a chunk never wraps.
	for i, t := range s.tiles.a {
		s.tiles.a[i] = append(t[:tileLenA:tileLenA], t[:min(s.n+mixPad, tileLenA)]...)
	}
	for i, t := range s.tiles.b {
		s.tiles.b[i] = append(t[:tileLenB:tileLenB], t[:min(s.n+mixPad, tileLenB)]...)
	}

	// Channels: noise tiles, group, DC.
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6368616e)) // "chan"
	s.chans = make([]chanState, cfg.Channels)
	s.noiseUV = make([]float64, cfg.Channels)
	// Tiles are dealt round-robin in a random order, and the channels that
	// share a tile read it at evenly spread offsets (plus a random phase).
	permA, permB := r.Perm(cfg.Channels), r.Perm(cfg.Channels)
	spreadA := tileLenA / ((cfg.Channels + tilesPerAB - 1) / tilesPerAB)
	spreadB := tileLenB / ((cfg.Channels + tilesPerAB - 1) / tilesPerAB)
	phaseA, phaseB := r.IntN(tileLenA), r.IntN(tileLenB)
	for c := range s.chans {
		ch := &s.chans[c]
		ia, ib := permA[c]%tilesPerAB, permB[c]%tilesPerAB
		ch.a, ch.b = s.tiles.a[ia], s.tiles.b[ib]
		ch.oa = (phaseA + permA[c]/tilesPerAB*spreadA + r.IntN(max(1, spreadA/4))) % tileLenA
		ch.ob = (phaseB + permB[c]/tilesPerAB*spreadB + r.IntN(max(1, spreadB/4))) % tileLenB
		ch.group = c / cfg.GroupChannels
		dc := 0.0
		if !cfg.NoDC {
			dc = cfg.DCOffsetUV * (2*r.Float64() - 1)
		}
		ch.dc = int32(math.Round(dc * fix))
		sa, sb := s.tiles.sa[ia], s.tiles.sb[ib]
		if cfg.NoNoise {
			sa, sb = 0, 0
		}
		s.noiseUV[c] = math.Sqrt(sa*sa + sb*sb)
	}
	if cfg.NoNoise {
		for i := range s.tiles.a {
			s.tiles.a[i] = make([]int16, len(s.tiles.a[i]))
			s.tiles.b[i] = make([]int16, len(s.tiles.b[i]))
		}
		for c := range s.chans {
			ch := &s.chans[c]
			ch.a, ch.b = s.tiles.a[0], s.tiles.b[0]
		}
	}

	s.pend = make([][]render, cfg.Channels)
	s.out = make([]int16, cfg.Channels*s.n)

	// Units: generators (their templates are ready).
	s.byChan = make([][]int32, cfg.Channels)
	for i, u := range s.units {
		s.byChan[u.Channel] = append(s.byChan[u.Channel], int32(i))
		g := &s.gen[i]
		g.pcg = *rand.NewPCG(uint64(cfg.Seed), (uint64(u.ID)<<8|0x5b)^s.restart())
		g.r = *rand.New(&g.pcg)
		g.need = g.r.ExpFloat64()
		g.cos, g.sin = math.Cos(u.PreferredDir), math.Sin(u.PreferredDir)
		perStep := float64(s.step) / rate
		g.hb = u.BaselineHz * perStep
		g.hc = u.ModulationHz * g.cos / cfg.Behaviour.Speed * perStep
		g.hs = u.ModulationHz * g.sin / cfg.Behaviour.Speed * perStep
		g.refr = u.RefractoryMs * rate / 1000
		u.NoiseUV = s.noiseUV[u.Channel]
		u.SNR = math.Inf(1)
		if u.NoiseUV > 0 {
			u.SNR = math.Abs(u.BandPeakUV) / u.NoiseUV
		}
	}

	// Slow signals.
	s.groups = (cfg.Channels + cfg.GroupChannels - 1) / cfg.GroupChannels
	s.slow = make([]int32, s.groups*s.n+mixPad)
	s.slowMax = make([]int32, s.groups)
	s.tileMax = 0
	for _, t := range append(slices.Clone(s.tiles.a), s.tiles.b...) {
		for _, v := range t {
			s.tileMax = max(s.tileMax, abs32(int32(v)))
		}
	}
	rg := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x67726f7570)) // "group"
	s.mainsGain = make([]float64, s.groups)
	s.artGain = make([]float64, s.groups)
	for g := range s.mainsGain {
		s.mainsGain[g] = uniform(rg, 0.5, 1.5)
		s.artGain[g] = uniform(rg, 0.5, 1.5)
	}
	s.mainsPhase = [2]float64{rg.Float64() * 2 * math.Pi, rg.Float64() * 2 * math.Pi}
	s.lfpP = newLFPParams(rate / float64(s.lstep))
	s.lfpR = rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6c6670^s.restart())) // "lfp"
	s.lfpCommon = lfpSource{}
	s.lfpOwn = make([]lfpSource, s.groups)
	s.lfpOwnR = make([]*rand.Rand, s.groups)
	s.lfpO = make([][]float64, s.groups)
	// Start the generators in their stationary state (2 s of warm-up,
	// many time constants), with the values of steps 0 and 1 ready.
	warm := int(2 * rate / float64(s.lstep))
	for range warm {
		s.lfpCommon.step(&s.lfpP, s.lfpR)
	}
	s.lfpC = append(s.lfpC[:0], s.lfpCommon.step(&s.lfpP, s.lfpR), s.lfpCommon.step(&s.lfpP, s.lfpR))
	for g := range s.lfpOwn {
		r := rand.New(rand.NewPCG(uint64(cfg.Seed), (0x6c667000|uint64(g)<<32)^s.restart()))
		s.lfpOwnR[g] = r
		for range warm {
			s.lfpOwn[g].step(&s.lfpP, r)
		}
		s.lfpO[g] = []float64{s.lfpOwn[g].step(&s.lfpP, r), s.lfpOwn[g].step(&s.lfpP, r)}
	}
	s.lfpK = 0
	s.mainsTmp = make([]float64, s.n)
	s.artTmp = make([]float64, s.n)
	s.artR = rand.New(rand.NewPCG(uint64(cfg.Seed), 0x617274^s.restart())) // "art"
	s.nextArt = math.Inf(1)
	if !cfg.NoArtifacts && cfg.ArtifactRate > 0 && cfg.ArtifactUV > 0 {
		s.nextArt = s.artR.ExpFloat64() * rate / cfg.ArtifactRate
	}
	s.active = s.active[:0]

	s.beh = newBehaviour(cfg.Behaviour, cfg.Seed^int64(s.restart()), float64(s.step)/rate)
	s.velX, s.velY, s.velBase = s.velX[:0], s.velY[:0], 0

	s.setWorkers(max(1, min(runtime.GOMAXPROCS(0), cfg.Channels/64)))
}

// unitTemplates computes every unit's template at the sample rate, for
// each jitter phase in counts (s.gen) and at phase 0 in µV (Unit.Template),
// and its band-passed peak: units in parallel, each on its own.
func (s *Sim) unitTemplates() {
	cfg := &s.cfg
	rate := cfg.Rate
	sec := bandFilter(rate)
	forRanges(len(s.units), func(lo, hi int) {
		w := make([]float64, s.tlen)
		for i := lo; i < hi; i++ {
			u, g := s.units[i], &s.gen[i]
			g.tmpl = make([][]float32, s.phases)
			g.argmin = make([]int, s.phases)
			g.minUV = make([]float32, s.phases)
			for p := 0; p < s.phases; p++ {
				u.templateAt(w, rate, s.pre, float64(p)/float64(s.phases))
				t := make([]float32, s.tlen)
				for j, v := range w {
					t[j] = float32(v / cfg.Gain)
					if v < float64(g.minUV[p]) {
						g.minUV[p], g.argmin[p] = float32(v), j
					}
				}
				g.tmpl[p] = t
				if p == 0 {
					u.Template = make([]float32, s.tlen)
					for j, v := range w {
						u.Template[j] = float32(v)
					}
					u.Pre = s.pre
				}
			}
			u.BandPeakUV, u.BandLag = bandPeak(sec, u.Template, rate)
			u.BandLag -= s.pre
		}
	})
}

// forRanges calls f on consecutive ranges covering [0, n), on up to
// GOMAXPROCS goroutines (the last range on the calling one), and waits.
func forRanges(n int, f func(lo, hi int)) {
	workers := max(1, min(runtime.GOMAXPROCS(0), n/16))
	var wg sync.WaitGroup
	for k := range workers - 1 {
		wg.Go(func() { f(k*n/workers, (k+1)*n/workers) })
	}
	f((workers-1)*n/workers, n)
	wg.Wait()
}

// setWorkers sets the number of goroutines that generate a chunk and
// allocates their scratch state.
func (s *Sim) setWorkers(workers int) {
	s.workers = workers
	s.wspikes = make([][]sort.Spike, workers)
	s.scratch = make([][]int16, workers)
	s.quads = make([][]kernelQuad, workers)
	s.tail = make([][]int16, workers)
	if haveMix4x8 && s.n+mixPad <= min(tileLenA, tileLenB) {
		for i := range s.tail {
			s.tail[i] = make([]int16, 8*s.cfg.Channels)
		}
	}
	s.touch = make([]uint32, workers)
	for i := range s.scratch {
		s.scratch[i] = make([]int16, s.n)
	}
}

// stepOf returns floor(t/step) without a division.
func stepOf(t, step, invStep float64) uint64 {
	j := uint64(t * invStep)
	if float64(j+1)*step <= t {
		j++
	} else if j > 0 && float64(j)*step > t {
		j--
	}
	return j
}

// restart is mixed into the random streams of the time-varying parts
// (firing, behaviour, LFP, artifacts) so that after SetRate they continue
// with fresh draws instead of repeating the start of the recording. It is
// 0 for a new simulator.
func (s *Sim) restart() uint64 { return s.origin * 0x9e3779b97f4a7c15 }

// bandPeak is the signed extremum of the template after the causal band
// filter, and its index.
func bandPeak(sec []dsp.Section, t []float32, rate float64) (float64, int) {
	pad := int(0.005 * rate)
	x := make([]float64, len(t)+pad)
	for i, v := range t {
		x[i] = float64(v)
	}
	filterSOS(sec, make([]float64, 2*len(sec)), x)
	peak, at := 0.0, 0
	for i, v := range x {
		if math.Abs(v) > math.Abs(peak) {
			peak, at = v, i
		}
	}
	return peak, at
}

// Config returns the simulator's configuration with defaults filled in.
func (s *Sim) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Rate returns the current sample rate in Hz.
func (s *Sim) Rate() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Rate
}

// Units returns the ground-truth units in ID order. The slice is a copy;
// the Templates are shared and must not be modified.
func (s *Sim) Units() []Unit {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Unit, len(s.units))
	for i, u := range s.units {
		out[i] = u.Unit
	}
	return out
}

// NoiseUV returns each channel's background noise rms in the 300–6000 Hz
// band, in µV (the denominator of Unit.SNR).
func (s *Sim) NoiseUV() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.noiseUV)
}

// Artifacts returns the artifacts generated so far (including any that
// start in samples not yet returned by Next).
func (s *Sim) Artifacts() []Artifact {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.artifacts)
}

// Emitted returns the absolute sample index of the next sample Next will
// return: everything before it has been delivered.
func (s *Sim) Emitted() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitted
}

// Dropped returns how many ground-truth spikes were discarded because
// TakeSpikes was not called for a long time (more than 4 Mi pending).
func (s *Sim) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// TakeSpikes appends to dst the ground-truth spikes whose trough sample
// has been delivered by Next, in order of Sample (then Channel, Unit),
// removes them from the simulator and returns dst. Each spike's Sample is
// the sample of the minimum of its raw rendered waveform and Amplitude
// that minimum in µV (after drift and burst attenuation).
func (s *Sim) TakeSpikes(dst []sort.Spike) []sort.Spike {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := slices.BinarySearchFunc(s.spikes, s.emitted, func(sp sort.Spike, t uint64) int { return cmp.Compare(sp.Sample, t) })
	dst = append(dst, s.spikes[:n]...)
	s.spikes = append(s.spikes[:0], s.spikes[n:]...)
	return dst
}

// TakeBehaviour appends to dst the behaviour samples delivered so far
// (Sample before Emitted), removes them and returns dst.
func (s *Sim) TakeBehaviour(dst []BehaviourSample) []BehaviourSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := slices.BinarySearchFunc(s.behPending, s.emitted, func(b BehaviourSample, t uint64) int { return cmp.Compare(b.Sample, t) })
	dst = append(dst, s.behPending[:n]...)
	s.behPending = append(s.behPending[:0], s.behPending[n:]...)
	return dst
}

// SetRate changes the sample rate from the next sample on, as a headstage
// would after a rate command: the sample counter continues, the units keep
// their identities and waveforms (in ms), and everything rate-dependent is
// rebuilt. Ground truth not yet delivered is discarded and generated anew.
func (s *Sim) SetRate(hz float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg
	cfg.Rate = hz
	if s.blockDefault {
		cfg.BlockSamples = int(math.Max(1, math.Round(hz/1000)))
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	s.cfg = cfg
	i, _ := slices.BinarySearchFunc(s.spikes, s.emitted, func(sp sort.Spike, t uint64) int { return cmp.Compare(sp.Sample, t) })
	s.spikes = s.spikes[:i]
	j, _ := slices.BinarySearchFunc(s.behPending, s.emitted, func(b BehaviourSample, t uint64) int { return cmp.Compare(b.Sample, t) })
	s.behPending = s.behPending[:j]
	k := 0
	for _, a := range s.artifacts {
		if a.Sample < s.emitted {
			s.artifacts[k] = a
			k++
		}
	}
	s.artifacts = s.artifacts[:k]
	s.build(s.emitted)
	return nil
}

// Next returns the next Block of BlockSamples samples per channel. The
// Block's Samples are valid until the next call. At Duration it returns
// io.EOF.
func (s *Sim) Next(ctx context.Context) (device.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return device.Block{}, err
	}
	want := s.cfg.BlockSamples
	if s.cfg.Duration > 0 {
		if s.emitted >= s.cfg.Duration {
			return device.Block{}, io.EOF
		}
		want = int(min(uint64(want), s.cfg.Duration-s.emitted))
	}
	C := s.cfg.Channels
	if s.pos == s.chunkLen {
		s.generate()
	}
	var samples []int16
	if s.chunkLen-s.pos >= want {
		samples = s.out[s.pos*C : (s.pos+want)*C]
		s.pos += want
	} else {
		if cap(s.blockBuf) < want*C {
			s.blockBuf = make([]int16, want*C)
		}
		samples = s.blockBuf[:want*C]
		for done := 0; done < want; {
			if s.pos == s.chunkLen {
				s.generate()
			}
			k := min(want-done, s.chunkLen-s.pos)
			copy(samples[done*C:], s.out[s.pos*C:(s.pos+k)*C])
			s.pos += k
			done += k
		}
	}
	b := device.Block{
		First:    s.emitted,
		Rate:     s.cfg.Rate,
		Channels: C,
		Gain:     s.cfg.Gain,
		Samples:  samples,
		Received: time.Now(),
	}
	s.emitted += uint64(want)
	return b, nil
}

// generateInto has the next internal chunk generated into dst (Channels
// times the chunk's samples) instead of the simulator's own buffer, so
// that a caller taking whole chunks (BlockSamples equal to the chunk) can
// keep each one: WriteRecording generates straight into the memory it
// writes while it writes the previous chunks. The simulator draws into
// dst until the chunk is generated; it must be called between chunks.
func (s *Sim) generateInto(dst []int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pos != s.chunkLen || len(dst) != len(s.out) {
		panic("sim: generateInto within a chunk or with a buffer of the wrong size")
	}
	s.out = dst
}

// velocity of behaviour step j (generated by generate beforehand).
func (s *Sim) velocity(j uint64) (float64, float64) {
	i := j - s.velBase
	return s.velX[i], s.velY[i]
}

// generate produces the next internal chunk into s.out.
func (s *Sim) generate() {
	c0 := s.chunkStart
	n := s.n
	step := uint64(s.step)

	// Spikes are generated spikeChunks chunks at a time (their drawing is
	// queued per channel), which spreads each unit's fixed cost.
	var spikeEnd uint64 // end of this chunk's spike window; 0: none
	if (c0/uint64(n))%spikeChunks == 0 {
		spikeEnd = c0 + uint64(spikeChunks*n)
	}
	// Behaviour: steps needed by the rates of spikes with troughs in
	// [c0+pre, spikeEnd+pre), with the lead.
	need := (max(c0+uint64(n), spikeEnd)+uint64(s.pre))/step + uint64(s.lead) + 1
	for s.velBase+uint64(len(s.velX)) <= need {
		vx, vy := s.beh.step()
		s.velX = append(s.velX, vx)
		s.velY = append(s.velY, vy)
	}
	for j := (c0 + step - 1) / step; j*step < c0+uint64(n); j++ {
		vx, vy := s.velocity(j)
		s.behPending = append(s.behPending, BehaviourSample{Sample: s.origin + j*step, VX: vx, VY: vy})
	}

	s.fillSlow(c0)
	// Channels in parallel: slow signals, spikes, rendering, mixing. When
	// each worker's channels are whole groups (the usual case), a worker
	// fills its own groups' slow signals and goes on without waiting for
	// the others; otherwise all groups are filled first.
	C, GC := s.cfg.Channels, s.cfg.GroupChannels
	per := (C + s.workers - 1) / s.workers
	per = (per + 31) &^ 31
	own := per%GC == 0
	if !own {
		s.parallel(func(w int) {
			s.fillGroups(c0, w*s.groups/s.workers, (w+1)*s.groups/s.workers)
		})
	}
	s.parallel(func(w int) {
		lo, hi := w*per, min(C, (w+1)*per)
		if lo >= hi {
			s.wspikes[w] = s.wspikes[w][:0]
			return
		}
		if own {
			s.fillGroups(c0, lo/GC, (hi+GC-1)/GC)
		}
		s.work(w, lo, hi, c0, spikeEnd)
	})

	// Ground truth, in order.
	old := len(s.spikes)
	for _, sp := range s.wspikes {
		s.spikes = append(s.spikes, sp...)
	}
	fresh := s.spikes[old:]
	slices.SortFunc(fresh, func(a, b sort.Spike) int {
		return cmp.Or(cmp.Compare(a.Sample, b.Sample), cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.Unit, b.Unit))
	})
	if old > 0 && len(fresh) > 0 && fresh[0].Sample < s.spikes[old-1].Sample {
		lo := max(0, old-256)
		slices.SortStableFunc(s.spikes[lo:], func(a, b sort.Spike) int {
			return cmp.Or(cmp.Compare(a.Sample, b.Sample), cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.Unit, b.Unit))
		})
	}
	if len(s.spikes) > maxPending {
		k := len(s.spikes) / 2
		s.dropped += uint64(k)
		s.spikes = append(s.spikes[:0], s.spikes[k:]...)
	}
	if len(s.behPending) > maxPending {
		k := len(s.behPending) / 2
		s.behPending = append(s.behPending[:0], s.behPending[k:]...)
	}

	// Forget behaviour no longer needed.
	keep := (c0 + uint64(n)) / step
	if keep > s.velBase {
		d := int(keep - s.velBase)
		s.velX = append(s.velX[:0], s.velX[d:]...)
		s.velY = append(s.velY[:0], s.velY[d:]...)
		s.velBase = keep
	}

	s.chunkStart += uint64(n)
	s.chunkLen, s.pos = n, 0
}

// fillSlow prepares what all groups share for the chunk starting at
// relative sample c0: mains, artifacts and the common LFP source.
func (s *Sim) fillSlow(c0 uint64) {
	cfg := &s.cfg
	n := s.n
	mains := s.mainsTmp
	if cfg.NoMains || cfg.MainsUV == 0 {
		clear(mains)
	} else {
		// Exact phase at the chunk start, then a rotating phasor (the
		// chunks are fixed, so this does not depend on the block size).
		f := cfg.MainsHz / cfg.Rate
		ph := 2 * math.Pi * fracMul(s.origin+c0, f)
		s1, c1 := math.Sincos(ph + s.mainsPhase[0])
		s3, c3 := math.Sincos(3*ph + s.mainsPhase[1])
		d1s, d1c := math.Sincos(2 * math.Pi * f)
		d3s, d3c := math.Sincos(6 * math.Pi * f)
		for i := range mains {
			mains[i] = cfg.MainsUV * (s1 + s3/3)
			s1, c1 = s1*d1c+c1*d1s, c1*d1c-s1*d1s
			s3, c3 = s3*d3c+c3*d3s, c3*d3c-s3*d3s
		}
	}
	art := s.artTmp
	clear(art)
	end := float64(c0 + uint64(n))
	for s.nextArt < end {
		a := newArtifact(s.artR, s.origin+uint64(s.nextArt), cfg.Rate, cfg.ArtifactUV)
		s.active = append(s.active, a)
		s.artifacts = append(s.artifacts, a.Artifact)
		s.nextArt += s.artR.ExpFloat64() * cfg.Rate / cfg.ArtifactRate
	}
	k := 0
	for _, a := range s.active {
		first := s.origin + c0
		for i := range art {
			abs := first + uint64(i)
			if abs >= a.Sample && abs < a.Sample+uint64(a.Samples) {
				art[i] += a.at(abs)
			}
		}
		if a.Sample+uint64(a.Samples) > first+uint64(n) {
			s.active[k] = a
			k++
		}
	}
	s.active = s.active[:k]

	// LFP: the steps whose values this chunk interpolates between, the
	// common source here, each group's own in fillGroups.
	if !cfg.NoLFP && cfg.LFPUV > 0 {
		lstep := uint64(s.lstep)
		kFirst, kLast := c0/lstep, (c0+uint64(n)-1)/lstep
		s.lfpTrim = int(kFirst - s.lfpK)
		s.lfpC = append(s.lfpC[:0], s.lfpC[s.lfpTrim:]...)
		s.lfpK = kFirst
		s.lfpNew = int(kLast+2-kFirst) - len(s.lfpC)
		for range s.lfpNew {
			s.lfpC = append(s.lfpC, s.lfpCommon.step(&s.lfpP, s.lfpR))
		}
	}
}

// fillGroups computes the slow signal (LFP, mains, artifacts) of groups
// [glo, ghi) for the chunk starting at relative sample c0, in counts.
// Groups are independent, so workers fill disjoint ranges in parallel.
func (s *Sim) fillGroups(c0 uint64, glo, ghi int) {
	cfg := &s.cfg
	n := s.n
	fix := 1 / cfg.Gain
	lfpOn := !cfg.NoLFP && cfg.LFPUV > 0
	lstep := uint64(s.lstep)
	invL := 1 / float64(lstep)
	for g := glo; g < ghi; g++ {
		mg, ag := s.mainsGain[g], s.artGain[g]
		own := s.lfpO[g]
		if lfpOn {
			own = append(own[:0], own[s.lfpTrim:]...)
			for range s.lfpNew {
				own = append(own, s.lfpOwn[g].step(&s.lfpP, s.lfpOwnR[g]))
			}
			s.lfpO[g] = own
		}
		var mx int32
		// One LFP interpolation segment at a time.
		for i := 0; i < n; {
			rel := c0 + uint64(i)
			end := n
			var base, slope, off float64
			if lfpOn {
				k := rel / lstep
				j := int(k - s.lfpK)
				end = min(n, int((k+1)*lstep-c0))
				v0 := cfg.LFPUV * (0.8*s.lfpC[j] + 0.6*own[j])
				v1 := cfg.LFPUV * (0.8*s.lfpC[j+1] + 0.6*own[j+1])
				base, slope, off = v0, (v1-v0)*invL, float64(rel-k*lstep)
			}
			ms, as := s.mainsTmp[i:end], s.artTmp[i:end]
			row := s.slow[g*n+i : g*n+end]
			for k := range row {
				v := (base + slope*(off+float64(k)) + mg*ms[k] + ag*as[k]) * fix
				if v >= 0 {
					v += 0.5
				} else {
					v -= 0.5
				}
				row[k] = int32(v)
				mx = max(mx, abs32(row[k]))
			}
			i = end
		}
		s.slowMax[g] = mx
	}
}

// parallel runs f(0) … f(workers-1) concurrently, the last on the
// calling goroutine, and waits for all.
func (s *Sim) parallel(f func(w int)) {
	var wg sync.WaitGroup
	for w := 0; w < s.workers-1; w++ {
		wg.Go(func() { f(w) })
	}
	// Yield before taking a share: a new goroutine waits in this P's
	// runnext slot, which another P steals only when idle, and while
	// WriteRecording's writer is in write(2) that P is not idle, so a
	// trace showed the other share running after this one, not beside
	// it (main waiting 0.38–0.46 s of 1.0 s in wg.Wait). Yielding runs
	// the new goroutine here and puts this one on the global queue for
	// the next free P: 20 s of 1,024 channels written in 0.81–0.89 s
	// instead of 0.94–0.99 (docs/performance.md).
	runtime.Gosched()
	f(s.workers - 1)
	wg.Wait()
}

// fracMul returns the fractional part of n·f accurately for large n.
func fracMul(n uint64, f float64) float64 {
	// Split n so that each product keeps full precision.
	hi, lo := float64(n>>20<<20), float64(n&(1<<20-1))
	a := hi * f
	a -= math.Floor(a)
	b := lo * f
	b -= math.Floor(b)
	x := a + b
	return x - math.Floor(x)
}

// spikeChunks is how many chunks of spikes are generated at once.
const spikeChunks = 4

// work generates the spikes of the units on channels [lo, hi) with
// troughs before spikeEnd+pre (if spikeEnd > c0), queues them for
// drawing, and mixes the chunk of those channels into s.out.
func (s *Sim) work(w, lo, hi int, c0, spikeEnd uint64) {
	sp := s.wspikes[w][:0]
	if spikeEnd > c0 {
		t0 := float64(c0) + float64(s.pre)
		t1 := float64(spikeEnd) + float64(s.pre)
		for ch := lo; ch < hi; ch++ {
			for _, ui := range s.byChan[ch] {
				sp = s.spikesOf(int(ui), t0, t1, c0, sp)
			}
		}
	}
	s.wspikes[w] = sp

	C := s.cfg.Channels
	n := s.n
	var quad [4]mixInput
	fast := s.quads[w][:0]
	for cb := lo; cb < hi; cb += 4 {
		ce := min(hi, cb+4)
		sat := false
		for ch := cb; ch < ce; ch++ {
			st := &s.chans[ch]
			// Tile positions of relative sample c0; the tiles are
			// extended by n samples, so no read wraps.
			pa := int((uint64(st.oa) + c0) % tileLenA)
			pb := int((uint64(st.ob) + c0) % tileLenB)
			quad[ch-cb] = mixInput{
				a:    st.a[pa : pa+n],
				b:    st.b[pb : pb+n],
				slow: s.slow[st.group*n : (st.group+1)*n],
				dc:   st.dc,
			}
			// Saturation is needed only when the chunk can reach the
			// rails (artifacts, large LFP).
			if int64(2*s.tileMax)+int64(s.slowMax[st.group])+abs64(int64(st.dc)) >= 32767 {
				sat = true
			}
		}
		if haveMix4x8 && ce-cb == 4 && !sat && n >= 8 &&
			&quad[0].slow[0] == &quad[1].slow[0] && &quad[0].slow[0] == &quad[2].slow[0] && &quad[0].slow[0] == &quad[3].slow[0] {
			// Left to the kernel, below.
			fast = append(fast, newKernelQuad(cb, &quad))
		} else if ce-cb == 4 && littleEndian {
			mix4(s.out, C, cb, &quad, sat)
		} else {
			for ch := cb; ch < ce; ch++ {
				m := &quad[ch-cb]
				dst := s.scratch[w][:n]
				mix(dst, m.a, m.b, m.slow, m.dc)
				for i, v := range dst {
					s.out[i*C+ch] = v
				}
			}
		}
	}
	s.quads[w] = fast
	// The kernel's quads eight samples at a time, then the spikes.
	// (Drawing the spikes a block of samples at a time too, while the rows
	// are in cache, gained nothing: the cost is in fetching templates.)
	mixBlocks(s.out, C, n, fast, s.tail[w])
	// The spikes' templates (float32, 4 phases per unit: megabytes for
	// 1,024 channels) are mostly out of cache by now. Touching a value in
	// each of their cache lines first lets the loads overlap; drawSpikes
	// then stalls on each in turn.
	var touch uint32
	for ch := lo; ch < hi; ch++ {
		for _, r := range s.pend[ch] {
			j0, j1 := max(0, -r.start), min(len(r.tmpl), n-r.start)
			for j := j0; j < j1; j += 16 {
				touch |= math.Float32bits(r.tmpl[j])
			}
		}
	}
	s.touch[w] = touch
	for ch := lo; ch < hi; ch++ {
		s.pend[ch] = drawSpikes(s.out, C, ch, n, s.pend[ch])
	}
}

// kernelQuad is four adjacent channels of one group, without saturation,
// prepared for mix4x8.
type kernelQuad struct {
	c0   int // first channel
	a, b [4]*int16
	slow *int32
	dc   [32]int16 // each channel's DC in 8 lanes
	in   [4]mixInput
}

func newKernelQuad(c0 int, in *[4]mixInput) kernelQuad {
	q := kernelQuad{c0: c0, slow: &in[0].slow[0], in: *in}
	for k := range in {
		q.a[k], q.b[k] = &in[k].a[0], &in[k].b[0]
		for j := range 8 {
			q.dc[8*k+j] = int16(in[k].dc)
		}
	}
	return q
}

// mixPad is how far past a chunk the noise tiles and the slow signals
// are readable, so that mixBlocks can run the kernel over the chunk's last
// eight rows whatever n.
const mixPad = 8

// mixBlocks computes what mix4 computes for each quad over a chunk of n
// samples (all in range), eight samples of all the quads at a time
// (mixRows8): across the quads the rows of the time-major out then fill
// in order, while a single quad's column (rows 2·C bytes apart) falls into
// a handful of cache sets when C is a power of two. The last n%8 rows go
// through tail (8·C samples, the inputs being readable mixPad samples past
// the chunk) if it is not nil.
func mixBlocks(out []int16, C, n int, quads []kernelQuad, tail []int16) {
	if len(quads) == 0 || n == 0 {
		return
	}
	_ = out[(n-1)*C+quads[len(quads)-1].c0+3]
	n8 := n &^ 7
	for t := 0; t < n8; t += 8 {
		mixRows8(&out[t*C], 2*C, &quads[0], len(quads), 2*t)
	}
	if n8 == n {
		return
	}
	if len(tail) >= 8*C {
		mixRows8(&tail[0], 2*C, &quads[0], len(quads), 2*n8)
		for i := range quads {
			c0 := quads[i].c0
			for t := n8; t < n; t++ {
				o, r := t*C+c0, (t-n8)*C+c0
				copy(out[o:o+4], tail[r:r+4])
			}
		}
		return
	}
	for i := range quads {
		q := &quads[i]
		for t := n8; t < n; t++ {
			sl := q.in[0].slow[t]
			for k := range q.in {
				m := &q.in[k]
				out[t*C+q.c0+k] = int16(int32(m.a[t]) + int32(m.b[t]) + sl + m.dc)
			}
		}
	}
}

// render is a spike waveform to add to a channel, starting at sample
// start of the current chunk (negative when it began in an earlier one).
type render struct {
	start int
	tmpl  []float32 // counts
	scale float32
}

// drawSpikes adds the spikes in jobs to channel ch of the time-major
// chunk out (C channels, n samples), saturating, and returns the jobs that
// continue into the next chunk.
func drawSpikes(out []int16, C, ch, n int, jobs []render) []render {
	drawSpikeRows(out, C, ch, 0, n, jobs)
	return carrySpikes(jobs, n)
}

// drawSpikeRows adds the parts of the spikes in jobs that fall in samples
// [t0, t1) to channel ch of the time-major chunk out (C channels),
// saturating each addition, in the order of jobs.
func drawSpikeRows(out []int16, C, ch, t0, t1 int, jobs []render) {
	for _, r := range jobs {
		if r.start >= t1 || r.start+len(r.tmpl) <= t0 {
			continue
		}
		j0, j1 := max(0, t0-r.start), min(len(r.tmpl), t1-r.start)
		tm := r.tmpl[j0:j1]
		o := (r.start+j0)*C + ch
		_ = out[o+(len(tm)-1)*C]
		for _, y := range tm {
			x := y * r.scale
			if x >= 0 {
				x += 0.5
			} else {
				x -= 0.5
			}
			v := int32(out[o]) + int32(x)
			out[o] = int16(min(max(v, -32768), 32767))
			o += C
		}
	}
}

// carrySpikes removes the jobs that end within the chunk of n samples and
// makes the others' start relative to the next chunk.
func carrySpikes(jobs []render, n int) []render {
	k := 0
	for _, r := range jobs {
		if r.start+len(r.tmpl) > n {
			r.start -= n
			jobs[k] = r
			k++
		}
	}
	return jobs[:k]
}

// mix is the reference of the hot loop (mix4 runs it four channels at a
// time): one channel's noise (two tiles), slow signal and DC, in fixed
// point with q fractional bits, rounded and saturated to int16 (spikes are
// drawn on top by drawSpikes):
//
//	dst[i] = sat16(a[i] + b[i] + slow[i] + dc)
func mix(dst, a, b []int16, slow []int32, dc int32) {
	n := len(dst)
	a, b, slow = a[:n], b[:n], slow[:n]
	for i := range dst {
		x := int32(a[i]) + int32(b[i]) + slow[i] + dc
		dst[i] = int16(min(max(x, -32768), 32767))
	}
}

func abs32(x int32) int32 {
	if x < 0 {
		return -x
	}
	return x
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// mixInput is one channel's inputs to the mix for a chunk.
type mixInput struct {
	a, b []int16 // noise tiles from the chunk's first sample
	slow []int32 // the channel group's slow signal
	dc   int32
}

// mix4 mixes four adjacent channels c0..c0+3 straight into the time-major
// out (C channels), packing the four results of a sample into one 64-bit
// store. It computes exactly what mix computes for each channel (sat
// selects mix's saturation; without it the caller guarantees the range).
func mix4(out []int16, C, c0 int, in *[4]mixInput, sat bool) {
	n := len(in[0].a)
	if n == 0 {
		return
	}
	a0, a1, a2, a3 := in[0].a[:n], in[1].a[:n], in[2].a[:n], in[3].a[:n]
	b0, b1, b2, b3 := in[0].b[:n], in[1].b[:n], in[2].b[:n], in[3].b[:n]
	s0, s1, s2, s3 := in[0].slow[:n], in[1].slow[:n], in[2].slow[:n], in[3].slow[:n]
	d0, d1, d2, d3 := in[0].dc, in[1].dc, in[2].dc, in[3].dc
	_ = out[(n-1)*C+c0+3]
	if !sat && &s0[0] == &s1[0] && &s0[0] == &s2[0] && &s0[0] == &s3[0] {
		// The usual case: four channels of one group share the slow
		// signal, loaded once.
		i0 := 0
		if haveMix4x8 && n >= 8 {
			// Eight samples at a time in SSE2 (mix_amd64.s), the rest
			// below.
			i0 = n &^ 7
			pa := [4]*int16{&a0[0], &a1[0], &a2[0], &a3[0]}
			pb := [4]*int16{&b0[0], &b1[0], &b2[0], &b3[0]}
			var dc [32]int16
			for k := range 8 {
				dc[k], dc[8+k], dc[16+k], dc[24+k] = int16(d0), int16(d1), int16(d2), int16(d3)
			}
			mix4x8(&out[c0], 2*C, &pa, &pb, &s0[0], &dc, 0, 2*i0)
		}
		for i := i0; i < n; i++ {
			sl := s0[i]
			v0 := (int32(a0[i]) + int32(b0[i]) + sl + d0)
			v1 := (int32(a1[i]) + int32(b1[i]) + sl + d1)
			v2 := (int32(a2[i]) + int32(b2[i]) + sl + d2)
			v3 := (int32(a3[i]) + int32(b3[i]) + sl + d3)
			o := i*C + c0
			store4(out[o:o+4], uint64(uint16(v0))|uint64(uint16(v1))<<16|uint64(uint16(v2))<<32|uint64(uint16(v3))<<48)
		}
		return
	}
	if !sat {
		for i := 0; i < n; i++ {
			v0 := (int32(a0[i]) + int32(b0[i]) + s0[i] + d0)
			v1 := (int32(a1[i]) + int32(b1[i]) + s1[i] + d1)
			v2 := (int32(a2[i]) + int32(b2[i]) + s2[i] + d2)
			v3 := (int32(a3[i]) + int32(b3[i]) + s3[i] + d3)
			o := i*C + c0
			store4(out[o:o+4], uint64(uint16(v0))|uint64(uint16(v1))<<16|uint64(uint16(v2))<<32|uint64(uint16(v3))<<48)
		}
		return
	}
	for i := 0; i < n; i++ {
		v0 := min(max((int32(a0[i])+int32(b0[i])+s0[i]+d0), -32768), 32767)
		v1 := min(max((int32(a1[i])+int32(b1[i])+s1[i]+d1), -32768), 32767)
		v2 := min(max((int32(a2[i])+int32(b2[i])+s2[i]+d2), -32768), 32767)
		v3 := min(max((int32(a3[i])+int32(b3[i])+s3[i]+d3), -32768), 32767)
		o := i*C + c0
		store4(out[o:o+4], uint64(uint16(v0))|uint64(uint16(v1))<<16|uint64(uint16(v2))<<32|uint64(uint16(v3))<<48)
	}
}

// spikesOf generates unit ui's spikes with continuous trough times (in
// relative samples) in [t0, t1), queues them for drawing and appends their
// ground truth to sp.
func (s *Sim) spikesOf(ui int, t0, t1 float64, c0 uint64, sp []sort.Spike) []sort.Spike {
	u := s.units[ui]
	g := &s.gen[ui]
	rate := s.cfg.Rate
	step := float64(s.step)
	refr := g.refr
	emit := func(tau, scale float64) {
		m := math.Floor(tau)
		ph := 0
		if s.phases > 1 {
			ph = min(s.phases-1, int((tau-m)*float64(s.phases)))
		}
		start := int(uint64(m)-c0) - s.pre
		tp := g.tmpl[ph]
		if !s.cfg.NoDrift && s.cfg.Drift > 0 {
			scale *= 1 + s.cfg.Drift*math.Sin(2*math.Pi*(tau/rate)/u.driftPeriod+u.driftPhase)
		}
		f := float32(scale)
		s.pend[u.Channel] = append(s.pend[u.Channel], render{start: start, tmpl: tp, scale: f})
		sp = append(sp, sort.Spike{
			Sample:    s.origin + uint64(m) - uint64(s.pre) + uint64(g.argmin[ph]),
			Channel:   int32(u.Channel),
			Unit:      u.ID,
			Amplitude: g.minUV[ph] * f,
		})
	}
	hb, hc, hs := g.hb, g.hc, g.hs
	invStep := 1 / step
	lead := uint64(s.lead)
	velX, velY := s.velX, s.velY
	t := t0
	for t < t1 {
		if g.burstLeft > 0 {
			if g.burstNext >= t1 {
				break
			}
			t = g.burstNext
			g.burstIdx++
			emit(t, math.Pow(0.85, float64(g.burstIdx)))
			g.burstLeft--
			g.dead = t + refr
			g.burstNext = t + uniform(&g.r, 3, 7)*rate/1000
			continue
		}
		if t < g.dead {
			t = math.Min(g.dead, t1)
			continue
		}
		j := stepOf(t, step, invStep)
		if float64(j)*step == t {
			// At a step boundary: accumulate whole steps in a tight loop
			// until the one in which the hazard reaches its target.
			k := j + lead - s.velBase
			kEnd := stepOf(t1, step, invStep) + lead - s.velBase
			haz, need := g.haz, g.need
			for ; k < kEnd; k++ {
				h := hb + hc*velX[k] + hs*velY[k]
				if h < 0 {
					h = 0
				}
				if haz+h >= need {
					break
				}
				haz += h
			}
			g.haz = haz
			j = k + s.velBase - lead
			t = float64(j) * step
			if k == kEnd {
				continue
			}
		}
		segEnd := math.Min(float64(j+1)*step, t1)
		vx, vy := s.velocity(j + lead)
		lam := (hb + hc*vx + hs*vy) * invStep // per sample
		if lam < 0 {
			lam = 0
		}
		if lam*(segEnd-t) >= g.need-g.haz {
			t += (g.need - g.haz) / lam
			g.haz, g.need = 0, g.r.ExpFloat64()
			emit(t, 1)
			g.dead = t + refr
			if u.BurstProb > 0 && g.r.Float64() < u.BurstProb {
				g.burstLeft = 1 + g.r.IntN(3)
				g.burstIdx = 0
				g.burstNext = t + uniform(&g.r, 3, 7)*rate/1000
			}
			continue
		}
		g.haz += lam * (segEnd - t)
		t = segEnd
	}
	return sp
}
