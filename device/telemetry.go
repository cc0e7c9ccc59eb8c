package device

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Mode is what a headstage streams (OpSetMode; docs/protocol.md,
// "Modes").
type Mode uint8

// Modes.
const (
	ModeRaw        Mode = 0 // data frames: int16 samples
	ModeCompressed Mode = 1 // compressed frames: the same samples, lossless
	ModeSpikes     Mode = 2 // spike frames: events detected on the device, with snippets
	ModeFeatures   Mode = 3 // feature frames: threshold crossings and spike-band power per bin
)

var modeNames = [...]string{ModeRaw: "raw", ModeCompressed: "lossless", ModeSpikes: "spikes", ModeFeatures: "features"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "raw", "lossless" (or "compressed"), "spikes" and
// "features".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "raw":
		return ModeRaw, nil
	case "lossless", "compressed":
		return ModeCompressed, nil
	case "spikes":
		return ModeSpikes, nil
	case "features":
		return ModeFeatures, nil
	}
	return 0, fmt.Errorf("device: unknown mode %q (want raw, lossless, spikes or features)", s)
}

// SpikeEvent is one spike a headstage detected (spike-event mode).
type SpikeEvent struct {
	Sample  uint64 // device sample index of the extremum
	Channel int    // channel (position in the stream), 0-based
	// Shift scales the snippet: sample i of the band-passed signal, in
	// counts, is int(Snippet[i]) << Shift.
	Shift   uint8
	Snippet []int8 // Pre+1+Post samples around the extremum; nil without snippets
}

// Spikes are the spike events of one spike frame.
type Spikes struct {
	// Pre and Post are the snippet's samples before and after the
	// extremum; the device sends an event once Post samples after its
	// extremum have passed, so the events of a frame covering
	// [Counter, Counter+Span) are every event whose extremum is before
	// Counter+Span-Post and at or after the previous frame's such point.
	Pre, Post int
	Snippets  bool // events carry snippets
	Events    []SpikeEvent
}

// Features are the features of one feature frame: per bin and channel,
// the spike-band power and the threshold crossings at Levels thresholds.
type Features struct {
	BinSamples int // samples per bin; bins start at multiples of it
	Levels     int // threshold levels counted (1..MaxLevels)
	CountBits  int // bits per count (2, 4 or 8): counts saturate at 2^CountBits-1
	Channels   int
	// Power holds bins × channels codes of the mean square of the
	// band-passed signal (PowerValue); Counts bins × Levels × channels
	// crossing counts.
	Power  []uint8
	Counts []uint8
}

// Bins returns the number of bins.
func (f *Features) Bins() int {
	if f.Channels == 0 {
		return 0
	}
	return len(f.Power) / f.Channels
}

// Count returns the crossings of channel ch at threshold level l in bin b.
func (f *Features) Count(b, l, ch int) int {
	return int(f.Counts[(b*f.Levels+l)*f.Channels+ch])
}

// validCountBits reports whether n bits per crossing count are allowed.
func validCountBits(n int) bool { return n == 2 || n == 4 || n == 8 }

// MaxLevels is the most threshold levels a device counts.
const MaxLevels = 4

// PowerCode codes a mean square (counts²) as the 8-bit power of a
// feature frame: values below 16 as themselves, larger ones as a float
// with a 4-bit exponent e and a 4-bit mantissa m, code = 16·e + m for
// v in [(16+m)·2^(e-1), (17+m)·2^(e-1)); 255 also stands for everything
// from 31·2^14 up. Steps are 3–6 % of the value.
func PowerCode(v uint64) uint8 {
	if v < 16 {
		return uint8(v)
	}
	e := bits.Len64(v) - 4
	if e > 15 {
		return 255
	}
	return uint8(e<<4 | int(v>>(e-1))&15)
}

