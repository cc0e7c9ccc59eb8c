package sort

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/spikeline/spikeline/internal/background"
	"gonum.org/v1/gonum/mat"
)

// This file holds template learning: per channel, the snippets collected
// during a learning window are reduced with PCA and clustered by k-means,
// over-split on purpose and then merged while a pair of clusters is not
// separated by a density dip along the line through their centres (an
// ISO-SPLIT-like test). Small and incoherent clusters are rejected as
// noise, so a channel ends with 0 to MaxUnits units.

// learnJob is one channel's learning input.
type learnJob struct {
	ch    int
	sigma float32
	w     []float32 // snippets, dfull each
	tau   []uint64
	gap   []uint32  // rows since the channel's previous detection, per snippet
	prev  []float32 // sign-corrected amplitude of that detection
	// With geometry: the snippets span these channels (ch first), dfull
	// samples each, and sigmas are their noise.
	chans  []int32
	sigmas []float32
}

// channelUnits is one channel's learning result: template waveforms
// (dfull samples, µV) and the number of snippets behind each.
type channelUnits struct {
	ch     int
	sigma  float32
	waves  [][]float32
	counts []int
	chans  []int32 // with geometry: the channels of the waves
}

// learnParams are the settings learning needs (copied, so the learner
// goroutine shares nothing with the stream).
type learnParams struct {
	d, dfull, pre, post, tail int
	maxUnits, minSpikes       int
	sign                      Sign
	threshold                 float64
	burstGap                  int // rows: the longest interval within a burst
	// firstChannel is the first channel's index in the whole stream
	// (Config.Part): channels seed their random numbers by it.
	firstChannel int
}

// maybeLearn starts a learning pass when the collection window ends, and
// starts collecting when a re-learning window opens.
func (s *Sorter) maybeLearn() {
	if s.learning || !s.noiseOK {
		return
	}
	if !s.collecting {
		if s.learnAt > 0 && s.scan >= s.learnFrom && s.scan < s.learnAt {
			s.collecting = true
			s.setCollect(true)
		}
		return
	}
	if s.scan >= s.learnAt {
		s.startLearn(s.cfg.Deterministic)
		if s.cfg.Deterministic {
			s.installLearned(true)
		}
	}
}

// startLearn hands the collected snippets to a learner.
func (s *Sorter) startLearn(inline bool) {
	var jobs []learnJob
	for _, sh := range s.shards {
		for c := range sh.sets {
			set := &sh.sets[c]
			if len(set.tau) >= s.cfg.MinSpikes {
				j := learnJob{ch: sh.c0 + c, sigma: sh.sigma[c], w: set.w, tau: set.tau, gap: set.gap, prev: set.prev}
				if s.g != nil {
					j.chans = s.g.nb[j.ch]
					for _, n := range j.chans {
						j.sigmas = append(j.sigmas, s.g.chSh[n].sigma[s.g.chLoc[n]])
					}
				}
				jobs = append(jobs, j)
				*set = snippetSet{}
			} else {
				set.w, set.tau, set.gap, set.prev = set.w[:0], set.tau[:0], set.gap[:0], set.prev[:0]
			}
		}
	}
	s.learnJobs = jobs
	s.collecting = false
	s.setCollect(false)
	s.learning = true
	if s.learnDone == nil {
		s.learnDone = make(chan []channelUnits, 1)
	}
	p := learnParams{d: s.d, dfull: s.dfull, pre: s.pre, post: s.post, tail: s.tail,
		maxUnits: s.cfg.MaxUnits, minSpikes: s.cfg.MinSpikes, sign: s.cfg.Sign, threshold: s.cfg.Threshold,
		burstGap: ms(burstGapMs, s.rate), firstChannel: s.cfg.Part.First}
	if inline {
		// The caller waits (offline, Deterministic): learn on all of
		// the sorter's workers.
		s.learnDone <- learnAll(jobs, p, s.cfg.Workers)
		return
	}
	// In the background, one goroutine on a low-priority thread and a P
	// of its own: the hot path keeps its cores (internal/background),
	// with help at normal priority after learnHelpAfter, or in the first
	// pass as soon as it starves (watch).
	lp := newLearnPass(jobs, p)
	background.Go(lp.work)
	helpSec := max(learnHelpAfter*s.cfg.LearnSeconds, float64(s.relearnGap)/s.rate/2)
	// Help comes after helpSec of wall time or of stream, whichever is
	// first: a stream fed faster than real time (a file, a test) keeps
	// the cores busy, so an idle-priority thread would get nothing.
	s.pass, s.helpAt = lp, s.scan+uint64(helpSec*s.rate)
	s.passScan, s.passWall = s.scan, time.Now()
	var starve time.Duration
	if s.stats.Learned == 0 {
		starve = learnStarveAfter
	}
	go func() {
		lp.watch(time.Duration(helpSec*float64(time.Second)), starve)
		s.learnDone <- lp.out
	}()
}

