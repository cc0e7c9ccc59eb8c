package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// FuzzDecoder feeds arbitrary bytes to the Decoder: it must not panic,
// must hold at most one frame in memory, must account for every input
// byte, and every frame it returns must re-encode to the bytes it came
// from (data) or decode back to itself (commands, replies).
func FuzzDecoder(f *testing.F) {
	var seed []byte
	seed = AppendData(seed, 7, 30000, 0.195, 2, []int16{1, -1, 2, -2}, FlagOverflow)
	seed = AppendCommand(seed, Command{Seq: 1, Op: OpSetChannels, Channels: []uint16{0, 3}})
	seed = AppendCommand(seed, Command{Seq: 2, Op: OpStimulate, Stim: Stim{Channel: 1, Pulses: 2, PhaseUs: 100, AmplitudeUA: 10, Biphasic: true}})
	seed = AppendReply(seed, Reply{Seq: 2, Op: OpPing, PingTime: 5, Counter: 9, Message: "ok"})
	seed = AppendData(seed, 20, 30000, 0.195, 2, []int16{3, 4}, 0)
	seed = appendV2Seed(seed, 21)
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add(append([]byte("junk"), seed...))
	bad := bytes.Clone(seed)
	bad[40] ^= 0xff
	f.Add(bad)
	f.Add(Sync[:])
	f.Add(append(Sync[:], make([]byte, 60)...))
	f.Add(append([]byte{2}, seed...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 && data[0]&2 != 0 {
			// Make every frame-shaped region check, so that the fuzzer
			// reaches the header and payload checks behind the CRCs.
			data = reseal(bytes.Clone(data))
		}
		var r io.Reader = bytes.NewReader(data)
		if len(data) > 0 && data[0]&1 == 1 {
			r = iotest.OneByteReader(r)
		}
		d := NewDecoder(r)
		var frameBytes, control uint64
		for i := 0; ; i++ {
			if i > len(data) {
				t.Fatalf("more frames than input bytes")
			}
			before := d.Stats()
			fr, err := d.Next()
			if len(d.buf) > MaxFrameSize || cap(d.samples) > MaxPayload/2 || len(d.events) > MaxPendingEvents {
				t.Fatalf("unbounded memory: buffer %d, samples %d, events %d", len(d.buf), cap(d.samples), len(d.events))
			}
			if err != nil {
				var fe *FrameError
				if !errors.Is(err, io.EOF) && !(errors.As(err, &fe) && errors.Is(err, io.ErrUnexpectedEOF)) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			end := int(d.Offset())
			switch fr.Type {
			case FrameData:
				if fr.Channels <= 0 || len(fr.Samples)%fr.Channels != 0 || fr.Len() == 0 {
					t.Fatalf("data frame %d channels, %d samples", fr.Channels, len(fr.Samples))
				}
				enc := AppendData(nil, fr.Counter, fr.Rate, fr.Gain, fr.Channels, fr.Samples, fr.Flags)
				if end < len(enc) || !bytes.Equal(data[end-len(enc):end], enc) {
					t.Fatalf("data frame does not re-encode to its input bytes")
				}
				frameBytes += uint64(len(enc))
			case FrameCommand:
				enc := AppendCommand(nil, fr.Command)
				g, err := NewDecoder(bytes.NewReader(enc)).Next()
				if err != nil || !reflect.DeepEqual(g.Command, fr.Command) {
					t.Fatalf("command %+v does not round-trip: %+v %v", fr.Command, g.Command, err)
				}
				control++ // its size on input may differ: reserved bytes are ignored
			case FrameReply:
				enc := AppendReply(nil, fr.Reply)
				g, err := NewDecoder(bytes.NewReader(enc)).Next()
				if err != nil || g.Reply != fr.Reply {
					t.Fatalf("reply %+v does not round-trip: %+v %v", fr.Reply, g.Reply, err)
				}
				control++
			case FrameCompressed, FrameSpikes, FrameFeatures, FrameSettings:
				checkV2RoundTrip(t, fr)
				control++ // another encoder may code the same content in other bytes
			default:
				t.Fatalf("frame of type %v returned", fr.Type)
			}
			if d.Stats().Frames < before.Frames {
				t.Fatal("stats went down")
			}
		}
		st := d.Stats()
		if st.Bytes != uint64(len(data)) || d.Offset() != int64(len(data)) {
			t.Fatalf("read %d bytes, offset %d, input %d", st.Bytes, d.Offset(), len(data))
		}
		// Every byte is in a returned frame, a bad frame or skipped.
		exact := st.BadFrames == 0 && control == 0
		if st.SkippedBytes+frameBytes > uint64(len(data)) || (exact && st.SkippedBytes+frameBytes != uint64(len(data))) {
			t.Fatalf("skipped %d + frames %d != input %d (bad frames %d)", st.SkippedBytes, frameBytes, len(data), st.BadFrames)
		}
	})
}

// reseal rewrites the header CRC and, where the declared frame fits, the
// frame CRC after every sync word in b.
func reseal(b []byte) []byte {
	for i := 0; i+HeaderSize <= len(b); i++ {
		if !bytes.Equal(b[i:i+4], Sync[:]) {
			continue
		}
		binary.LittleEndian.PutUint32(b[i+32:], crc32.Checksum(b[i:i+32], castagnoli))
		end := i + HeaderSize + int(binary.LittleEndian.Uint32(b[i+8:]))
		if end >= i && end+TrailerSize <= len(b) {
			binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[i:end], castagnoli))
		}
	}
	return b
}