// PowerValue returns the mean square (counts²) a power code stands for:
// the middle of its interval (the value itself below 16).
func PowerValue(code uint8) float64 {
	if code < 16 {
		return float64(code)
	}
	e := int(code >> 4)
	m := float64(code & 15)
	return (16 + m + 0.5) * math.Ldexp(1, e-1)
}

// Settings are a device's detector settings as a settings frame reports
// them (docs/protocol.md, "Settings frames").
type Settings struct {
	// From is the device sample index from which they apply: a settings
	// frame's counter (AppendSettings takes it apart).
	From       uint64
	Mode       Mode
	Filter     int // shift of the detection filter's high-pass poles (Detector)
	Pre, Post  int // snippet samples before and after the extremum
	Align      int // samples after a crossing searched for the extremum
	Dead       int // samples after an extremum before the channel detects again
	Snippets   bool
	BinSamples int // samples per feature bin
	Levels     int // threshold levels counted in features (1..MaxLevels)
	CountBits  int // bits per feature count, 2, 4 or 8
	// Thresholds[l][c] is channel c's threshold at level l in counts of
	// the band-passed signal: negative, a trough below it; positive, a
	// peak above it; 0, off. Level 0 is also spike detection's.
	Thresholds [][]int16
	// SigmaTenths[l] is what the host said level l's thresholds stand
	// for, in tenths of each channel's noise σ (45: 4.5 σ; 0: not said):
	// a receiver gets the noise back from the thresholds.
	SigmaTenths [MaxLevels]uint8
}

// settingsFixed is the size of a settings payload before the thresholds.
const settingsFixed = 16

// appendSettings appends the payload of a settings frame.
func appendSettings(dst []byte, s *Settings) []byte {
	var flags byte
	if s.Snippets {
		flags = 1
	}
	dst = append(dst, byte(s.Mode), byte(s.Filter), byte(s.Pre), byte(s.Post), byte(s.Align), flags)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(s.Dead))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(s.BinSamples))
	dst = append(dst, byte(s.Levels), byte(s.CountBits))
	dst = append(dst, s.SigmaTenths[:]...)
	for _, l := range s.Thresholds {
		for _, t := range l {
			dst = binary.LittleEndian.AppendUint16(dst, uint16(t))
		}
	}
	return dst
}

// AppendSettings appends a settings frame (type 7) to dst: the device's
// detector settings for its channels channels, effective from sample
// counter. It panics if the thresholds are not Levels × channels.
func AppendSettings(dst []byte, counter uint64, rate uint32, gain float32, channels int, s *Settings) []byte {
	if len(s.Thresholds) != s.Levels || channels <= 0 || channels > math.MaxUint16 {
		panic(fmt.Sprintf("device.AppendSettings: %d threshold levels for %d levels of %d channels", len(s.Thresholds), s.Levels, channels))
	}
	for _, l := range s.Thresholds {
		if len(l) != channels {
			panic(fmt.Sprintf("device.AppendSettings: %d thresholds for %d channels", len(l), channels))
		}
	}
	dst, start := grow(dst, HeaderSize)
	dst = appendSettings(dst, s)
	putHeaderV(dst[start:], ProtocolVersion2, FrameSettings, 0, len(dst)-start-HeaderSize, channels, 0, rate, gain, counter)
	return appendTrailer(dst, start)
}

func parseSettings(p []byte, channels int) (*Settings, error) {
	if len(p) < settingsFixed {
		return nil, fmt.Errorf("settings payload of %d bytes, want at least %d", len(p), settingsFixed)
	}
	le := binary.LittleEndian
	s := &Settings{Mode: Mode(p[0]), Filter: int(p[1]), Pre: int(p[2]), Post: int(p[3]), Align: int(p[4]),
		Snippets: p[5]&1 != 0, Dead: int(le.Uint16(p[6:])), BinSamples: int(le.Uint16(p[8:])),
		Levels: int(p[10]), CountBits: int(p[11])}
	copy(s.SigmaTenths[:], p[12:16])
	if err := s.check(); err != nil {
		return nil, err
	}
	if want := settingsFixed + 2*s.Levels*channels; len(p) != want {
		return nil, fmt.Errorf("settings payload of %d bytes for %d levels of %d channels, want %d", len(p), s.Levels, channels, want)
	}
	q := p[settingsFixed:]
	s.Thresholds = make([][]int16, s.Levels)
	for l := range s.Thresholds {
		t := make([]int16, channels)
		for c := range t {
			t[c] = int16(le.Uint16(q[2*(l*channels+c):]))
		}
		s.Thresholds[l] = t
	}
	return s, nil
}