// helpLearning gives the running live learning pass a goroutine of normal
// priority once the stream has run helpAt rows (startLearn), or as soon as
// the stream runs faster than real time (more than 1.5 times, plus a
// second): no device waits for the sorter then, and the cores are busy.
func (s *Sorter) helpLearning() {
	if s.pass == nil {
		return
	}
	stream := float64(s.scan-s.passScan) / s.rate
	fast := stream > 1.5*time.Since(s.passWall).Seconds()+1
	if (s.scan >= s.helpAt || fast) && s.pass.takeHelp() {
		go s.pass.helpWork()
	}
}

// joinPass learns the rest of the running live learning pass on the
// calling goroutine, at its priority, if it has no such helper yet: the
// caller is about to wait for the pass (Flush at the end of a stream,
// Close), which at idle priority alone could take a minute (a re-learning
// pass at 1,024 channels is ~30 CPU-s).
func (s *Sorter) joinPass() {
	if s.pass != nil && s.pass.takeHelp() {
		s.pass.helpWork()
	}
}

// installLearned installs a finished learning pass (waiting for it when
// wait or Deterministic) and schedules the next one.
func (s *Sorter) installLearned(wait bool) {
	if !s.learning {
		return
	}
	var res []channelUnits
	if wait || s.cfg.Deterministic {
		s.joinPass()
		res = <-s.learnDone
	} else {
		select {
		case res = <-s.learnDone:
		default:
			s.helpLearning()
			return
		}
	}
	lp := s.pass
	s.learning = false
	s.pass = nil
	s.stats.Learned++
	// The learner is done with the snippets: their buffers go back to
	// channels that have not started collecting again, so learning
	// windows do not allocate once the buffers have grown (except a
	// channel learned twice, whose first copy may still be running).
	for i, j := range s.learnJobs {
		if lp != nil && lp.dup[i].Load() {
			continue
		}
		sh := s.shardOf(j.ch)
		if set := &sh.sets[j.ch-sh.c0]; cap(set.w) == 0 && cap(set.tau) == 0 {
			*set = snippetSet{w: j.w[:0], tau: j.tau[:0], gap: j.gap[:0], prev: j.prev[:0]}
		}
	}
	s.learnJobs = nil
	if s.g != nil {
		for _, r := range res {
			s.mergeGeo(r)
		}
		s.dedup()
		s.buildCand()
		for _, u := range s.g.units {
			u.recent = 0
		}
	}
	for _, r := range res {
		if s.g != nil {
			break
		}
		sh := s.shardOf(r.ch)
		c := r.ch - sh.c0
		sh.units[c] = s.mergeUnits(sh.units[c], r, sh.sigma[c])
	}
	for _, sh := range s.shards {
		// Channels that gained (or lost) templates scan at another threshold.
		sh.applyThreshold()
	}
	for _, sh := range s.shards {
		for _, us := range sh.units {
			for _, u := range us {
				u.recent = 0
			}
		}
	}
	// Schedule the next pass: re-learning of every channel, or learning
	// of the channels still without templates.
	// Passes come at growing intervals (LearnSeconds, then twice that,
	// four times... up to RelearnEvery), collecting over the whole
	// interval, so units too rare to reach MinSpikes in the first window
	// are learned soon after.
	window := uint64(s.cfg.LearnSeconds * s.rate)
	if s.cfg.RelearnEvery > 0 {
		s.relearnAll = true
		s.relearnGap = min(max(2*s.relearnGap, 2*window), uint64(s.cfg.RelearnEvery*s.rate))
		s.learnFrom = s.scan
		s.learnAt = s.scan + s.relearnGap
	} else {
		s.relearnAll = false
		s.learnFrom = s.scan
		s.learnAt = s.scan + window
		if !s.needLearn() {
			s.learnAt = 0
		}
	}
}

