package intan

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/spikeline/spikeline/device"
)

// Magic numbers of Intan data files (RHX: Engine/API/Hardware/rhxglobals.h).
const (
	MagicRHD = 0xc6912702
	MagicRHS = 0xd69127ac
)

// Signal types of the channel records. RHD files use 0..5; RHS files use
// 0 and 3..6, with 3 the analog inputs and 4 the analog outputs (DAC).
const (
	SignalAmplifier = 0
	SignalAux       = 1 // RHD: auxiliary input, sampled once in four
	SignalSupply    = 2 // RHD: supply voltage, once per data block
	SignalADC       = 3 // board analog input
	SignalDigIn     = 4 // RHD: digital input; RHS: analog output (DAC)
	SignalDigOut    = 5 // RHD: digital output; RHS: digital input
	SignalRHSDigOut = 6 // RHS: digital output
)

// Gain is the µV per count of amplifier samples in files and on the TCP
// waveform port: µV = 0.195 × (raw − 32768).
const Gain = 0.195

// ErrTruncated is wrapped when a file's data is not a whole number of
// data blocks.
var ErrTruncated = errors.New("truncated data block")

// ErrFormat is wrapped by every malformed-header error.
var ErrFormat = errors.New("not a valid Intan data file")

// Channel is one channel record of a file header.
type Channel struct {
	Port, PortPrefix       string // the signal group
	NativeName, CustomName string // "A-012", and the user's name for it
	NativeOrder            int
	CustomOrder            int
	SignalType             int
	Enabled                bool
	ChipChannel            int
	CommandStream          int // RHS only
	BoardStream            int
	TriggerMode            int
	TriggerThresholdUV     int
	TriggerChannel         int
	TriggerEdge            int
	ImpedanceOhms          float64
	ImpedancePhaseDeg      float64
}

// Header is the header of an .rhd or .rhs file (Intan's "data file
// formats" application notes, versions 1.0 to 3.x).
type Header struct {
	RHS          bool // an .rhs file (stimulation controller)
	Major, Minor int  // data file version
	SampleRate   float64
	DSPEnabled   bool
	// Amplifier bandwidth, as set (desired) and as achieved (actual), Hz.
	ActualDSPCutoff, ActualLowerBandwidth, ActualLowerSettleBandwidth, ActualUpperBandwidth     float64
	DesiredDSPCutoff, DesiredLowerBandwidth, DesiredLowerSettleBandwidth, DesiredUpperBandwidth float64
	// NotchHz is the software notch filter set during the recording (0:
	// none, 50 or 60). Intan RHX (files of version 3 and later) saved the
	// data with the notch applied; earlier software saved the data
	// unfiltered and Intan's readers apply the notch when loading:
	// NotchApplied says which. spikeline never applies it.
	NotchHz      float64
	NotchApplied bool
	// Impedance test frequencies, Hz.
	DesiredImpedanceHz, ActualImpedanceHz float64
	// RHS stimulation settings.
	AmpSettleMode, ChargeRecoveryMode                       int
	StimStepAmps, RecoveryCurrentLimitAmps, RecoveryTargetV float64
	Notes                                                   [3]string
	TempSensors                                             int // RHD: temperature sensor channels (one sample per block)
	BoardMode                                               int // evaluation board mode (scales the board ADC)
	ReferenceChannel                                        string
	DCAmplifierSaved                                        bool // RHS: low-gain DC amplifier data saved
	Channels                                                []Channel
	// Derived: the enabled channels of each type, samples per data block
	// (60 for RHD files before version 2.0, else 128), bytes per block,
	// the byte offset of the first block and the number of blocks.
	Amplifier       []Channel
	SamplesPerBlock int
	BlockBytes      int64
	DataOffset      int64
	Blocks          int64
	counts          [7]int
}

// TimestampSigned reports whether timestamps are int32 (version 1.2 and
// later, to allow negative pre-trigger times) rather than uint32.
func (h *Header) TimestampSigned() bool {
	return h.RHS || h.Major > 1 || h.Major == 1 && h.Minor >= 2
}

// Samples returns the samples per channel in the file.
func (h *Header) Samples() int64 { return h.Blocks * int64(h.SamplesPerBlock) }

// headerReader reads the little-endian fields of a header, remembering
// the first error and where it happened.
type headerReader struct {
	r    *bufio.Reader
	name string
	off  int64
	size int64 // file size
	err  error
}

