package device

import (
	"fmt"
	"math"
	"slices"
)

// Detector is the on-device spike detector and feature extractor of
// spike-event and feature modes (docs/protocol.md, "On-device
// detection"). It is integer arithmetic throughout, written so that a
// small microcontroller runs it (testdata/c/headstage.c is the same
// algorithm in C99, checked bit for bit against this one), and so that
// the host can run it too: the simulator's emulator and `spikeline
// encode` use it to produce what a device in those modes sends.
//
// Per channel, each sample x (int16 counts) is band-passed:
//
//	xs = x << 8                       (Q8)
//	l1 += (xs - l1) >> k;  h1 = xs - l1
//	l2 += (h1 - l2) >> k;  h2 = h1 - l2
//	y  = clamp16((h2 + h2prev) >> 9)  (the mean of two samples, in counts)
//
// two one-pole high-passes (poles at about 2^-k·rate/2π; k from the
// rate, Settings.Filter) and a two-sample mean (a zero at Nyquist), with
// flooring shifts. At the first sample of a run l1 = xs, l2 = h2prev = 0.
//
// Detection on threshold level 0 (T < 0: troughs below T; T > 0: peaks
// above T; 0: off): a sample beyond T at or after the channel's
// dead-until time starts a search of Align samples for the extremum;
// once Post samples after the extremum e have passed (Align <= Post),
// the event is emitted with the snippet y[e-Pre..e+Post] and the
// channel detects again from e+Dead.
//
// Features, per bin of BinSamples samples aligned to multiples of
// BinSamples on the device counter: the mean of y² (integer division),
// coded by PowerCode, and at each level l the crossings: a sample beyond
// T_l whose predecessor was not, at or after the level's dead-until
// time, which becomes t+Dead. A bin the stream did not cover whole (the
// first after a start or a gap) is dropped.
type Detector struct {
	s        Settings
	channels int
	ring     int // ring length (power of two)

	started bool
	next    uint64 // device index expected next
	binFrom uint64 // first sample of the open bin
	binOK   bool   // the open bin started at its boundary

	l1, l2, hp []int32
	y          []int16 // ring of y per channel: channel c at [c*ring:(c+1)*ring]
	prev       []int16 // last y per channel
	state      []uint8 // 0 idle, 1 searching, 2 waiting
	ext        []uint64
	extv       []int16
	search     []uint64 // end of the search
	dead       []uint64
	cnext      []uint64 // per level and channel: dead-until of crossing counts
	sumsq      []uint64
	counts     []uint8

	events   []SpikeEvent
	snips    []int8
	bins     Features // closed bins not yet taken
	binStart []uint64 // first sample of each of them
}

// Detector constants.
const (
	maxFilterShift = 15
	detectRing     = 256 // > 2·MaxSnippetSide+1
)

// FilterShift returns the shift k of the detection filter's high-pass
// poles at rate Hz: the smallest k >= 1 with rate >> k < 1714, which puts
// each pole at 136–273 Hz and the pair's -3 dB corner at 210–420 Hz
// (232 Hz at 30 kHz).
func FilterShift(rate uint32) int {
	k := 1
	for k < maxFilterShift && rate>>k >= 1714 {
		k++
	}
	return k
}

// DefaultSettings returns the settings a device starts with at rate Hz
// for channels channels: raw mode, snippets of 0.5 ms before and 1 ms
// after the extremum (Pre rate/2000, Post rate/1000), a 0.4 ms search for
// the extremum, 1 ms dead time, 20 ms feature bins, one threshold level
// with 4-bit counts, every threshold off.
func DefaultSettings(rate uint32, channels int) *Settings {
	s := &Settings{
		Mode:       ModeRaw,
		Filter:     FilterShift(rate),
		Pre:        int(min(rate/2000, MaxSnippetSide)),
		Post:       int(max(1, min(rate/1000, MaxSnippetSide))),
		Align:      int(min(rate/2500, MaxSnippetSide)),
		Snippets:   true,
		BinSamples: int(max(1, min(rate/50, math.MaxUint16))),
		Levels:     1,
		CountBits:  4,
		Thresholds: [][]int16{make([]int16, channels)},
	}
	s.Align = min(s.Align, s.Post)
	s.Dead = int(max(uint32(s.Post), rate/1000, 1))
	return s
}