// mergeUnits combines a channel's current units with a learning result:
// a new cluster close to an existing template (mean squared difference
// below σ² over the matched window) takes over that template and keeps its
// unit id; other new clusters get fresh ids; existing templates not found
// again survive only if they kept matching spikes.
func (s *Sorter) mergeUnits(old []*unit, r channelUnits, sigma float32) []*unit {
	d := s.d
	taken := make([]bool, len(old))
	out := make([]*unit, 0, len(r.waves)+len(old))
	type pair struct {
		i, j int
		cost float32
	}
	var pairs []pair
	for i, w := range r.waves {
		for j, u := range old {
			// Allow the amplitude to have drifted a little between passes.
			var dot, ee, ww float32
			for k := range d {
				dot += w[k] * u.w[k]
				ee += u.w[k] * u.w[k]
				ww += w[k] * w[k]
			}
			a := float32(1)
			if ee > 0 {
				a = min(max(dot/ee, 0.8), 1.25)
			}
			e := ww - 2*a*dot + a*a*ee
			pairs = append(pairs, pair{i, j, e / (float32(d) * sigma * sigma)})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		switch {
		case a.cost < b.cost:
			return -1
		case a.cost > b.cost:
			return 1
		}
		return 0
	})
	used := make([]bool, len(r.waves))
	for _, p := range pairs {
		if p.cost >= 1 || used[p.i] || taken[p.j] {
			continue
		}
		used[p.i], taken[p.j] = true, true
		u := old[p.j]
		copy(u.w, r.waves[p.i])
		u.energy(d)
		out = append(out, u)
	}
	for i, w := range r.waves {
		if used[i] {
			continue
		}
		// The same shape as a known unit not found otherwise: the same
		// neuron found again after drift; keep the old id. (A known unit
		// already taken by another cluster of this pass does not count:
		// the pass told the two apart.)
		dup := false
		for j, u := range old {
			if !taken[j] && sameShape(w[:d], u.w[:d]) {
				dup, taken[j] = true, true
				copy(u.w, w)
				u.energy(d)
				out = append(out, u)
				break
			}
		}
		if dup {
			continue
		}
		u := newUnit(s.nextUnit, w, d)
		u.count = r.counts[i]
		s.nextUnit++
		out = append(out, u)
	}
	// A known unit not found again survives while it keeps matching
	// spikes, unless it is noise or a unit kept or learned now is
	// indistinguishable from it.
	n := len(out)
	for j, u := range old {
		noise := math.Abs(float64(u.w[s.pre])) < (s.cfg.Threshold+0.3)*float64(sigma)
		if taken[j] || u.recent < s.cfg.MinSpikes || noise {
			continue
		}
		if !slices.ContainsFunc(out[:n], func(v *unit) bool { return !distinct(u.w[:d], v.w[:d], sigma) }) {
			out = append(out, u)
		}
	}
	return out
}

// minSeparation is the smallest distance, in noise σ, between two
// templates that the matcher tells apart: a spike of one is nearer the
// other with probability Φ(−distance/2), 7% at 3σ.
const minSeparation = 3

// distinct reports whether templates a and b are at least minSeparation
// noise σ apart over the matched window.
func distinct(a, b []float32, sigma float32) bool {
	var e float64
	for i, v := range a {
		df := float64(v - b[i])
		e += df * df
	}
	return e >= minSeparation*minSeparation*float64(sigma)*float64(sigma)
}

// learnAll learns every job's channel, on up to workers goroutines (the
// channels are independent and each seeds its own random numbers, so the
// result does not depend on workers).
func learnAll(jobs []learnJob, p learnParams, workers int) []channelUnits {
	lp := newLearnPass(jobs, p)
	if learnLabels != nil || learnDebug != nil {
		workers = 1 // the tests' hooks are not safe for concurrent use
	}
	for range min(workers, len(jobs)) - 1 {
		go lp.work()
	}
	lp.work()
	<-lp.done
	return lp.out
}

// learnPass is one learning pass: its jobs and their results, shared by
// the goroutines that learn them, each taking the next channel.
type learnPass struct {
	jobs []learnJob
	p    learnParams
	out  []channelUnits
	next atomic.Int64  // the next job to take
	left atomic.Int64  // jobs not yet learned
	done chan struct{} // closed when none is left
	help atomic.Bool   // a helper of normal priority has been sent
	// fin[i] is set by the first goroutine to finish job i; dup[i] when
	// the helper learns job i a second time (it was taken by the
	// idle-priority thread): that thread may still be reading the job's
	// snippets after the pass ends.
	fin, dup []atomic.Bool
}

// takeHelp reports whether the caller is the one helper of normal
// priority the pass gets (none while the tests' hooks, which are not safe
// for concurrent use, are set).
func (lp *learnPass) takeHelp() bool {
	return learnLabels == nil && learnDebug == nil && lp.help.CompareAndSwap(false, true)
}

func newLearnPass(jobs []learnJob, p learnParams) *learnPass {
	lp := &learnPass{jobs: jobs, p: p, out: make([]channelUnits, len(jobs)), done: make(chan struct{}),
		fin: make([]atomic.Bool, len(jobs)), dup: make([]atomic.Bool, len(jobs))}
	lp.left.Store(int64(len(jobs)))
	if len(jobs) == 0 {
		close(lp.done)
	}
	return lp
}

// work learns channels until there is none left to take.
func (lp *learnPass) work() {
	for i := int(lp.next.Add(1) - 1); i < len(lp.jobs); i = int(lp.next.Add(1) - 1) {
		lp.learn(i)
	}
}