// check reports the first impossible field of s (thresholds aside).
func (s *Settings) check() error {
	switch {
	case s.Mode > ModeFeatures:
		return fmt.Errorf("settings with mode %d", s.Mode)
	case s.Filter < 1 || s.Filter > maxFilterShift:
		return fmt.Errorf("settings with filter shift %d, want 1..%d", s.Filter, maxFilterShift)
	case s.Pre > MaxSnippetSide || s.Post > MaxSnippetSide || s.Post < 1:
		return fmt.Errorf("settings with snippets of %d+1+%d samples, want post 1..%d and pre 0..%d", s.Pre, s.Post, MaxSnippetSide, MaxSnippetSide)
	case s.Align > s.Post:
		return fmt.Errorf("settings with alignment %d beyond post %d", s.Align, s.Post)
	case s.Dead < 1:
		return fmt.Errorf("settings with dead time %d samples, want >= 1", s.Dead)
	case s.BinSamples < 1:
		return fmt.Errorf("settings with %d samples per bin", s.BinSamples)
	case s.Levels < 1 || s.Levels > MaxLevels:
		return fmt.Errorf("settings with %d threshold levels, want 1..%d", s.Levels, MaxLevels)
	case !validCountBits(s.CountBits):
		return fmt.Errorf("settings with %d bits per count, want 2, 4 or 8", s.CountBits)
	}
	return nil
}

// Clone returns a deep copy of s.
func (s *Settings) Clone() *Settings {
	c := *s
	c.Thresholds = make([][]int16, len(s.Thresholds))
	for i, t := range s.Thresholds {
		c.Thresholds[i] = slices.Clone(t)
	}
	return &c
}

// Spike frame payload layout.
const (
	spikesFixed = 8 // u16 events, u8 pre, u8 post, u8 flags, 3 reserved
	eventFixed  = 4 // u16 channel, i16 offset of the extremum from the frame's counter
)

// MaxSnippetSide bounds a snippet's samples before or after its extremum.
const MaxSnippetSide = 127

// AppendSpikes appends a spike frame (type 5) covering span samples per
// channel from counter: the events completed in that span (see Spikes).
// Each event's Sample must lie in [counter-32768, counter+32767] and its
// snippet (if sp.Snippets) have Pre+1+Post samples; AppendSpikes panics
// otherwise, and if the payload would exceed MaxPayload.
func AppendSpikes(dst []byte, counter uint64, span int, rate uint32, gain float32, channels int, sp *Spikes, flags uint16) []byte {
	if channels <= 0 || channels > math.MaxUint16 || span < 1 || span > math.MaxUint16 || len(sp.Events) > math.MaxUint16 {
		panic(fmt.Sprintf("device.AppendSpikes: %d events over %d samples of %d channels", len(sp.Events), span, channels))
	}
	dst, start := grow(dst, HeaderSize)
	var f byte
	if sp.Snippets {
		f = 1
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(sp.Events)))
	dst = append(dst, byte(sp.Pre), byte(sp.Post), f, 0, 0, 0)
	L := sp.Pre + 1 + sp.Post
	for _, e := range sp.Events {
		off := int64(e.Sample) - int64(counter)
		if off < math.MinInt16 || off > math.MaxInt16 || e.Channel < 0 || e.Channel >= channels || (sp.Snippets && len(e.Snippet) != L) {
			panic(fmt.Sprintf("device.AppendSpikes: event on channel %d at sample %d (%d snippet samples) in a frame from %d", e.Channel, e.Sample, len(e.Snippet), counter))
		}
		dst = binary.LittleEndian.AppendUint16(dst, uint16(e.Channel))
		dst = binary.LittleEndian.AppendUint16(dst, uint16(int16(off)))
		if sp.Snippets {
			dst = append(dst, e.Shift)
			for _, v := range e.Snippet {
				dst = append(dst, byte(v))
			}
		}
	}
	if n := len(dst) - start - HeaderSize; n > MaxPayload {
		panic(fmt.Sprintf("device.AppendSpikes: payload of %d bytes exceeds %d", n, MaxPayload))
	}
	putHeaderV(dst[start:], ProtocolVersion2, FrameSpikes, flags, len(dst)-start-HeaderSize, channels, span, rate, gain, counter)
	return appendTrailer(dst, start)
}

