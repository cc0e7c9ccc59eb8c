package device

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// The spikeline wire protocol frames everything a headstage and a host say
// to each other: sample data from the device, commands from the host and
// replies from the device. docs/protocol.md is the normative description;
// the constants below are its byte-level summary.
//
// Every frame is
//
//	offset size field
//	0      4    sync word A5 5A C3 3C
//	4      1    protocol version (ProtocolVersion)
//	5      1    frame type (FrameType)
//	6      2    flags (uint16 LE)
//	8      4    payload length in bytes (uint32 LE), at most MaxPayload
//	12     2    channels (uint16 LE; data frames, else 0)
//	14     2    samples per channel in this frame (uint16 LE; data frames, else 0)
//	16     4    sample rate in Hz (uint32 LE; data frames, else 0)
//	20     4    gain in µV per count (float32 LE; data frames, else 0)
//	24     8    sample counter of the frame's first sample (uint64 LE; data frames, else 0)
//	32     4    header CRC-32C of bytes 0..31 (uint32 LE)
//	36     n    payload
//	36+n   4    frame CRC-32C of bytes 0..35+n (uint32 LE)
//
// All multi-byte fields are little-endian. Data payloads are int16 LE
// samples in time-major order (all channels of sample 0, then sample 1...).

// ProtocolVersion is the wire protocol version of data, command and reply
// frames. The Decoder also accepts ProtocolVersion2 (wire_v2.go).
const ProtocolVersion = 1

// Frame layout sizes and bounds.
const (
	HeaderSize    = 36                                    // header including the header CRC
	TrailerSize   = 4                                     // frame CRC
	FrameOverhead = HeaderSize + TrailerSize              // bytes per frame besides the payload
	MaxPayload    = 1 << 20                               // largest payload accepted, bytes
	MaxFrameSize  = HeaderSize + MaxPayload + TrailerSize // largest frame accepted, bytes
)

// Sync is the 4-byte word that starts every frame.
var Sync = [4]byte{0xA5, 0x5A, 0xC3, 0x3C}

// castagnoli is the CRC-32C table (polynomial 0x1EDC6F41, reflected
// 0x82F63B78, init and final XOR 0xFFFFFFFF) used for both frame checks.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FrameType says what a frame carries.
type FrameType uint8

// Frame types.
const (
	FrameData    FrameType = 1 // device → host: samples
	FrameCommand FrameType = 2 // host → device: a Command
	FrameReply   FrameType = 3 // device → host: a Reply to a Command
)

func (t FrameType) String() string {
	switch t {
	case FrameData:
		return "data"
	case FrameCommand:
		return "command"
	case FrameReply:
		return "reply"
	}
	if n := v2Name(t); n != "" {
		return n
	}
	return fmt.Sprintf("frame_type(%d)", uint8(t))
}

// Data frame flags. Bits not listed here are reserved: senders set them to
// zero and receivers pass them on untouched in Frame.Flags.
const (
	FlagOverflow  uint16 = 1 << 0 // the device dropped samples before this frame (its buffer overflowed)
	FlagStimulate uint16 = 1 << 1 // stimulation was active during this frame
	FlagClipped   uint16 = 1 << 2 // at least one sample in this frame hit the ADC rails
)

// Frame is one decoded frame. Which fields are set depends on Type.
type Frame struct {
	Type     FrameType
	Flags    uint16
	Channels int     // data frames: channels per sample
	Rate     uint32  // data frames: sample rate in Hz
	Gain     float32 // data frames: µV per count (0 if the device does not say)
	Counter  uint64  // data frames: device sample index of the frame's first sample
	Samples  []int16 // data and compressed frames: time-major, Channels*Len(); valid until the next Decoder.Next
	Command  Command // FrameCommand
	Reply    Reply   // FrameReply

	// Version 2 (wire_v2.go): spike and feature frames cover Span
	// samples per channel from Counter and carry no Samples.
	Span     int
	Spikes   *Spikes   // FrameSpikes
	Features *Features // FrameFeatures
	Settings *Settings // FrameSettings
}

// Len returns the number of samples per channel in a data frame.
func (f *Frame) Len() int {
	if f.Channels <= 0 {
		return 0
	}
	return len(f.Samples) / f.Channels
}

// FrameError is a framing problem at a byte offset of an input stream,
// such as a frame cut short by the end of a file.
type FrameError struct {
	Name   string // the input (file name), if known
	Offset int64  // byte offset in the input where the frame starts
	Reason string
	Err    error // underlying error (e.g. io.ErrUnexpectedEOF), may be nil
}