// helpWork is the normal-priority helper's work: the channels left to
// take, then again each channel the idle-priority thread has taken and not
// finished. That thread cannot be given a higher priority again (the
// kernel refuses an unprivileged process), so a channel it holds while the
// cores are busy would hold up the pass for as long as they stay busy;
// learning is deterministic, so whichever copy finishes first is the
// result.
func (lp *learnPass) helpWork() {
	lp.work()
	for i := range lp.jobs {
		if !lp.fin[i].Load() {
			lp.dup[i].Store(true)
			lp.learn(i)
		}
	}
}

// learn learns job i and, if no other goroutine finished it first, keeps
// the result.
func (lp *learnPass) learn(i int) {
	j := lp.jobs[i]
	var r channelUnits
	if j.chans != nil {
		waves, counts := learnGeo(j, lp.p)
		r = channelUnits{ch: j.ch, sigma: j.sigma, waves: waves, counts: counts, chans: j.chans}
	} else {
		waves, counts := learnChannel(j, lp.p)
		r = channelUnits{ch: j.ch, sigma: j.sigma, waves: waves, counts: counts}
	}
	if !lp.fin[i].CompareAndSwap(false, true) {
		return
	}
	lp.out[i] = r
	if lp.left.Add(-1) == 0 {
		close(lp.done)
	}
}

// watch waits for the pass to end. It joins the pass at normal priority
// after helpAfter, or, if starveAfter > 0, as soon as no channel has been
// learned for starveAfter: the idle-priority thread is starving then,
// because the cores are busy (with the hot path, or with other processes:
// a thread in SCHED_IDLE gets next to nothing while threads of normal
// priority want the cores).
func (lp *learnPass) watch(helpAfter, starveAfter time.Duration) {
	start := time.Now()
	tick := time.NewTicker(cmp.Or(starveAfter, helpAfter) / 4)
	defer tick.Stop()
	left, since := lp.left.Load(), start
	for {
		select {
		case <-lp.done:
			return
		case now := <-tick.C:
			if l := lp.left.Load(); l != left {
				left, since = l, now
			}
			starving := starveAfter > 0 && now.Sub(since) >= starveAfter
			if now.Sub(start) < helpAfter && !starving {
				continue
			}
			if lp.takeHelp() {
				lp.helpWork()
			}
			<-lp.done
			return
		}
	}
}

// learnStarveAfter is how long the first live learning pass may go
// without learning a channel before a goroutine of normal priority joins
// it (one channel takes milliseconds; LearnSeconds of spikes on a dense
// probe's channel, tens). Only the first: until it ends no spike is
// sorted, while a re-learning pass only refreshes templates in use, and
// at 4,096 channels, where the hot path itself fills the cores, a helper
// joining every re-learning pass after 2 s put the pipeline up to 11 s
// behind the device (docs/performance.md, "Bounded starvation").
const learnStarveAfter = 2 * time.Second

// learnHelpAfter is how long, in LearnSeconds, a live learning pass runs
// on its idle-priority thread alone (or half the time its snippets took to
// collect, if longer): if the cores stay too busy for it to finish by
// then, a goroutine of normal priority joins it, so a pass ends in bounded
// time however loaded the machine is.
const learnHelpAfter = 3