// FuzzControlRoundTrip encodes commands and replies built from arbitrary
// field values and checks that they decode to themselves.
func FuzzControlRoundTrip(f *testing.F) {
	f.Add(uint32(1), uint8(OpSetChannels), uint32(30000), uint64(7), []byte{0, 0, 5, 0}, uint16(3), float32(10.5), uint8(3), "ok")
	f.Add(uint32(0), uint8(OpStimulate), uint32(0), uint64(0), []byte{}, uint16(0), float32(-1), uint8(0), "µV")
	f.Add(uint32(9), uint8(200), uint32(1), uint64(1), []byte{1}, uint16(1), float32(0), uint8(1), "\xff")
	f.Fuzz(func(t *testing.T, seq uint32, op uint8, rate uint32, ping uint64, chans []byte, pulses uint16, amp float32, flags uint8, msg string) {
		c := Command{Seq: seq, Op: Op(op)}
		switch c.Op {
		case OpSetRate:
			c.Rate = max(rate, 1)
		case OpSetChannels:
			c.Channels = make([]uint16, len(chans)/2)
			for i := range c.Channels {
				c.Channels[i] = binary.LittleEndian.Uint16(chans[2*i:])
			}
		case OpPing:
			c.PingTime = ping
		case OpStimulate:
			if amp != amp || amp > 1e30 || amp < -1e30 {
				amp = 0
			}
			c.Stim = Stim{Channel: uint16(rate), Pulses: pulses, PhaseUs: rate, InterphaseUs: uint32(ping), PeriodUs: seq,
				AmplitudeUA: amp, Biphasic: flags&1 != 0, CathodicFirst: flags&2 != 0}
		}
		fr, err := NewDecoder(bytes.NewReader(AppendCommand(nil, c))).Next()
		known := c.Op >= OpStart && c.Op <= OpInfo
		if err != nil || fr.Type != FrameCommand || (known && !reflect.DeepEqual(fr.Command, c)) || fr.Command.Seq != c.Seq || fr.Command.Op != c.Op {
			t.Fatalf("command %+v decoded as %+v, %v", c, fr.Command, err)
		}
		r := Reply{Seq: seq, Op: Op(op), Status: Status(flags), PingTime: ping, Counter: ping ^ uint64(seq), Rate: rate, Channels: pulses, Message: msg}
		fr, err = NewDecoder(bytes.NewReader(AppendReply(nil, r))).Next()
		if err != nil || fr.Type != FrameReply {
			t.Fatalf("reply %+v: %v", r, err)
		}
		got := fr.Reply
		if !utf8.ValidString(got.Message) || len(got.Message) > MaxMessage || (utf8.ValidString(msg) && len(msg) <= MaxMessage && got.Message != msg) {
			t.Fatalf("reply message %q decoded as %q", msg, got.Message)
		}
		got.Message, r.Message = "", ""
		if got != r {
			t.Fatalf("reply %+v decoded as %+v", r, got)
		}
	})
}