func parseSpikes(p []byte, channels, span int, counter uint64) (*Spikes, error) {
	if len(p) < spikesFixed {
		return nil, fmt.Errorf("spike payload of %d bytes, want at least %d", len(p), spikesFixed)
	}
	le := binary.LittleEndian
	m := int(le.Uint16(p))
	sp := &Spikes{Pre: int(p[2]), Post: int(p[3]), Snippets: p[4]&1 != 0}
	if sp.Pre > MaxSnippetSide || sp.Post > MaxSnippetSide || sp.Post < 1 {
		return nil, fmt.Errorf("spike frame with snippets of %d+1+%d samples, want post 1..%d and pre 0..%d", sp.Pre, sp.Post, MaxSnippetSide, MaxSnippetSide)
	}
	size := eventFixed
	L := 0
	if sp.Snippets {
		L = sp.Pre + 1 + sp.Post
		size += 1 + L
	}
	if want := spikesFixed + m*size; len(p) != want {
		return nil, fmt.Errorf("spike payload of %d bytes for %d events of %d bytes, want %d", len(p), m, size, want)
	}
	sp.Events = make([]SpikeEvent, m)
	var snips []int8
	if L > 0 {
		snips = make([]int8, m*L)
	}
	q := p[spikesFixed:]
	for i := range sp.Events {
		r := q[i*size : (i+1)*size]
		ch := int(le.Uint16(r))
		off := int64(int16(le.Uint16(r[2:])))
		s := int64(counter) + off
		switch {
		case ch >= channels:
			return nil, fmt.Errorf("spike event %d on channel %d of %d", i, ch, channels)
		case s < 0:
			return nil, fmt.Errorf("spike event %d at offset %d before sample 0", i, off)
		case off+int64(sp.Post) >= int64(span):
			return nil, fmt.Errorf("spike event %d at offset %d completes after the frame's %d samples", i, off, span)
		}
		e := &sp.Events[i]
		e.Channel, e.Sample = ch, uint64(s)
		if L > 0 {
			e.Shift = r[4]
			if e.Shift > 15 {
				return nil, fmt.Errorf("spike event %d with snippet shift %d, want 0..15", i, e.Shift)
			}
			e.Snippet = snips[i*L : (i+1)*L : (i+1)*L]
			for k, b := range r[5 : 5+L] {
				e.Snippet[k] = int8(b)
			}
		}
	}
	return sp, nil
}

// Feature frame payload layout.
const featuresFixed = 8 // u16 bin samples, u8 levels, u8 count bits, 4 reserved

// featureBinBytes returns the bytes of one bin of a feature payload.
func featureBinBytes(channels, levels, countBits int) int {
	return channels + (levels*channels*countBits+7)/8
}