// learnChannel clusters one channel's snippets into templates.
func learnChannel(j learnJob, p learnParams) ([][]float32, []int) {
	n := len(j.tau)
	if n < p.minSpikes || !(j.sigma > 0) {
		return nil, nil
	}
	sig := float64(j.sigma)
	ch := j.ch
	snip := func(i int) []float32 { return j.w[i*p.dfull : (i+1)*p.dfull] }
	// Drop the later lobes of larger spikes: a snippet within the
	// template span after a larger spike is most likely that spike's
	// later lobe (a causal filter's ringing), not a spike of its own; and
	// if it is one, it is an overlap, a poor example to learn from.
	keep := dropLobes(j, p, p.dfull)
	n = len(keep)
	if n < p.minSpikes {
		return nil, nil
	}
	// Centre every snippet on its sub-sample extremum, so sampling
	// jitter of sharp spikes does not masquerade as separate clusters.
	aligned := make([]float32, len(keep)*p.dfull)
	for r, i := range keep {
		shiftSnippet(aligned[r*p.dfull:(r+1)*p.dfull], snip(i), p.pre)
	}
	kept0 := slices.Clone(keep)
	snip = func(r int) []float32 { return aligned[r*p.dfull : (r+1)*p.dfull] }
	for r := range keep {
		keep[r] = r
	}
	// Features for a first partition: PCA of the matched window in σ
	// units, over-clustered by k-means.
	X := mat.NewDense(n, p.d, nil)
	for r, i := range keep {
		row := X.RawRowView(r)
		for k, v := range snip(i)[:p.d] {
			row[k] = float64(v) / sig
		}
	}
	dims := min(3, p.d, n-1)
	var feat [][]float64
	var centred, vecs *mat.Dense
	ok := false
	if dims >= 1 {
		centred, vecs, ok = principalAxes(X)
	}
	if ok {
		feat = make([][]float64, n)
		for r := range n {
			row := centred.RawRowView(r)
			f := make([]float64, dims)
			for q := range dims {
				var s float64
				for k := range p.d {
					s += row[k] * vecs.At(k, q)
				}
				f[q] = s
			}
			feat[r] = f
		}
	} else {
		feat = make([][]float64, n)
		for r := range n {
			feat[r] = []float64{X.At(r, p.pre)}
		}
	}
	k0 := min(2*p.maxUnits+2, max(1, n/p.minSpikes))
	rng := rand.New(rand.NewPCG(uint64(j.ch+p.firstChannel)+1, 0x5eed))
	label := kmeansBest(feat, k0, rng, 4)
	if learnLabels != nil {
		taus := make([]uint64, len(kept0))
		for r, i := range kept0 {
			taus[r] = j.tau[i]
		}
		defer func() { learnLabels(j.ch, taus, label) }()
		learnLabels(j.ch, taus, slices.Clone(label))
	}
	if learnDebug != nil {
		learnDebug(j.ch, "snippets %d kept %d k0 %d sizes %v", len(j.tau), n, k0, sizes(label))
	}
	// The clusters are merged and re-divided on the whole snippet
	// (split.go): the first partition only seeds that.
	//
	// The first partition over-splits on purpose, so a rare unit may come
	// out in pieces smaller than MinSpikes: only the smallest pieces are
	// put aside, the rest may merge back into a unit (clusters still under
	// MinSpikes after that are dropped below).
	dropPieces(label)
	whole := make([][]float64, n)
	for r := range n {
		row := make([]float64, p.dfull)
		for t, v := range snip(r) {
			row[t] = float64(v) / sig
		}
		whole[r] = row
	}
	white, _ := whiten(whole, label, p.dfull)
	label = isoSplit(j.ch, white, label, p.dfull, nil)
	if learnDebug != nil {
		learnDebug(j.ch, "after merge sizes %v", sizes(label))
	}
	// Templates and rejection of noise clusters.
	cl := templates(ch, label, snip, p, sig)
	// Clusters with the same shape are one unit when the smaller one's
	// spikes are the later spikes of bursts: a neuron's spikes shrink
	// within a burst (complex spikes), so a bursting unit falls into
	// clusters at falling amplitudes, and the smaller clusters' spikes
	// follow a larger spike within burstGap far more often than spikes of
	// an independent unit would by chance. Same-shape clusters without
	// that relation stay apart: the density dip separated them, and a
	// second neuron of a similar shape and another amplitude is common.
	chance, follows := burstFollows(j, p, kept0, p.dfull)
	window := func(w []float32) []float32 { return w[:p.d] }
	cl = mergeClusters(ch, cl, p, sig, window, j.sigma, chance, follows)
	return unitsOf(cl, p.maxUnits)
}

// mergeClusters makes one unit of clusters that are one: same-shape
// clusters whose smaller one's spikes are the later spikes of bursts
// (follows, against chance) or a small fraction of the other, then
// clusters the matcher could not tell apart (distinct with noise sigma).
// shape gives a template's matched window as the comparisons take it;
// sig is the main channel's noise σ (for the diagnostics).
func mergeClusters(ch int, cl []cluster, p learnParams, sig float64, shape func([]float32) []float32, sigma float32, chance float64, follows func([]int) float64) []cluster {
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(cl) && !merged; i++ {
			for k := 0; k < len(cl) && !merged; k++ {
				// k into i: k the smaller.
				if k == i || cl[k].peak > cl[i].peak || cl[k].peak == cl[i].peak && k < i || cl[k].peak < burstShrink*cl[i].peak {
					continue
				}
				if shapeCorr(shape(cl[i].wave), shape(cl[k].wave)) < sameShapeCorr {
					continue
				}
				f := follows(cl[k].members)
				if learnDebug != nil {
					learnDebug(ch, "same shape: peaks %.1fσ (%d) and %.1fσ (%d): %.2f of the smaller follow a larger spike within %d rows (chance %.2f)",
						float64(cl[i].peak)/sig, cl[i].count, float64(cl[k].peak)/sig, cl[k].count, f, p.burstGap, chance)
				}
				// A same-shape cluster a small fraction of the size of
				// its neighbour is one unit with it too: the neighbour's
				// spikes overlapping others', or its extremes.
				small := float64(min(cl[i].count, cl[k].count)) < minShare*float64(max(cl[i].count, cl[k].count))
				if f < chance+0.5*(1-chance) && !small {
					continue
				}
				cl[i].absorb(&cl[k], p.pre)
				cl = slices.Delete(cl, k, k+1)
				merged = true
			}
		}
	}
	// Clusters the matcher could not tell apart are one unit (a small
	// sample can show a density dip inside one unit).
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(cl) && !merged; i++ {
			for k := i + 1; k < len(cl) && !merged; k++ {
				if distinct(shape(cl[i].wave), shape(cl[k].wave), sigma) {
					continue
				}
				if learnDebug != nil {
					learnDebug(ch, "peaks %.1fσ (%d) and %.1fσ (%d) closer than %vσ: merged",
						float64(cl[i].peak)/sig, cl[i].count, float64(cl[k].peak)/sig, cl[k].count, minSeparation)
				}
				cl[i].absorb(&cl[k], p.pre)
				cl = slices.Delete(cl, k, k+1)
				merged = true
			}
		}
	}
	return cl
}