func (e *FrameError) Error() string {
	s := "device: "
	if e.Name != "" {
		s += e.Name + ": "
	}
	s += fmt.Sprintf("byte %d: %s", e.Offset, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FrameError) Unwrap() error { return e.Err }

// putHeader writes the 32 bytes of header before the header CRC and the
// header CRC itself into b[:HeaderSize].
func putHeader(b []byte, typ FrameType, flags uint16, payload int, channels, n int, rate uint32, gain float32, counter uint64) {
	_ = b[HeaderSize-1]
	copy(b[0:4], Sync[:])
	b[4] = ProtocolVersion
	b[5] = byte(typ)
	binary.LittleEndian.PutUint16(b[6:], flags)
	binary.LittleEndian.PutUint32(b[8:], uint32(payload))
	binary.LittleEndian.PutUint16(b[12:], uint16(channels))
	binary.LittleEndian.PutUint16(b[14:], uint16(n))
	binary.LittleEndian.PutUint32(b[16:], rate)
	binary.LittleEndian.PutUint32(b[20:], math.Float32bits(gain))
	binary.LittleEndian.PutUint64(b[24:], counter)
	binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
}

// grow extends dst by n bytes and returns the extended slice and the
// index where the new bytes start.
func grow(dst []byte, n int) ([]byte, int) {
	off := len(dst)
	if cap(dst)-off < n {
		nb := make([]byte, off, off+n+off/4)
		copy(nb, dst)
		dst = nb
	}
	return dst[:off+n], off
}

// appendTrailer appends the frame CRC of dst[start:] to dst.
func appendTrailer(dst []byte, start int) []byte {
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// AppendData appends one data frame to dst and returns the extended slice.
// counter is the device sample index of the first sample, samples holds
// channels*n int16 counts in time-major order. It panics if channels is
// not in 1..65535, len(samples) is not a positive multiple of channels,
// n exceeds 65535 or the payload exceeds MaxPayload: those are programming
// errors of the sender.
func AppendData(dst []byte, counter uint64, rate uint32, gain float32, channels int, samples []int16, flags uint16) []byte {
	if channels <= 0 || channels > math.MaxUint16 || len(samples) == 0 || len(samples)%channels != 0 {
		panic(fmt.Sprintf("device.AppendData: %d samples for %d channels", len(samples), channels))
	}
	n := len(samples) / channels
	payload := 2 * len(samples)
	if n > math.MaxUint16 || payload > MaxPayload {
		panic(fmt.Sprintf("device.AppendData: frame of %d channels x %d samples exceeds the protocol's bounds", channels, n))
	}
	dst, start := grow(dst, HeaderSize+payload)
	b := dst[start:]
	putHeader(b, FrameData, flags, payload, channels, n, rate, gain, counter)
	p := b[HeaderSize : HeaderSize+payload]
	encodeInt16(p, samples)
	return appendTrailer(dst, start)
}

// AppendCommand appends one command frame carrying c to dst.
func AppendCommand(dst []byte, c Command) []byte {
	size := c.payloadSize()
	dst, start := grow(dst, HeaderSize+size)
	putHeader(dst[start:], FrameCommand, 0, size, 0, 0, 0, 0, 0)
	c.put(dst[start+HeaderSize:])
	return appendTrailer(dst, start)
}

// AppendReply appends one reply frame carrying r to dst. Invalid UTF-8 in
// the Message is replaced by U+FFFD, and a Message longer than MaxMessage
// bytes is cut to at most MaxMessage at a character boundary.
func AppendReply(dst []byte, r Reply) []byte {
	if !utf8.ValidString(r.Message) {
		r.Message = strings.ToValidUTF8(r.Message, "\uFFFD")
	}
	if len(r.Message) > MaxMessage {
		n := MaxMessage
		for n > 0 && !utf8.RuneStart(r.Message[n]) {
			n--
		}
		r.Message = r.Message[:n]
	}
	size := replyFixed + len(r.Message)
	dst, start := grow(dst, HeaderSize+size)
	putHeader(dst[start:], FrameReply, 0, size, 0, 0, 0, 0, 0)
	r.put(dst[start+HeaderSize:])
	return appendTrailer(dst, start)
}

// Encoder writes wire-protocol frames to an io.Writer, one Write per frame.
// It reuses one buffer, so encoding does not allocate once the buffer has
// grown to the largest frame. An Encoder is not safe for concurrent use.
type Encoder struct {
	w   io.Writer
	buf []byte
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

func (e *Encoder) flush() error {
	_, err := e.w.Write(e.buf)
	return err
}

// WriteData writes one data frame; see AppendData for the arguments.
func (e *Encoder) WriteData(counter uint64, rate uint32, gain float32, channels int, samples []int16, flags uint16) error {
	e.buf = AppendData(e.buf[:0], counter, rate, gain, channels, samples, flags)
	return e.flush()
}

// WriteCommand writes one command frame.
func (e *Encoder) WriteCommand(c Command) error {
	e.buf = AppendCommand(e.buf[:0], c)
	return e.flush()
}

// WriteReply writes one reply frame.
func (e *Encoder) WriteReply(r Reply) error {
	e.buf = AppendReply(e.buf[:0], r)
	return e.flush()
}
