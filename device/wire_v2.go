package device

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Version 2 of the wire protocol (docs/protocol.md) adds the frame types
// an implant's radio needs: compressed samples, spike events and
// features, and a settings frame describing the device's detector. The
// header and types 1–3 are unchanged; a sender writes types 1–3 as
// version 1 (so a version-1 host reads them) and types 4–7 as version 2.
// The Decoder accepts both versions.
const ProtocolVersion2 = 2

// Frame types of version 2.
const (
	FrameCompressed FrameType = 4 // device → host: samples, losslessly compressed (compress.go)
	FrameSpikes     FrameType = 5 // device → host: spike events detected on the device
	FrameFeatures   FrameType = 6 // device → host: threshold crossings and spike-band power per bin
	FrameSettings   FrameType = 7 // device → host: the detector's settings (mode, thresholds...)
)

// v2Name names the frame types of version 2.
func v2Name(t FrameType) string {
	switch t {
	case FrameCompressed:
		return "compressed"
	case FrameSpikes:
		return "spikes"
	case FrameFeatures:
		return "features"
	case FrameSettings:
		return "settings"
	}
	return ""
}

// v2What names a frame of type t in errors, without allocating on the
// path of good frames.
func v2What(t FrameType) string {
	switch t {
	case FrameCompressed:
		return "compressed frame"
	case FrameSpikes:
		return "spikes frame"
	case FrameFeatures:
		return "features frame"
	case FrameSettings:
		return "settings frame"
	}
	return t.String() + " frame"
}

// isStream reports whether frames of type t carry the device's sample
// stream (samples or what stands for them), so that the Decoder follows
// their counter and format.
func (t FrameType) isStream() bool {
	return t == FrameData || t == FrameCompressed || t == FrameSpikes || t == FrameFeatures
}

// covered returns the samples per channel a stream frame covers.
func (f *Frame) covered() int {
	if f.Samples != nil {
		return f.Len()
	}
	return f.Span
}

// putHeaderV writes a header of protocol version v and its CRC into
// b[:HeaderSize].
func putHeaderV(b []byte, v uint8, typ FrameType, flags uint16, payload int, channels, n int, rate uint32, gain float32, counter uint64) {
	putHeader(b, typ, flags, payload, channels, n, rate, gain, counter)
	if v != ProtocolVersion {
		b[4] = v
		binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	}
}

// v2state is what a Decoder keeps for frames of version 2.
type v2state struct {
	codec decodeScratch // buffers of compressed frames (compress_decode.go)
}

// parseV2 decodes the frames of version 2; h is the header, p the
// payload, f has Type and Flags set.
func (d *Decoder) parseV2(f Frame, h, p []byte) (Frame, error) {
	le := binary.LittleEndian
	if h[4] != ProtocolVersion2 {
		return f, fmt.Errorf("%s frame of protocol version %d, want %d", f.Type, h[4], ProtocolVersion2)
	}
	ch := int(le.Uint16(h[12:]))
	n := int(le.Uint16(h[14:]))
	f.Channels = ch
	f.Rate = le.Uint32(h[16:])
	f.Gain = math.Float32frombits(le.Uint32(h[20:]))
	f.Counter = le.Uint64(h[24:])
	what := v2What(f.Type)
	switch g := float64(f.Gain); {
	case ch == 0 || (n == 0 && f.Type != FrameSettings):
		return f, fmt.Errorf("%s with %d channels x %d samples", what, ch, n)
	case ch > MaxChannels:
		return f, CheckChannels(what, "channels", ch)
	case f.Rate < MinRate || f.Rate > MaxRate:
		return f, CheckRate(what, "sample rate", float64(f.Rate))
	case math.IsNaN(g) || math.IsInf(g, 0) || g < 0:
		return f, fmt.Errorf("%s with gain %g", what, g)
	case g > MaxGain:
		return f, CheckGain(what, "gain", g)
	}
	switch f.Type {
	case FrameCompressed:
		m := ch * n
		if 2*m > MaxPayload {
			return f, fmt.Errorf("compressed frame of %d channels x %d samples: more than the %d bytes of samples a frame may carry", ch, n, MaxPayload)
		}
		var s []int16
		if d.fresh {
			s = make([]int16, m)
		} else {
			if cap(d.samples) < m {
				d.samples = make([]int16, m, max(m, min(2*cap(d.samples), MaxPayload/2)))
			}
			s = d.samples[:m]
		}
		if err := decompress(s, p, ch, n, &d.v2.codec); err != nil {
			return f, fmt.Errorf("compressed frame of %d channels x %d samples: %w", ch, n, err)
		}
		f.Samples = s
	case FrameSpikes:
		sp, err := parseSpikes(p, ch, n, f.Counter)
		if err != nil {
			return f, err
		}
		f.Span, f.Spikes = n, sp
	case FrameFeatures:
		ft, err := parseFeatures(p, ch, n, f.Counter)
		if err != nil {
			return f, err
		}
		f.Span, f.Features = n, ft
	case FrameSettings:
		if n != 0 {
			return f, fmt.Errorf("settings frame with samples %d, want 0", n)
		}
		st, err := parseSettings(p, ch)
		if err != nil {
			return f, err
		}
		st.From = f.Counter
		f.Settings = st
	}
	return f, nil
}