// dropLobes returns the snippets of j (stride samples each, the main
// channel first) that are not later lobes of a larger spike on the main
// channel: a snippet within the template span after a spike more than
// 1.2 times larger.
func dropLobes(j learnJob, p learnParams, stride int) []int {
	n := len(j.tau)
	peak := func(i int) float64 { return math.Abs(float64(j.w[i*stride+p.pre])) }
	keep := make([]int, 0, n)
	span := uint64(p.post + p.tail)
	for i := range n {
		ai := peak(i)
		lobe := false
		for k := i - 1; k >= 0 && j.tau[i]-j.tau[k] <= span; k-- {
			if peak(k) > 1.2*ai {
				lobe = true
				break
			}
		}
		if !lobe {
			keep = append(keep, i)
		}
	}
	return keep
}

// dropPieces puts aside (label -1) the members of the first partition's
// clusters smaller than minPiece.
func dropPieces(label []int) {
	sz := sizes(label)
	for r, l := range label {
		if sz[l] < minPiece {
			label[r] = -1
		}
	}
}

// templates returns the clusters of label (rows at(r), the main channel
// first) with at least minSpikes members that pass the coherence and
// noise tests on the main channel (noise σ sig): the cluster means.
func templates(ch int, label []int, at func(int) []float32, p learnParams, sig float64) []cluster {
	k := 0
	for _, l := range label {
		k = max(k, l+1)
	}
	var cl []cluster
	for q := range k {
		var members []int
		for r, l := range label {
			if l == q {
				members = append(members, r)
			}
		}
		if len(members) < p.minSpikes {
			continue
		}
		mean := make([]float64, len(at(members[0])))
		for _, r := range members {
			for t, v := range at(r) {
				mean[t] += float64(v)
			}
		}
		for t := range mean {
			mean[t] /= float64(len(members))
		}
		// Coherence: a unit's snippets scatter around its mean like
		// noise; a cluster of mixed events scatters far more.
		var resid float64
		for _, r := range members {
			for t, v := range at(r)[:p.d] {
				df := float64(v) - mean[t]
				resid += df * df
			}
		}
		resid /= float64(len(members)*p.d) * sig * sig
		if resid > 6 {
			if learnDebug != nil {
				learnDebug(ch, "cluster %d (%d) rejected: scatter %.1f", q, len(members), resid)
			}
			continue
		}
		// Noise: the mean of threshold crossings of noise alone sits just
		// beyond the threshold (a Gaussian tail beyond 4.5σ averages
		// 4.7σ); a unit's template stands clear of it.
		if math.Abs(mean[p.pre]) < (p.threshold+0.3)*sig {
			if learnDebug != nil {
				learnDebug(ch, "cluster %d (%d) rejected: peak %.1fσ", q, len(members), math.Abs(mean[p.pre])/sig)
			}
			continue
		}
		w := make([]float32, len(mean))
		for t, v := range mean {
			w[t] = float32(v)
		}
		cl = append(cl, cluster{w, len(members), float32(math.Abs(mean[p.pre])), members})
	}
	return cl
}

// burstFollows returns the chance that a spike of j follows another
// within burstGap rows, and a function giving the share of a cluster's
// members (rows of the kept snippets kept0, stride samples each) that
// follow a larger spike within burstGap.
func burstFollows(j learnJob, p learnParams, kept0 []int, stride int) (float64, func([]int) float64) {
	n0 := len(j.tau)
	window := float64(j.tau[n0-1]-j.tau[0]) + 1
	chance := 1 - math.Exp(-float64(n0)/window*float64(p.burstGap))
	follows := func(members []int) float64 {
		if len(j.gap) == 0 {
			return 0
		}
		var f int
		for _, r := range members {
			i := kept0[r]
			if int(j.gap[i]) <= p.burstGap && j.prev[i] > float32(math.Abs(float64(j.w[i*stride+p.pre]))) {
				f++
			}
		}
		return float64(f) / float64(len(members))
	}
	return chance, follows
}