// NewDetector returns a Detector with settings s for channels channels.
func NewDetector(s *Settings, channels int) (*Detector, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("device: detector: %w", err)
	}
	if channels < 1 || channels > MaxChannels {
		return nil, fmt.Errorf("device: detector: %w", CheckChannels("detector", "channels", channels))
	}
	if len(s.Thresholds) != s.Levels {
		return nil, fmt.Errorf("device: detector: %d threshold levels, want %d", len(s.Thresholds), s.Levels)
	}
	for l, t := range s.Thresholds {
		if len(t) != channels {
			return nil, fmt.Errorf("device: detector: level %d has %d thresholds for %d channels", l, len(t), channels)
		}
	}
	if s.Dead < s.Post {
		return nil, fmt.Errorf("device: detector: dead time %d shorter than post %d", s.Dead, s.Post)
	}
	d := &Detector{s: *s.Clone(), channels: channels, ring: detectRing}
	C := channels
	d.l1, d.l2, d.hp = make([]int32, C), make([]int32, C), make([]int32, C)
	d.y = make([]int16, C*d.ring)
	d.prev = make([]int16, C)
	d.state = make([]uint8, C)
	d.ext, d.search, d.dead = make([]uint64, C), make([]uint64, C), make([]uint64, C)
	d.extv = make([]int16, C)
	d.cnext = make([]uint64, s.Levels*C)
	d.sumsq = make([]uint64, C)
	d.counts = make([]uint8, s.Levels*C)
	d.bins = Features{BinSamples: s.BinSamples, Levels: s.Levels, CountBits: s.CountBits, Channels: C}
	return d, nil
}

// Settings returns the Detector's settings.
func (d *Detector) Settings() *Settings { return d.s.Clone() }

// restart forgets the signal: the next sample starts a run.
func (d *Detector) restart() {
	d.started = false
	clear(d.state)
	clear(d.y)
	clear(d.prev)
	clear(d.sumsq)
	clear(d.counts)
	clear(d.dead)
	clear(d.cnext)
}

// Push runs the detector over samples (time-major, the Detector's
// channels wide) whose first sample has device index first. A first that
// does not continue the previous Push (a gap, a reset) restarts the
// filter, detection and the open bin: nothing is joined across it.
func (d *Detector) Push(first uint64, samples []int16) {
	C := d.channels
	n := len(samples) / C
	if d.started && first != d.next {
		d.restart()
	}
	if n == 0 {
		return
	}
	if !d.started {
		d.started = true
		for c := range C {
			d.l1[c] = int32(samples[c]) << 8
			d.l2[c], d.hp[c] = 0, 0
		}
		d.binFrom = first
		d.binOK = first%uint64(d.s.BinSamples) == 0
	}
	d.next = first + uint64(n)
	k := uint(d.s.Filter)
	mask := uint64(d.ring - 1)
	B := uint64(d.s.BinSamples)
	L := d.s.Levels
	thr0 := d.s.Thresholds[0]
	for i := range n {
		t := first + uint64(i)
		row := samples[i*C : (i+1)*C]
		for c, x := range row {
			xs := int32(x) << 8
			d.l1[c] += (xs - d.l1[c]) >> k
			h1 := xs - d.l1[c]
			d.l2[c] += (h1 - d.l2[c]) >> k
			h2 := h1 - d.l2[c]
			y := int16(min(max((h2+d.hp[c])>>9, math.MinInt16), math.MaxInt16))
			d.hp[c] = h2
			d.y[c*d.ring+int(t&mask)] = y
			yy := int64(y)
			d.sumsq[c] += uint64(yy * yy)
			p := d.prev[c]
			d.prev[c] = y
			for l := range L {
				T := d.s.Thresholds[l][c]
				if T != 0 && beyond(y, T) && !beyond(p, T) && t >= d.cnext[l*C+c] {
					if d.counts[l*C+c] < 255 {
						d.counts[l*C+c]++
					}
					d.cnext[l*C+c] = t + uint64(d.s.Dead)
				}
			}
			T := thr0[c]
			if T == 0 {
				continue
			}
			switch d.state[c] {
			case 0:
				if t >= d.dead[c] && beyond(y, T) {
					d.state[c], d.ext[c], d.extv[c], d.search[c] = 1, t, y, t+uint64(d.s.Align)
				}
			case 1:
				if (T < 0 && y < d.extv[c]) || (T > 0 && y > d.extv[c]) {
					d.ext[c], d.extv[c] = t, y
				}
			}
			if d.state[c] == 1 && t == d.search[c] {
				d.state[c] = 2
			}
			if d.state[c] == 2 && t == d.ext[c]+uint64(d.s.Post) {
				d.emit(c, d.ext[c])
				d.state[c] = 0
				d.dead[c] = d.ext[c] + uint64(d.s.Dead)
			}
		}
		if (t+1)%B == 0 {
			d.closeBin(t + 1)
		}
	}
}

func beyond(y, T int16) bool {
	if T < 0 {
		return y < T
	}
	return y > T
}

