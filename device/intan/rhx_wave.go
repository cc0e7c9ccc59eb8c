package intan

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The RHX software's TCP waveform output (RHX:
// Engine/Threads/tcpdataoutputthread.cpp, Engine/API/Hardware/rhxglobals.h,
// Engine/Processing/systemstate.h). Every write is
// TCPNumberDataBlocksPerWrite data blocks; a data block is
//
//	uint32 magic 0x2ef07a08
//	128 frames, each: uint32 timestamp, then one uint16 per enabled output
//
// little-endian, the outputs in RHX's channel order (ports A, B, ... and
// within a port the native channel order; for each amplifier channel its
// wide, low and high bands as enabled). Amplifier words are offset
// binary: µV = 0.195 × (word − 32768).
const (
	WaveformMagic  = 0x2ef07a08
	SpikeMagic     = 0x3ae2710f // spike port records (14 bytes; see SpikeRecord)
	FramesPerBlock = 128        // RHX's FramesPerBlock
	SpikeRecordLen = 14
)

// Default RHX ports: commands on 5000, waveforms on 5001, spikes on 5002
// (RHX: Engine/Processing/systemstate.cpp).
const (
	DefaultCommandPort  = 5000
	DefaultWaveformPort = 5001
	DefaultSpikePort    = 5002
)

// WaveformBlockBytes returns the size of one waveform data block whose
// frames carry words uint16 words.
func WaveformBlockBytes(words int) int { return 4 + FramesPerBlock*(4+2*words) }

// AppendWaveformBlock appends one waveform data block to dst: the magic
// number, then 128 frames, frame i with timestamp+i and the words
// words[i*n:(i+1)*n] (time-major, n = len(words)/128).
func AppendWaveformBlock(dst []byte, timestamp uint32, words []uint16) []byte {
	n := len(words) / FramesPerBlock
	dst = binary.LittleEndian.AppendUint32(dst, WaveformMagic)
	for i := range FramesPerBlock {
		dst = binary.LittleEndian.AppendUint32(dst, timestamp+uint32(i))
		for _, w := range words[i*n : (i+1)*n] {
			dst = binary.LittleEndian.AppendUint16(dst, w)
		}
	}
	return dst
}

// SpikeRecord is one record of the RHX spike port: magic, the channel's
// native name in 5 bytes, the timestamp and the spike id (1: detected by
// threshold; RHX's TCPDataOutputThread).
type SpikeRecord struct {
	Channel   string
	Timestamp uint32
	ID        uint8
}

// AppendSpikeRecord appends r as the 14 bytes RHX sends.
func AppendSpikeRecord(dst []byte, r SpikeRecord) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, SpikeMagic)
	var name [5]byte
	copy(name[:], r.Channel)
	dst = append(dst, name[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, r.Timestamp)
	return append(dst, r.ID)
}

// ParseSpikeRecords parses the spike records at the start of p. It
// returns them, the bytes not yet parsed (an incomplete record) and how
// many bytes were skipped to find a magic number.
func ParseSpikeRecords(p []byte) (recs []SpikeRecord, rest []byte, skipped int) {
	for len(p) >= SpikeRecordLen {
		if binary.LittleEndian.Uint32(p) != SpikeMagic {
			p, skipped = p[1:], skipped+1
			continue
		}
		recs = append(recs, SpikeRecord{Channel: strings.TrimRight(string(p[4:9]), "\x00"),
			Timestamp: binary.LittleEndian.Uint32(p[9:]), ID: p[13]})
		p = p[SpikeRecordLen:]
	}
	return recs, p, skipped
}

// Band is a band of an amplifier channel RHX can send: the wide band
// (the amplifier's signal), or the software low-pass or high-pass band.
type Band string

// Bands, as RHX names them in the channel parameters
// TCPDataOutputEnabled, TCPDataOutputEnabledLow, TCPDataOutputEnabledHigh.
const (
	BandWide Band = "wide"
	BandLow  Band = "low"
	BandHigh Band = "high"
)

// Parameter returns the RHX channel parameter that enables b.
func (b Band) Parameter() (string, error) {
	switch b {
	case BandWide, "":
		return "TCPDataOutputEnabled", nil
	case BandLow:
		return "TCPDataOutputEnabledLow", nil
	case BandHigh:
		return "TCPDataOutputEnabledHigh", nil
	}
	return "", fmt.Errorf("intan: band %q, want wide, low or high", string(b))
}

// Ports are the RHX port letters, in RHX's channel order.
const Ports = "ABCDEFGH"

// MaxPortChannels is the most amplifier channels on one port.
const MaxPortChannels = 128

// ChannelName returns the native name of amplifier channel n of port p
// ("A-007").
func ChannelName(port byte, n int) string { return fmt.Sprintf("%c-%03d", port, n) }

// parseChannel parses a native amplifier channel name.
func parseChannel(s string) (port byte, n int, err error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) < 3 || s[1] != '-' || strings.IndexByte(Ports, s[0]) < 0 {
		return 0, 0, fmt.Errorf("intan: channel %q: want a native name such as A-007 (ports %s)", s, Ports)
	}
	n, err = strconv.Atoi(s[2:])
	if err != nil || n < 0 || n >= MaxPortChannels {
		return 0, 0, fmt.Errorf("intan: channel %q: want a channel number 000..%03d", s, MaxPortChannels-1)
	}
	return s[0], n, nil
}

// ParseChannels parses a channel list: comma-separated native names
// ("A-000"), ranges on one port ("A-000..A-031" or "A-000-A-031"), and
// whole ports ("B", every amplifier channel of port B, which ports gives:
// port letter → amplifier channels; nil to refuse whole ports). The
// result is in RHX's channel order, which is the order of the samples in
// the waveform stream, without repeats.
func ParseChannels(spec string, ports map[byte]int) ([]string, error) {
	type ch struct {
		port byte
		n    int
	}
	seen := map[ch]bool{}
	var out []ch
	add := func(c ch) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, part := range strings.Split(spec, ",") {
		part = strings.ToUpper(strings.TrimSpace(part))
		switch {
		case part == "":
			continue
		case len(part) == 1:
			n, ok := ports[part[0]]
			if !ok || n == 0 {
				return nil, fmt.Errorf("intan: port %s: no amplifier channels there", part)
			}
			for i := range n {
				add(ch{part[0], i})
			}
			continue
		}
		lo, hi, isRange := strings.Cut(part, "..")
		if !isRange && len(part) == 11 && part[5] == '-' { // A-000-A-031
			lo, hi, isRange = part[:5], part[6:], true
		}
		p, a, err := parseChannel(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			q, bb, err := parseChannel(hi)
			if err != nil {
				return nil, err
			}
			if q != p || bb < a {
				return nil, fmt.Errorf("intan: channel range %s: want ascending channels of one port", part)
			}
			b = bb
		}
		for i := a; i <= b; i++ {
			if ports != nil {
				if n := ports[p]; i >= n {
					return nil, fmt.Errorf("intan: channel %s: port %c has %d amplifier channels", ChannelName(p, i), p, n)
				}
			}
			add(ch{p, i})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("intan: channel list %q names no channel", spec)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].port != out[j].port {
			return strings.IndexByte(Ports, out[i].port) < strings.IndexByte(Ports, out[j].port)
		}
		return out[i].n < out[j].n
	})
	names := make([]string, len(out))
	for i, c := range out {
		names[i] = ChannelName(c.port, c.n)
	}
	return names, nil
}