// unitsOf orders clusters by peak (largest first), keeps at most
// maxUnits of them (the best supported), and returns their templates and
// counts.
func unitsOf(cl []cluster, maxUnits int) ([][]float32, []int) {
	slices.SortStableFunc(cl, func(a, b cluster) int {
		switch {
		case a.peak > b.peak:
			return -1
		case a.peak < b.peak:
			return 1
		}
		return 0
	})
	if len(cl) > maxUnits {
		// Keep the best supported clusters, still ordered by size of peak.
		bySize := slices.Clone(cl)
		slices.SortStableFunc(bySize, func(a, b cluster) int { return b.count - a.count })
		limit := bySize[maxUnits-1].count
		kept := cl[:0]
		for _, c := range cl {
			if c.count >= limit && len(kept) < maxUnits {
				kept = append(kept, c)
			}
		}
		cl = kept
	}
	waves := make([][]float32, len(cl))
	counts := make([]int, len(cl))
	for i, c := range cl {
		waves[i], counts[i] = c.wave, c.count
	}
	return waves, counts
}

// minPiece is the smallest cluster of the first partition kept for
// merging; smaller ones are outliers.
const minPiece = 4

// kmeansBest runs k-means++ restarts times and keeps the lowest inertia.
func kmeansBest(x [][]float64, k int, rng *rand.Rand, restarts int) []int {
	var best []int
	bestI := math.Inf(1)
	for range restarts {
		l, in := kmeans(x, k, rng)
		if in < bestI {
			best, bestI = l, in
		}
	}
	return best
}

// kmeans clusters x into k groups (k-means++ seeding, Lloyd iterations)
// and returns labels and inertia.
func kmeans(x [][]float64, k int, rng *rand.Rand) ([]int, float64) {
	n := len(x)
	dim := len(x[0])
	k = min(k, n)
	cent := make([][]float64, 0, k)
	cent = append(cent, slices.Clone(x[rng.IntN(n)]))
	d2 := make([]float64, n) // squared distance to the nearest centre so far
	for i := range d2 {
		d2[i] = math.Inf(1)
	}
	for len(cent) < k {
		var sum float64
		c := cent[len(cent)-1] // only the newest centre can be nearer
		for i, p := range x {
			d2[i] = min(d2[i], dist2(p, c))
			sum += d2[i]
		}
		if sum == 0 {
			break
		}
		r := rng.Float64() * sum
		i := 0
		for ; i < n-1; i++ {
			r -= d2[i]
			if r <= 0 {
				break
			}
		}
		cent = append(cent, slices.Clone(x[i]))
	}
	k = len(cent)
	label := make([]int, n)
	cnt := make([]int, k)
	var inertia float64
	for iter := 0; iter < 100; iter++ {
		changed := false
		inertia = 0
		for i, p := range x {
			bl, bd := 0, math.Inf(1)
			for q, c := range cent {
				if d := dist2(p, c); d < bd {
					bl, bd = q, d
				}
			}
			if label[i] != bl || iter == 0 {
				changed = changed || label[i] != bl
				label[i] = bl
			}
			inertia += bd
		}
		if !changed && iter > 0 {
			break
		}
		for q := range cent {
			clear(cent[q])
			cnt[q] = 0
		}
		for i, p := range x {
			q := label[i]
			cnt[q]++
			for t := range dim {
				cent[q][t] += p[t]
			}
		}
		for q := range cent {
			if cnt[q] == 0 {
				copy(cent[q], x[rng.IntN(n)])
				continue
			}
			for t := range dim {
				cent[q][t] /= float64(cnt[q])
			}
		}
	}
	return compact(label), inertia
}

func dist2(a, b []float64) float64 {
	if len(a) == 3 && len(b) == 3 {
		// k-means on three principal components, written out: the same
		// sum in the same order (0 + d0² is d0²), without the loop.
		d0, d1, d2 := a[0]-b[0], a[1]-b[1], a[2]-b[2]
		return d0*d0 + d1*d1 + d2*d2
	}
	var s float64
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}

// compact renumbers labels 0..k-1 in order of first appearance.
func compact(label []int) []int {
	relabel(label)
	return label
}

// relabel is compact in place, and returns the new label of each old one.
func relabel(label []int) map[int]int {
	m := map[int]int{}
	for i, l := range label {
		if l < 0 {
			continue
		}
		v, ok := m[l]
		if !ok {
			v = len(m)
			m[l] = v
		}
		label[i] = v
	}
	return m
}

