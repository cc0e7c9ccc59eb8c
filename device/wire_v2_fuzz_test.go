package device

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
)

// appendV2Seed appends one frame of each version-2 type to b, the stream
// continuing at counter.
func appendV2Seed(b []byte, counter uint64) []byte {
	c := NewCompressor(CompressConfig{})
	b = c.AppendCompressed(b, counter, 30000, 0.195, 2, []int16{1, -1, 2, -2, 300, 5, -7, 9}, 0)
	b = c.AppendCompressed(b, counter+4, 30000, 0.195, 2, []int16{1, -1, 2, -2, 300, 5, -7, 9}, 0)
	s := DefaultSettings(30000, 2)
	s.Mode, s.Thresholds[0] = ModeSpikes, []int16{-40, 0}
	b = AppendSettings(b, counter+8, 30000, 0.195, 2, s)
	snip := make([]int8, s.Pre+1+s.Post)
	snip[s.Pre] = -90
	b = AppendSpikes(b, counter+8, 64, 30000, 0.195, 2, &Spikes{Pre: s.Pre, Post: s.Post, Snippets: true,
		Events: []SpikeEvent{{Sample: counter + 10, Channel: 0, Shift: 2, Snippet: snip}}}, 0)
	f := &Features{BinSamples: 4, Levels: 2, CountBits: 4, Channels: 2, Power: []uint8{17, 200}, Counts: []uint8{1, 0, 15, 3}}
	return AppendFeatures(b, (counter+72+3)/4*4, 30000, 0.195, f, 0)
}

// checkV2RoundTrip checks that a version-2 frame the Decoder returned
// encodes again into a frame that decodes to the same content.
func checkV2RoundTrip(t *testing.T, fr Frame) {
	t.Helper()
	var enc []byte
	switch fr.Type {
	case FrameCompressed:
		enc = NewCompressor(CompressConfig{}).AppendCompressed(nil, fr.Counter, fr.Rate, fr.Gain, fr.Channels, fr.Samples, fr.Flags)
	case FrameSpikes:
		enc = AppendSpikes(nil, fr.Counter, fr.Span, fr.Rate, fr.Gain, fr.Channels, fr.Spikes, fr.Flags)
	case FrameFeatures:
		enc = AppendFeatures(nil, fr.Counter, fr.Rate, fr.Gain, fr.Features, fr.Flags)
	case FrameSettings:
		enc = AppendSettings(nil, fr.Counter, fr.Rate, fr.Gain, fr.Channels, fr.Settings)
	}
	g, err := NewDecoder(bytes.NewReader(enc)).Next()
	if err != nil {
		t.Fatalf("%s frame does not re-encode: %v", fr.Type, err)
	}
	same := g.Type == fr.Type && g.Counter == fr.Counter && g.Channels == fr.Channels && g.Span == fr.Span &&
		slices.Equal(g.Samples, fr.Samples) && reflect.DeepEqual(g.Spikes, fr.Spikes) &&
		reflect.DeepEqual(g.Features, fr.Features) && reflect.DeepEqual(g.Settings, fr.Settings)
	if !same {
		t.Fatalf("%s frame does not round-trip:\n%+v\n%+v", fr.Type, fr, g)
	}
}

// FuzzCompressed decodes arbitrary payloads as compressed frames of
// arbitrary shape (with good CRCs, so that the payload decoder is what
// is exercised): each is a frame or a counted bad frame, never a panic;
// and arbitrary samples compress into a frame that decodes to them.
func FuzzCompressed(f *testing.F) {
	c := NewCompressor(CompressConfig{})
	good := c.AppendCompressed(nil, 0, 30000, 0.195, 3, []int16{1, 2, 3, 400, 500, 600, -7, -8, -9, 1000, 0, 5}, 0)
	f.Add(uint16(3), uint16(4), good[HeaderSize:len(good)-TrailerSize], uint8(0))
	f.Add(uint16(1), uint16(1), []byte{0, 0x21}, uint8(1))
	f.Add(uint16(2), uint16(8), []byte{2, 4, 14, 1, 0, 2, 0, 3, 0, 4, 0, 0xff, 0xff, 0, 1}, uint8(4))
	f.Fuzz(func(t *testing.T, ch, n uint16, payload []byte, order uint8) {
		channels, samples := int(ch%64)+1, int(n%300)+1
		// Arbitrary bytes as a payload.
		b, start := grow(nil, HeaderSize)
		b = append(b, payload...)
		putHeaderV(b[start:], ProtocolVersion2, FrameCompressed, 0, len(payload), channels, samples, 30000, 0.195, 7)
		b = appendTrailer(b, start)
		d := NewDecoder(bytes.NewReader(b))
		fr, err := d.Next()
		if err == nil {
			if len(fr.Samples) != channels*samples {
				t.Fatalf("%d samples decoded for %d x %d", len(fr.Samples), channels, samples)
			}
			checkV2RoundTrip(t, fr)
		} else if st := d.Stats(); st.BadFrames != 1 {
			t.Fatalf("payload neither decoded nor counted: %v, %+v", err, st)
		}
		// The payload's bytes as samples.
		s := make([]int16, channels*samples)
		for i := range s {
			if 2*i+1 < len(payload) {
				s[i] = int16(uint16(payload[2*i]) | uint16(payload[2*i+1])<<8)
			}
		}
		cc := NewCompressor(CompressConfig{Order: int(order%10) - 1})
		var stream []byte
		var frames [][]int16
		for i := range 3 {
			frames = append(frames, slices.Clone(s))
			stream = cc.AppendCompressed(stream, uint64(i*samples), 30000, 0.195, channels, s, 0)
			slices.Reverse(s)
		}
		d = NewDecoder(bytes.NewReader(stream))
		for i, want := range frames {
			fr, err := d.Next()
			if err != nil || !slices.Equal(fr.Samples, want) {
				t.Fatalf("frame %d does not round-trip: %v", i, err)
			}
		}
	})
}