func (r *headerReader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("intan: %s: byte %d: %w: %s", r.name, r.off, ErrFormat, fmt.Sprintf(format, a...))
	}
}

func (r *headerReader) bytes(n int) []byte {
	if r.err != nil {
		return make([]byte, n)
	}
	b := make([]byte, n)
	k, err := io.ReadFull(r.r, b)
	if err != nil {
		r.fail("the header ends after %d of %d bytes of a field (%v)", k, n, err)
	}
	r.off += int64(k)
	return b
}

func (r *headerReader) i16() int { return int(int16(binary.LittleEndian.Uint16(r.bytes(2)))) }
func (r *headerReader) u32() uint32 {
	return binary.LittleEndian.Uint32(r.bytes(4))
}
func (r *headerReader) f32() float64 { return float64(math.Float32frombits(r.u32())) }

// qstring reads a QString: a uint32 byte count (0xFFFFFFFF: null), then
// UTF-16LE code units.
func (r *headerReader) qstring(field string) string {
	n := r.u32()
	if r.err != nil || n == 0xFFFFFFFF {
		return ""
	}
	switch {
	case int64(n) > r.size-r.off:
		r.fail("%s: a string of %d bytes, but the file ends %d bytes on (the header is cut short, or this is not a string)", field, n, r.size-r.off)
		return ""
	case n%2 != 0 || n > 1<<16:
		r.fail("%s: a string of %d bytes, want an even number up to 65536", field, n)
		return ""
	}
	b := r.bytes(int(n))
	u := make([]uint16, n/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// ReadHeader reads the header of the .rhd or .rhs file f and checks that
// the data after it are a whole number of data blocks.
func ReadHeader(f *os.File, name string) (*Header, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("intan: %w", err)
	}
	r := &headerReader{r: bufio.NewReader(io.NewSectionReader(f, 0, fi.Size())), name: name, size: fi.Size()}
	h := &Header{}
	switch magic := r.u32(); {
	case r.err != nil:
		return nil, r.err
	case magic == MagicRHS:
		h.RHS = true
	case magic != MagicRHD:
		r.off = 0
		r.fail("magic number %#08x, want %#08x (.rhd) or %#08x (.rhs)", magic, MagicRHD, MagicRHS)
		return nil, r.err
	}
	h.Major, h.Minor = r.i16(), r.i16()
	if h.Major < 1 || h.Major > 3 {
		r.fail("data file version %d.%d: spikeline reads versions 1.0 to 3.x", h.Major, h.Minor)
	}
	v := func(major, minor int) bool { return h.Major > major || h.Major == major && h.Minor >= minor }
	h.SampleRate = r.f32()
	h.DSPEnabled = r.i16() != 0
	h.ActualDSPCutoff, h.ActualLowerBandwidth = r.f32(), r.f32()
	if h.RHS {
		h.ActualLowerSettleBandwidth = r.f32()
	}
	h.ActualUpperBandwidth = r.f32()
	h.DesiredDSPCutoff, h.DesiredLowerBandwidth = r.f32(), r.f32()
	if h.RHS {
		h.DesiredLowerSettleBandwidth = r.f32()
	}
	h.DesiredUpperBandwidth = r.f32()
	switch notch := r.i16(); notch {
	case 0:
	case 1:
		h.NotchHz = 50
	case 2:
		h.NotchHz = 60
	default:
		r.fail("notch filter mode %d, want 0 (none), 1 (50 Hz) or 2 (60 Hz)", notch)
	}
	h.NotchApplied = h.NotchHz > 0 && h.Major >= 3
	h.DesiredImpedanceHz, h.ActualImpedanceHz = r.f32(), r.f32()
	if h.RHS {
		h.AmpSettleMode, h.ChargeRecoveryMode = r.i16(), r.i16()
		h.StimStepAmps, h.RecoveryCurrentLimitAmps, h.RecoveryTargetV = r.f32(), r.f32(), r.f32()
	}
	for i := range h.Notes {
		h.Notes[i] = r.qstring(fmt.Sprintf("note %d", i+1))
	}
	if h.RHS {
		h.DCAmplifierSaved = r.i16() != 0
		h.BoardMode = r.i16()
		h.ReferenceChannel = r.qstring("reference channel")
	} else {
		if v(1, 1) {
			h.TempSensors = r.i16()
		}
		if v(1, 3) {
			h.BoardMode = r.i16()
		}
		if v(2, 0) {
			h.ReferenceChannel = r.qstring("reference channel")
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := device.CheckRate(name, "sample rate", h.SampleRate); err != nil {
		return nil, fmt.Errorf("intan: %w", err)
	}
	if h.TempSensors < 0 || h.TempSensors > 16 {
		r.fail("%d temperature sensors, want 0..16", h.TempSensors)
	}
	groups := r.i16()
	if groups < 0 || groups > 64 {
		r.fail("%d signal groups, want 0..64", groups)
	}
	for g := 0; g < groups && r.err == nil; g++ {
		port, prefix := r.qstring("signal group name"), r.qstring("signal group prefix")
		enabled, n, _ := r.i16() != 0, r.i16(), r.i16()
		if n < 0 {
			r.fail("signal group %q: %d channels", port, n)
		}
		// Intan's readers read the channel records of enabled groups
		// only (a port without a headstage has none).
		if !enabled || n <= 0 {
			continue
		}
		for range n {
			c := Channel{Port: port, PortPrefix: prefix}
			c.NativeName, c.CustomName = r.qstring("native channel name"), r.qstring("custom channel name")
			c.NativeOrder, c.CustomOrder, c.SignalType = r.i16(), r.i16(), r.i16()
			c.Enabled = r.i16() != 0
			c.ChipChannel = r.i16()
			if h.RHS {
				c.CommandStream = r.i16()
			}
			c.BoardStream = r.i16()
			c.TriggerMode, c.TriggerThresholdUV, c.TriggerChannel, c.TriggerEdge = r.i16(), r.i16(), r.i16(), r.i16()
			c.ImpedanceOhms, c.ImpedancePhaseDeg = r.f32(), r.f32()
			valid := c.SignalType >= 0 && c.SignalType <= 5 || h.RHS && c.SignalType == 6
			if h.RHS && (c.SignalType == SignalAux || c.SignalType == SignalSupply) {
				valid = false
			}
			if !valid && r.err == nil {
				r.fail("channel %q: signal type %d", c.NativeName, c.SignalType)
			}
			if r.err != nil {
				break
			}
			h.Channels = append(h.Channels, c)
			if c.Enabled {
				h.counts[c.SignalType]++
				if c.SignalType == SignalAmplifier {
					h.Amplifier = append(h.Amplifier, c)
				}
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	h.DataOffset = r.off
	if err := device.CheckInt(name, "amplifier channels", int64(len(h.Amplifier)), 0, device.MaxChannels, ""); err != nil {
		return nil, fmt.Errorf("intan: %w", err)
	}
	h.blockLayout()
	data := fi.Size() - h.DataOffset
	if rem := data % h.BlockBytes; rem != 0 {
		return nil, &device.FrameError{Name: name, Offset: h.DataOffset + data - rem,
			Reason: fmt.Sprintf("%d bytes after the %d-byte header are %d whole data blocks of %d bytes (%d samples of %s) and %d bytes of a truncated one",
				data, h.DataOffset, data/h.BlockBytes, h.BlockBytes, h.SamplesPerBlock, h.describe(), rem),
			Err: ErrTruncated}
	}
	h.Blocks = data / h.BlockBytes
	return h, nil
}

// blockLayout sets SamplesPerBlock and BlockBytes: per block, the
// timestamps, then each enabled signal type in the order Intan's readers
// read them (RHD: amplifier, aux (one sample in four), supply voltage
// (one per block), temperature (one per block), board ADC, digital in,
// digital out as one word each; RHS: amplifier, DC amplifier if saved,
// stimulation words (one per amplifier channel), ADC, DAC, digital in,
// digital out).
func (h *Header) blockLayout() {
	n := int64(128)
	if !h.RHS && h.Major < 2 {
		n = 60
	}
	h.SamplesPerBlock = int(n)
	c := h.counts
	b := 4 * n
	b += 2 * n * int64(c[SignalAmplifier])
	if h.RHS {
		if h.DCAmplifierSaved {
			b += 2 * n * int64(c[SignalAmplifier])
		}
		b += 2 * n * int64(c[SignalAmplifier]) // stimulation
		b += 2 * n * int64(c[3]+c[4])          // ADC, DAC
		if c[5] > 0 {
			b += 2 * n
		}
		if c[6] > 0 {
			b += 2 * n
		}
	} else {
		b += 2 * (n / 4) * int64(c[SignalAux])
		b += 2 * int64(c[SignalSupply])
		b += 2 * int64(h.TempSensors)
		b += 2 * n * int64(c[SignalADC])
		if c[SignalDigIn] > 0 {
			b += 2 * n
		}
		if c[SignalDigOut] > 0 {
			b += 2 * n
		}
	}
	h.BlockBytes = b
}

// describe names what a data block holds.
func (h *Header) describe() string {
	c := h.counts
	parts := []string{fmt.Sprintf("%d amplifier", c[SignalAmplifier])}
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	if h.RHS {
		if h.DCAmplifierSaved {
			add(c[SignalAmplifier], "DC amplifier")
		}
		add(c[3], "analog in")
		add(c[4], "analog out")
		add(min(c[5], 1), "digital in word")
		add(min(c[6], 1), "digital out word")
	} else {
		add(c[SignalAux], "aux")
		add(c[SignalSupply], "supply")
		add(h.TempSensors, "temperature")
		add(c[SignalADC], "ADC")
		add(min(c[SignalDigIn], 1), "digital in word")
		add(min(c[SignalDigOut], 1), "digital out word")
	}
	return strings.Join(parts, ", ") + " channels"
}

// FileConfig selects what OpenFile reads. The zero value reads every
// enabled amplifier channel.
type FileConfig struct {
	// Channels are the amplifier channels to read, indexes among the
	// enabled amplifier channels of the file (0-based); nil reads all.
	Channels []int
	// BlockSamples is the number of samples per channel per Block, rounded
	// up to whole data blocks (default: the data blocks in
	// device.DefaultBlockSamples samples). Blocks also end at gaps.
	BlockSamples int
	// Pace, if > 0, releases Blocks at Pace times real time.
	Pace float64
}

// FileSource is a device.Source reading the amplifier channels of an
// .rhd or .rhs file, as int16 counts of Gain µV. Timestamps are the
// device clock: a jump is a device.EventGap of exactly the samples
// missing, a step back a device.EventReset. Files whose timestamps start
// below 0 (pre-trigger data) are shifted to start at sample 0
// (TimestampOffset).
type FileSource struct {
	f      *os.File
	name   string
	h      *Header
	chans  []int
	blocks int64 // data blocks per read
	next   int64 // data block of the next sample
	off    int   // and its index in that block
	prev   int64 // last timestamp delivered
	shift  int64 // added to timestamps
	start  bool
	buf    []byte
	pacer  device.Pacer
}

// OpenFile opens an .rhd or .rhs file. The header and the size of the
// data are checked up front; an error names the file and byte offset.
func OpenFile(path string, cfg FileConfig) (*FileSource, error) {
	f, err := device.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("intan: %w", err)
	}
	h, err := ReadHeader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	if len(h.Amplifier) == 0 {
		f.Close()
		return nil, fmt.Errorf("intan: %s: no enabled amplifier channels", path)
	}
	s := &FileSource{f: f, name: path, h: h, prev: math.MinInt64}
	if cfg.Channels == nil {
		for i := range h.Amplifier {
			s.chans = append(s.chans, i)
		}
	} else {
		seen := map[int]bool{}
		for _, c := range cfg.Channels {
			if c < 0 || c >= len(h.Amplifier) || seen[c] {
				f.Close()
				return nil, fmt.Errorf("intan: %s: amplifier channel %d: the file has 0..%d, each chosen once", path, c, len(h.Amplifier)-1)
			}
			seen[c] = true
		}
		s.chans = append(s.chans, cfg.Channels...)
	}
	want := cfg.BlockSamples
	if want <= 0 {
		want = device.DefaultBlockSamples
	}
	s.blocks = int64(max(1, (want+h.SamplesPerBlock-1)/h.SamplesPerBlock))
	s.blocks = min(s.blocks, max(1, device.MaxBlockBytes/h.BlockBytes))
	if cfg.Pace < 0 {
		f.Close()
		return nil, fmt.Errorf("intan: pace %g, want >= 0", cfg.Pace)
	}
	s.pacer.Speed = cfg.Pace
	if h.Blocks > 0 {
		var ts [4]byte
		if _, err := f.ReadAt(ts[:], h.DataOffset); err != nil {
			f.Close()
			return nil, fmt.Errorf("intan: %s: %w", path, err)
		}
		if t0 := s.timestamp(ts[:]); t0 < 0 {
			s.shift = -t0
		}
	}
	return s, nil
}

func (s *FileSource) timestamp(p []byte) int64 {
	v := binary.LittleEndian.Uint32(p)
	if s.h.TimestampSigned() {
		return int64(int32(v))
	}
	return int64(v)
}

// Header returns the file's header.
func (s *FileSource) Header() *Header { return s.h }

// ChannelNames returns the native names of the channels read, in Block
// order.
func (s *FileSource) ChannelNames() []string {
	out := make([]string, len(s.chans))
	for i, c := range s.chans {
		out[i] = s.h.Amplifier[c].NativeName
	}
	return out
}

// TimestampOffset returns what is added to the file's timestamps to make
// the device sample index (non-zero when they start below 0).
func (s *FileSource) TimestampOffset() int64 { return s.shift }

// Next returns the next Block, io.EOF after the last one, or ctx.Err().
// Samples are converted from offset binary: count = raw − 32768.
func (s *FileSource) Next(ctx context.Context) (device.Block, error) {
	if err := ctx.Err(); err != nil {
		return device.Block{}, err
	}
	h := s.h
	if s.next >= h.Blocks {
		return device.Block{}, io.EOF
	}
	k := min(s.blocks, h.Blocks-s.next)
	size := int(k * h.BlockBytes)
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	buf := s.buf[:size]
	off := h.DataOffset + s.next*h.BlockBytes
	if got, err := s.f.ReadAt(buf, off); got < size {
		if err == nil || errors.Is(err, io.EOF) {
			err = device.ErrTruncated
		}
		return device.Block{}, &device.FrameError{Name: s.name, Offset: off + int64(got),
			Reason: fmt.Sprintf("read %d of %d bytes of data blocks %d..%d", got, size, s.next, s.next+k), Err: err}
	}
	N := h.SamplesPerBlock
	// ts returns the device sample index of sample j of the read, counted
	// from the cursor (data block s.next, sample s.off).
	ts := func(j int) int64 {
		j += s.off
		return s.timestamp(buf[int64(j/N)*h.BlockBytes+int64(4*(j%N)):]) + s.shift
	}
	avail := int(k)*N - s.off
	first := ts(0)
	n := 1
	for n < avail && ts(n) == first+int64(n) {
		n++
	}
	at := off + int64(4*s.off) // byte offset of the first timestamp
	if first < 0 {
		return device.Block{}, fmt.Errorf("intan: %s: byte %d: timestamp %d is before the file's first", s.name, at, first-s.shift)
	}
	var events []device.Event
	if s.start && first != s.prev+1 {
		if first > s.prev {
			events = append(events, device.Event{Kind: device.EventGap, Sample: uint64(first), Count: uint64(first - s.prev - 1), Offset: at,
				Detail: fmt.Sprintf("timestamps jump from %d to %d in %s", s.prev-s.shift, first-s.shift, s.name)})
		} else {
			events = append(events, device.Event{Kind: device.EventReset, Sample: uint64(first), Offset: at,
				Detail: fmt.Sprintf("timestamps go back from %d to %d in %s", s.prev-s.shift, first-s.shift, s.name)})
		}
	}
	C := len(s.chans)
	b := device.Block{First: uint64(first), Rate: h.SampleRate, Channels: C, Gain: Gain, Samples: make([]int16, n*C), Events: events}
	for t := range n {
		j := t + s.off
		amp := buf[int64(j/N)*h.BlockBytes+int64(4*N):] // amplifier data: channel-major within the block
		i := j % N
		row := b.Samples[t*C : t*C+C]
		for q, c := range s.chans {
			row[q] = int16(binary.LittleEndian.Uint16(amp[2*(c*N+i):]) ^ 0x8000)
		}
	}
	s.next += int64((s.off + n) / N)
	s.off = (s.off + n) % N
	s.prev = first + int64(n) - 1
	s.start = true
	if err := s.pacer.Wait(ctx, &b); err != nil {
		return device.Block{}, err
	}
	b.Received = time.Now()
	return b, nil
}

// Close closes the file.
func (s *FileSource) Close() error { return s.f.Close() }