// learnLabels, when set (tests), receives each channel's clustering.
var learnLabels func(ch int, tau []uint64, label []int)

// learnDebug, when set (tests), receives learning diagnostics.
var learnDebug func(ch int, format string, a ...any)

func sizes(label []int) []int {
	var n []int
	for _, l := range label {
		if l < 0 {
			continue
		}
		for len(n) <= l {
			n = append(n, 0)
		}
		n[l]++
	}
	return n
}

// shiftSnippet writes x resampled so that its extremum near pre, located
// to a fraction of a sample by a parabola through the three samples
// around it, falls exactly on pre (cubic Catmull-Rom interpolation).
func shiftSnippet(dst, x []float32, pre int) {
	copy(dst, x)
	if delta, ok := peakShift(x, pre); ok {
		resample(dst, x, delta)
	}
}

// peakShift returns where the extremum near pre lies, in samples from
// pre, by a parabola through the three samples around it (ok false when
// there is no such extremum within a sample).
func peakShift(x []float32, pre int) (float64, bool) {
	if pre < 1 || pre+1 >= len(x) {
		return 0, false
	}
	a, b, c := float64(x[pre-1]), float64(x[pre]), float64(x[pre+1])
	den := a - 2*b + c
	if den == 0 {
		return 0, false
	}
	delta := 0.5 * (a - c) / den
	if math.IsNaN(delta) || math.Abs(delta) > 1 {
		return 0, false
	}
	return delta, true
}

// resample writes x shifted by delta samples (dst[i] = x(i+delta), cubic
// Catmull-Rom interpolation) into dst.
func resample(dst, x []float32, delta float64) {
	n := len(x)
	at := func(i int) float64 { return float64(x[min(max(i, 0), n-1)]) }
	for i := range dst {
		pos := float64(i) + delta
		i0 := int(math.Floor(pos))
		f := pos - float64(i0)
		p0, p1, p2, p3 := at(i0-1), at(i0), at(i0+1), at(i0+2)
		dst[i] = float32(p1 + 0.5*f*(p2-p0+f*(2*p0-5*p1+4*p2-p3+f*(3*(p1-p2)+p3-p0))))
	}
}

// sameShapeCorr is the correlation above which two templates have the
// same shape; burstShrink the smallest amplitude ratio of the spikes of
// one burst that learning merges; burstGapMs the longest interval between
// spikes of a burst.
const (
	sameShapeCorr = 0.96
	burstShrink   = 0.5
	burstGapMs    = 10
	minShare      = 0.05 // least size of a same-shape cluster, relative to its neighbour, to be a unit of its own
)

// cluster is one candidate unit of a channel's learning pass.
type cluster struct {
	wave    []float32 // mean snippet, µV
	count   int
	peak    float32 // |wave| at the aligned extremum
	members []int   // rows of the aligned snippets
}

// absorb merges o into c: the count-weighted mean waveform, the members,
// and the peak at sample pre.
func (c *cluster) absorb(o *cluster, pre int) {
	nc, no := float32(c.count), float32(o.count)
	for t := range c.wave {
		c.wave[t] = (nc*c.wave[t] + no*o.wave[t]) / (nc + no)
	}
	c.count += o.count
	c.members = append(c.members, o.members...)
	c.peak = float32(math.Abs(float64(c.wave[pre])))
}

// shapeCorr returns the correlation of two templates, the largest over
// alignments within one sample.
func shapeCorr(a, b []float32) float64 {
	best := -1.0
	for shift := -1; shift <= 1; shift++ {
		if ab, aa, bb := shiftedDots(a, b, shift); aa > 0 && bb > 0 {
			best = max(best, ab/math.Sqrt(aa*bb))
		}
	}
	return best
}

// sameShape reports whether two templates have the same shape
// (correlation above 0.96, allowing a one-sample misalignment) and
// amplitudes within the matcher's scaling range.
func sameShape(a, b []float32) bool {
	for shift := -1; shift <= 1; shift++ {
		ab, aa, bb := shiftedDots(a, b, shift)
		if aa == 0 || bb == 0 {
			continue
		}
		ratio := math.Sqrt(aa / bb)
		if ab/math.Sqrt(aa*bb) > sameShapeCorr && ratio > minScale && ratio < maxScale {
			return true
		}
	}
	return false
}

// shiftedDots returns a·b, a·a and b·b over the overlap of a and b shifted
// by shift samples (a[i] against b[i+shift]).
func shiftedDots(a, b []float32, shift int) (ab, aa, bb float64) {
	for i := max(0, -shift); i < len(a) && i+shift < len(b); i++ {
		x, y := float64(a[i]), float64(b[i+shift])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	return ab, aa, bb
}