// emit records the event of channel c with extremum e.
func (d *Detector) emit(c int, e uint64) {
	ev := SpikeEvent{Sample: e, Channel: c}
	if d.s.Snippets {
		pre, post := d.s.Pre, d.s.Post
		mask := uint64(d.ring - 1)
		ring := d.y[c*d.ring : (c+1)*d.ring]
		lo, hi := int16(0), int16(0)
		for i := -pre; i <= post; i++ {
			v := ring[(e+uint64(int64(i)))&mask]
			lo, hi = min(lo, v), max(hi, v)
		}
		var s uint8
		for hi>>s > 127 || lo>>s < -128 {
			s++
		}
		ev.Shift = s
		start := len(d.snips)
		for i := -pre; i <= post; i++ {
			d.snips = append(d.snips, int8(ring[(e+uint64(int64(i)))&mask]>>s))
		}
		ev.Snippet = d.snips[start:len(d.snips):len(d.snips)]
	}
	d.events = append(d.events, ev)
}

// closeBin closes the bin ending at sample end.
func (d *Detector) closeBin(end uint64) {
	B := uint64(d.s.BinSamples)
	if d.binOK && end-d.binFrom == B {
		for _, v := range d.sumsq {
			d.bins.Power = append(d.bins.Power, PowerCode(v/B))
		}
		d.bins.Counts = append(d.bins.Counts, d.counts...)
		d.binStart = append(d.binStart, d.binFrom)
	}
	clear(d.sumsq)
	clear(d.counts)
	d.binFrom, d.binOK = end, true
}

// TakeEvents appends the events completed so far to dst, in the order
// they completed (by completion sample Sample+Post, then channel), and
// forgets them. The snippets are the caller's.
func (d *Detector) TakeEvents(dst []SpikeEvent) []SpikeEvent {
	dst = append(dst, d.events...)
	clear(d.events)
	d.events = d.events[:0]
	d.snips = nil
	return dst
}

// Bins returns the number of closed bins not yet taken.
func (d *Detector) Bins() int { return len(d.binStart) }

// TakeBins takes up to n closed bins (all if n <= 0) that follow each
// other without a gap, from the oldest, and returns the first one's
// start sample and the bins. With no closed bin it returns empty
// Features.
func (d *Detector) TakeBins(n int) (uint64, Features) {
	nb := len(d.binStart)
	if n <= 0 || n > nb {
		n = nb
	}
	B := uint64(d.s.BinSamples)
	for i := 1; i < n; i++ {
		if d.binStart[i] != d.binStart[0]+uint64(i)*B {
			n = i
			break
		}
	}
	C, L := d.channels, d.s.Levels
	f := d.bins
	f.Power = slices.Clone(d.bins.Power[:n*C])
	f.Counts = slices.Clone(d.bins.Counts[:n*L*C])
	if n == 0 {
		return 0, f
	}
	first := d.binStart[0]
	d.bins.Power = append(d.bins.Power[:0], d.bins.Power[n*C:]...)
	d.bins.Counts = append(d.bins.Counts[:0], d.bins.Counts[n*L*C:]...)
	d.binStart = append(d.binStart[:0], d.binStart[n:]...)
	return first, f
}

// Filter runs the detection filter over samples (time-major, channels
// wide) as the Detector does from the start of a run and returns y
// (time-major): what a host uses to choose thresholds.
func Filter(samples []int16, channels int, rate uint32) []int16 {
	k := uint(FilterShift(rate))
	n := len(samples) / channels
	out := make([]int16, len(samples))
	l1, l2, hp := make([]int32, channels), make([]int32, channels), make([]int32, channels)
	for c := range channels {
		if n > 0 {
			l1[c] = int32(samples[c]) << 8
		}
	}
	for i := range n {
		for c := range channels {
			xs := int32(samples[i*channels+c]) << 8
			l1[c] += (xs - l1[c]) >> k
			h1 := xs - l1[c]
			l2[c] += (h1 - l2[c]) >> k
			h2 := h1 - l2[c]
			out[i*channels+c] = int16(min(max((h2+hp[c])>>9, math.MinInt16), math.MaxInt16))
			hp[c] = h2
		}
	}
	return out
}

// Thresholds returns detection thresholds for a device: sigmas × the noise
// of each channel's detection-filtered signal (MAD/0.6745 of y over
// samples, time-major, channels wide), negative (troughs) when sigmas is
// negative, rounded away from zero; a flat channel gets 0 (off).
func Thresholds(samples []int16, channels int, rate uint32, sigmas float64) []int16 {
	y := Filter(samples, channels, rate)
	n := len(y) / channels
	out := make([]int16, channels)
	col := make([]float64, n)
	for c := range channels {
		for i := range n {
			col[i] = math.Abs(float64(y[i*channels+c]))
		}
		slices.Sort(col)
		if n == 0 {
			continue
		}
		sigma := col[n/2] / 0.6745
		t := math.Ceil(math.Abs(sigmas) * sigma)
		if t < 1 || sigma == 0 {
			continue
		}
		t = min(t, math.MaxInt16)
		if sigmas < 0 {
			t = -t
		}
		out[c] = int16(t)
	}
	return out
}