// AppendFeatures appends a feature frame (type 6) whose bins start at
// counter (a multiple of f.BinSamples). It panics if f is inconsistent
// or the payload would exceed MaxPayload.
func AppendFeatures(dst []byte, counter uint64, rate uint32, gain float32, f *Features, flags uint16) []byte {
	nb := f.Bins()
	span := nb * f.BinSamples
	if f.Channels <= 0 || f.Channels > math.MaxUint16 || nb < 1 || span > math.MaxUint16 || len(f.Counts) != nb*f.Levels*f.Channels ||
		f.Levels < 1 || f.Levels > MaxLevels || !validCountBits(f.CountBits) {
		panic(fmt.Sprintf("device.AppendFeatures: %d bins of %d samples, %d channels, %d levels of %d-bit counts (%d counts)",
			nb, f.BinSamples, f.Channels, f.Levels, f.CountBits, len(f.Counts)))
	}
	dst, start := grow(dst, HeaderSize)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(f.BinSamples))
	dst = append(dst, byte(f.Levels), byte(f.CountBits), 0, 0, 0, 0)
	C := f.Channels
	top := 1<<f.CountBits - 1
	for b := range nb {
		dst = append(dst, f.Power[b*C:(b+1)*C]...)
		var w bitWriter
		w.buf = dst
		for _, c := range f.Counts[b*f.Levels*C : (b+1)*f.Levels*C] {
			w.write(uint64(min(int(c), top)), uint(f.CountBits))
		}
		dst = w.flush()
	}
	if n := len(dst) - start - HeaderSize; n > MaxPayload {
		panic(fmt.Sprintf("device.AppendFeatures: payload of %d bytes exceeds %d", n, MaxPayload))
	}
	putHeaderV(dst[start:], ProtocolVersion2, FrameFeatures, flags, len(dst)-start-HeaderSize, C, span, rate, gain, counter)
	return appendTrailer(dst, start)
}

func parseFeatures(p []byte, channels, span int, counter uint64) (*Features, error) {
	if len(p) < featuresFixed {
		return nil, fmt.Errorf("feature payload of %d bytes, want at least %d", len(p), featuresFixed)
	}
	le := binary.LittleEndian
	f := &Features{BinSamples: int(le.Uint16(p)), Levels: int(p[2]), CountBits: int(p[3]), Channels: channels}
	switch {
	case f.BinSamples < 1 || span%f.BinSamples != 0:
		return nil, fmt.Errorf("feature frame of %d samples in bins of %d", span, f.BinSamples)
	case counter%uint64(f.BinSamples) != 0:
		return nil, fmt.Errorf("feature frame starting at sample %d, not a multiple of its %d-sample bins", counter, f.BinSamples)
	case f.Levels < 1 || f.Levels > MaxLevels:
		return nil, fmt.Errorf("feature frame with %d threshold levels, want 1..%d", f.Levels, MaxLevels)
	case !validCountBits(f.CountBits):
		return nil, fmt.Errorf("feature frame with %d bits per count, want 2, 4 or 8", f.CountBits)
	}
	nb := span / f.BinSamples
	per := featureBinBytes(channels, f.Levels, f.CountBits)
	if want := featuresFixed + nb*per; len(p) != want {
		return nil, fmt.Errorf("feature payload of %d bytes for %d bins of %d channels, want %d", len(p), nb, channels, want)
	}
	q := p[featuresFixed:]
	f.Power = make([]uint8, nb*channels)
	f.Counts = make([]uint8, nb*f.Levels*channels)
	for b := range nb {
		r := q[b*per : (b+1)*per]
		copy(f.Power[b*channels:], r[:channels])
		br := newBitReader(r[channels:])
		cs := f.Counts[b*f.Levels*channels : (b+1)*f.Levels*channels]
		for i := range cs {
			cs[i] = uint8(br.read(uint(f.CountBits)))
		}
		if err := br.end(); err != nil {
			return nil, fmt.Errorf("feature bin %d: %w", b, err)
		}
	}
	return f, nil
}
