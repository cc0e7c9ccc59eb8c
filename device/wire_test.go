package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func TestWireRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	samples := []int16{1, -2, 3, -4, 32767, -32768}
	if err := enc.WriteData(100, 30000, 0.195, 3, samples, FlagClipped); err != nil {
		t.Fatal(err)
	}
	cmds := []Command{
		{Seq: 1, Op: OpStart},
		{Seq: 2, Op: OpStop},
		{Seq: 3, Op: OpSetRate, Rate: 20000},
		{Seq: 4, Op: OpSetChannels, Channels: []uint16{0, 5, 7}},
		{Seq: 5, Op: OpPing, PingTime: 123456789},
		{Seq: 6, Op: OpStimulate, Stim: Stim{Channel: 3, Pulses: 10, PhaseUs: 200, InterphaseUs: 50, PeriodUs: 10000, AmplitudeUA: 25.5, Biphasic: true, CathodicFirst: true}},
		{Seq: 7, Op: OpInfo},
	}
	for _, c := range cmds {
		if err := enc.WriteCommand(c); err != nil {
			t.Fatal(err)
		}
	}
	rep := Reply{Seq: 5, Op: OpPing, Status: StatusOK, PingTime: 123456789, Counter: 99, Rate: 30000, Channels: 64, Message: "RHD2164 µ"}
	if err := enc.WriteReply(rep); err != nil {
		t.Fatal(err)
	}
	dec := NewDecoder(&buf)
	f, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != FrameData || f.Counter != 100 || f.Rate != 30000 || f.Gain != 0.195 || f.Channels != 3 || f.Flags != FlagClipped || !reflect.DeepEqual(f.Samples, samples) {
		t.Fatalf("data frame = %+v", f)
	}
	for _, c := range cmds {
		f, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != FrameCommand || !reflect.DeepEqual(f.Command, c) {
			t.Fatalf("command = %+v, want %+v", f.Command, c)
		}
	}
	f, err = dec.Next()
	if err != nil || f.Type != FrameReply || f.Reply != rep {
		t.Fatalf("reply = %+v, %v; want %+v", f.Reply, err, rep)
	}
	if _, err := dec.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v, want EOF", err)
	}
	if ev := dec.TakeEvents(nil); len(ev) != 0 {
		t.Fatalf("events on a clean stream: %v", ev)
	}
}

// testFrame is one encoded data frame in a synthetic stream.
type testFrame struct {
	off      int // byte offset in the stream
	size     int
	counter  uint64
	channels int
	samples  []int16
}

// encodeFrames encodes nframes data frames of channels x n samples with
// consecutive counters starting at first, random samples.
func encodeFrames(rng *rand.Rand, first uint64, nframes, channels, n int) ([]byte, []testFrame) {
	var out []byte
	var frames []testFrame
	counter := first
	for range nframes {
		s := make([]int16, channels*n)
		for i := range s {
			s[i] = int16(rng.IntN(1 << 16))
		}
		off := len(out)
		out = AppendData(out, counter, 30000, 0.195, channels, s, 0)
		frames = append(frames, testFrame{off: off, size: len(out) - off, counter: counter, channels: channels, samples: s})
		counter += uint64(n)
	}
	return out, frames
}

// decodeAll reads every data frame from d, retrying transient errors, and
// returns copies of them and the final error (io.EOF at a clean end).
func decodeAll(t *testing.T, d *Decoder) ([]Frame, error) {
	t.Helper()
	var got []Frame
	for retries := 0; ; {
		f, err := d.Next()
		if err != nil {
			if errors.Is(err, iotest.ErrTimeout) || errors.Is(err, errTransient) {
				if retries++; retries > 1000 {
					t.Fatalf("too many transient errors")
				}
				continue
			}
			return got, err
		}
		if f.Type == FrameData {
			f.Samples = slices.Clone(f.Samples)
			got = append(got, f)
		}
	}
}

func checkFrames(t *testing.T, got []Frame, want []testFrame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Counter != want[i].counter || got[i].Channels != want[i].channels || !slices.Equal(got[i].Samples, want[i].samples) {
			t.Fatalf("frame %d: counter %d channels %d, want counter %d channels %d (or samples differ)",
				i, got[i].Counter, got[i].Channels, want[i].counter, want[i].channels)
		}
	}
}

var errTransient = errors.New("transient read failure")

// flakyReader returns errTransient (with no data) once before each offset in at.
type flakyReader struct {
	r   io.Reader
	pos int
	at  []int
}

func (f *flakyReader) Read(p []byte) (int, error) {
	if len(f.at) > 0 {
		if f.pos >= f.at[0] {
			f.at = f.at[1:]
			return 0, errTransient
		}
		p = p[:min(len(p), f.at[0]-f.pos)]
	}
	n, err := f.r.Read(p)
	f.pos += n
	return n, err
}

func TestDecoderReaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	stream, frames := encodeFrames(rng, 1000, 50, 7, 13)
	readers := map[string]func() io.Reader{
		"plain":     func() io.Reader { return bytes.NewReader(stream) },
		"OneByte":   func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"Half":      func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
		"DataErr":   func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) },
		"Timeout":   func() io.Reader { return iotest.TimeoutReader(bytes.NewReader(stream)) },
		"TimeoutOB": func() io.Reader { return iotest.TimeoutReader(iotest.OneByteReader(bytes.NewReader(stream))) },
		"Flaky": func() io.Reader {
			// Fail inside headers, payloads and trailers of several frames.
			return &flakyReader{r: bytes.NewReader(stream), at: []int{1, 17, frames[3].off + 36, frames[4].off + 40, frames[9].off - 2, len(stream) - 1, len(stream)}}
		},
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(mk())
			got, err := decodeAll(t, d)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("final error %v, want io.EOF", err)
			}
			checkFrames(t, got, frames)
			st := d.Stats()
			if st.Bytes != uint64(len(stream)) || st.SkippedBytes != 0 || st.CRCErrors != 0 || st.Gaps != 0 || st.Frames != 50 || st.Samples != 50*13 {
				t.Fatalf("stats %+v", st)
			}
			if d.Offset() != int64(len(stream)) {
				t.Fatalf("Offset %d, want %d", d.Offset(), len(stream))
			}
		})
	}
}

func TestDecoderErrorMidFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	stream, frames := encodeFrames(rng, 0, 3, 4, 4)
	boom := errors.New("boom")
	cut := frames[1].off + 50
	d := NewDecoder(io.MultiReader(bytes.NewReader(stream[:cut]), iotest.ErrReader(boom)))
	f, err := d.Next()
	if err != nil || f.Counter != 0 {
		t.Fatalf("first frame: %v %v", f.Counter, err)
	}
	if _, err := d.Next(); !errors.Is(err, boom) {
		t.Fatalf("mid-frame error: got %v, want %v", err, boom)
	}
	// The error is returned again, not swallowed, while the reader fails.
	if _, err := d.Next(); !errors.Is(err, boom) {
		t.Fatalf("second call: got %v, want %v", err, boom)
	}
	if d.Offset() != int64(frames[1].off) {
		t.Fatalf("Offset %d, want %d (start of the unfinished frame)", d.Offset(), frames[1].off)
	}
}

func TestDecoderTruncatedAtEOF(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	stream, frames := encodeFrames(rng, 0, 3, 4, 4)
	cut := frames[2].off + 45
	d := NewDecoder(bytes.NewReader(stream[:cut]))
	d.Name = "rec.spkw"
	got, err := decodeAll(t, d)
	checkFrames(t, got, frames[:2])
	var fe *FrameError
	if !errors.As(err, &fe) || !errors.Is(err, io.ErrUnexpectedEOF) || fe.Offset != int64(frames[2].off) {
		t.Fatalf("error %v, want a FrameError at byte %d wrapping io.ErrUnexpectedEOF", err, frames[2].off)
	}
	if msg := err.Error(); !strings.Contains(msg, "rec.spkw") || !strings.Contains(msg, fmt.Sprint(frames[2].off)) {
		t.Fatalf("error %q does not name the input and offset", msg)
	}
	if st := d.Stats(); st.SkippedBytes != 45 {
		t.Fatalf("skipped %d bytes, want 45", st.SkippedBytes)
	}
	// Trailing garbage that is not a frame is skipped and reported, then io.EOF.
	d = NewDecoder(bytes.NewReader(append(slices.Clone(stream), "garbage"...)))
	got, err = decodeAll(t, d)
	checkFrames(t, got, frames)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("error %v, want io.EOF", err)
	}
	ev := d.TakeEvents(nil)
	if len(ev) != 1 || ev[0].Kind != EventResync || ev[0].Count != 7 || ev[0].Offset != int64(len(stream)) {
		t.Fatalf("events %v, want one resync of 7 bytes at %d", ev, len(stream))
	}
}

// fakeSync writes the sync word into samples at sample i (2 samples).
func fakeSync(s []int16, i int) {
	s[i] = int16(uint16(Sync[0]) | uint16(Sync[1])<<8)
	s[i+1] = int16(uint16(Sync[2]) | uint16(Sync[3])<<8)
}

// TestDecoderCorruption builds a stream with dropped frames, garbage
// between frames (including sync words), fake sync words in payloads and
// 1% of the bytes damaged (flipped, or deleted as on a lossy UART), and checks that exactly the intact frames are
// delivered, in order, and that every CRC failure, gap and skipped byte is
// counted exactly.
// SPIKELINE_LONG=1 runs 200 seeds instead of 8.
func TestDecoderCorruption(t *testing.T) {
	seeds := uint64(8)
	if os.Getenv("SPIKELINE_LONG") != "" {
		seeds = 200
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			const channels, n = 4, 8
			var stream []byte
			var frames []testFrame
			counter := uint64(rng.IntN(1 << 40))
			for i := range 3000 {
				if rng.IntN(20) == 0 { // dropped frame(s)
					counter += uint64(n * (1 + rng.IntN(3)))
				}
				if rng.IntN(10) == 0 { // garbage between frames
					g := make([]byte, rng.IntN(200))
					for j := range g {
						g[j] = byte(rng.IntN(256))
					}
					if len(g) > 40 && rng.IntN(2) == 0 {
						copy(g[rng.IntN(len(g)-4):], Sync[:])
					}
					stream = append(stream, g...)
				}
				s := make([]int16, channels*n)
				for j := range s {
					s[j] = int16(rng.IntN(1 << 16))
				}
				if i%3 == 0 {
					fakeSync(s, rng.IntN(len(s)-1))
				}
				off := len(stream)
				stream = AppendData(stream, counter, 30000, 0.195, channels, s, 0)
				frames = append(frames, testFrame{off: off, size: len(stream) - off, counter: counter, channels: channels, samples: s})
				counter += n
			}
			// Damage 1% of the bytes, sparing the last frame so the stream
			// does not end inside a damaged frame: odd seeds flip bytes,
			// even seeds delete them (bytes lost on a UART).
			damaged := make([]bool, len(stream))
			deleted := make([]int, len(stream)+1) // bytes deleted before offset j
			kept := stream[:0:0]
			for j := range stream {
				deleted[j+1] = deleted[j]
				if j < frames[len(frames)-1].off && rng.IntN(100) == 0 {
					if seed%2 == 0 {
						// Delete only bytes unlike both neighbours, and not
						// two in a row: then which byte went missing, and so
						// which frame is damaged, is unambiguous.
						if j > 0 && j+1 < len(stream) && stream[j-1] != stream[j] && stream[j+1] != stream[j] && !damaged[j-1] {
							damaged[j] = true
							deleted[j+1]++
							continue
						}
					} else {
						damaged[j] = true
						stream[j] ^= byte(1 + rng.IntN(255))
					}
				}
				kept = append(kept, stream[j])
			}
			// Which part of each frame was damaged, in original offsets.
			hdrDamaged := make([]bool, len(frames))
			bodyDamaged := make([]bool, len(frames))
			for i, f := range frames {
				hdrDamaged[i] = slices.Contains(damaged[f.off:f.off+HeaderSize], true)
				bodyDamaged[i] = slices.Contains(damaged[f.off+HeaderSize:f.off+f.size], true)
			}
			for i := range frames {
				frames[i].off -= deleted[frames[i].off]
			}
			stream = kept
			var want []testFrame
			var wantCRC, wantGaps, wantLost, delivered uint64
			var wantGapEvents []Event
			for i, f := range frames {
				hdr, body := hdrDamaged[i], bodyDamaged[i]
				switch {
				case !hdr && body:
					wantCRC++
				case !hdr && !body:
					if len(want) > 0 {
						prev := want[len(want)-1]
						if end := prev.counter + n; f.counter != end {
							wantGaps++
							wantLost += f.counter - end
							wantGapEvents = append(wantGapEvents, Event{Kind: EventGap, Sample: f.counter, Count: f.counter - end, Offset: int64(f.off)})
						}
					}
					want = append(want, f)
					delivered += uint64(f.size)
				}
			}
			d := NewDecoder(iotest.HalfReader(bytes.NewReader(stream)))
			var events []Event
			var got []Frame
			for {
				f, err := d.Next()
				events = d.TakeEvents(events)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				f.Samples = slices.Clone(f.Samples)
				got = append(got, f)
			}
			checkFrames(t, got, want)
			st := d.Stats()
			if st.CRCErrors != wantCRC || st.Gaps != wantGaps || st.LostSamples != wantLost ||
				st.SkippedBytes != uint64(len(stream))-delivered || st.Resets != 0 || st.FormatChanges != 0 || st.BadFrames != 0 {
				t.Fatalf("stats %+v\nwant CRC %d, gaps %d, lost %d, skipped %d", st, wantCRC, wantGaps, wantLost, uint64(len(stream))-delivered)
			}
			var gapEvents []Event
			var crcEvents, skipped uint64
			lastOff := int64(-1)
			for _, e := range events {
				if e.Offset < lastOff {
					t.Fatalf("event %v out of stream order (after byte %d)", e, lastOff)
				}
				lastOff = e.Offset
				switch e.Kind {
				case EventGap:
					gapEvents = append(gapEvents, e)
				case EventCRC:
					crcEvents++
				case EventResync:
					skipped += e.Count
				}
			}
			if !slices.Equal(gapEvents, wantGapEvents) {
				t.Fatalf("gap events differ:\n got %v\nwant %v", gapEvents, wantGapEvents)
			}
			if crcEvents != wantCRC || skipped != st.SkippedBytes {
				t.Fatalf("events: %d crc, %d skipped bytes; stats say %d, %d", crcEvents, skipped, wantCRC, st.SkippedBytes)
			}
			t.Logf("%d frames, %d delivered, %d CRC failures, %d gaps (%d samples), %d bytes skipped",
				len(frames), len(got), st.CRCErrors, st.Gaps, st.LostSamples, st.SkippedBytes)
		})
	}
}

// TestDecoderFrameInPayload checks that a complete, valid frame carried
// inside the payload of an intact frame never comes out as a frame.
func TestDecoderFrameInPayload(t *testing.T) {
	inner := AppendData(nil, 777, 1000, 1, 2, []int16{1, 2, 3, 4}, 0)
	s := make([]int16, len(inner)/2+6)
	for i := range len(inner) / 2 {
		s[3+i] = int16(uint16(inner[2*i]) | uint16(inner[2*i+1])<<8)
	}
	var stream []byte
	stream = AppendData(stream, 0, 1000, 1, 2, s, 0)
	stream = AppendData(stream, uint64(len(s)/2), 1000, 1, 2, s, 0)
	d := NewDecoder(bytes.NewReader(stream))
	got, err := decodeAll(t, d)
	if !errors.Is(err, io.EOF) || len(got) != 2 || got[0].Counter != 0 || got[1].Counter != uint64(len(s)/2) {
		t.Fatalf("got %d frames (%v), want the 2 outer frames", len(got), err)
	}
	if st := d.Stats(); st.SkippedBytes != 0 || st.Gaps != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDecoderCounterAndFormat(t *testing.T) {
	var stream []byte
	s4 := make([]int16, 4*10)
	s2 := make([]int16, 2*10)
	var offs []int
	add := func(counter uint64, rate uint32, channels int) {
		offs = append(offs, len(stream))
		if channels == 4 {
			stream = AppendData(stream, counter, rate, 0.195, 4, s4, 0)
		} else {
			stream = AppendData(stream, counter, rate, 0.195, 2, s2, 0)
		}
	}
	add(100, 30000, 4)
	add(110, 30000, 4)
	add(125, 30000, 4) // gap of 5
	add(3, 30000, 4)   // reset
	add(13, 30000, 2)  // channel change
	add(23, 20000, 2)  // rate change
	add(40, 20000, 4)  // channel change and gap of 7
	offs = append(offs, len(stream))
	stream = AppendData(stream, 60, 20000, 0.195, 4, s4, FlagOverflow) // gap of 10, flagged
	d := NewDecoder(bytes.NewReader(stream))
	var detail string
	var events []Event
	for {
		_, err := d.Next()
		events = d.TakeEvents(events)
		if err != nil {
			break
		}
	}
	detail = events[len(events)-1].Detail
	for i := range events {
		events[i].Detail = ""
	}
	want := []Event{
		{Kind: EventGap, Sample: 125, Count: 5, Offset: int64(offs[2])},
		{Kind: EventReset, Sample: 3, Offset: int64(offs[3])},
		{Kind: EventFormat, Sample: 13, Offset: int64(offs[4])},
		{Kind: EventFormat, Sample: 23, Offset: int64(offs[5])},
		{Kind: EventFormat, Sample: 40, Offset: int64(offs[6])},
		{Kind: EventGap, Sample: 40, Count: 7, Offset: int64(offs[6])},
		{Kind: EventGap, Sample: 60, Count: 10, Offset: int64(offs[7])},
	}
	if !strings.Contains(detail, "overflow") {
		t.Errorf("gap after an overflow-flagged frame: detail %q", detail)
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n got %v\nwant %v", events, want)
	}
	st := d.Stats()
	if st.Gaps != 3 || st.LostSamples != 22 || st.Resets != 1 || st.FormatChanges != 3 || st.Frames != 8 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDecoderBadFrames checks frames whose CRCs are good but whose
// contents are impossible: each is counted once and skipped whole.
func TestDecoderBadFrames(t *testing.T) {
	good := AppendData(nil, 0, 1000, 1, 1, []int16{5}, 0)
	mutate := func(f func(b []byte)) []byte {
		b := slices.Clone(good)
		f(b)
		// Re-seal both CRCs.
		binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		return b
	}
	cases := map[string][]byte{
		"version":       mutate(func(b []byte) { b[4] = 3 }),
		"type":          mutate(func(b []byte) { b[5] = 9 }),
		"zero channels": mutate(func(b []byte) { b[12], b[13] = 0, 0 }),
		"length":        mutate(func(b []byte) { b[14] = 3 }),
		"rate":          mutate(func(b []byte) { clear(b[16:20]) }),
		"gain":          mutate(func(b []byte) { binary.LittleEndian.PutUint32(b[20:], math.Float32bits(float32(math.NaN()))) }),
	}
	// A command whose channel list is shorter than its count says.
	cmd := AppendCommand(nil, Command{Seq: 1, Op: OpSetChannels, Channels: []uint16{1, 2}})
	cmd[HeaderSize+8] = 3
	binary.LittleEndian.PutUint32(cmd[len(cmd)-4:], crc32.Checksum(cmd[:len(cmd)-4], castagnoli))
	cases["command"] = cmd
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			stream := slices.Concat(good, bad, good)
			d := NewDecoder(bytes.NewReader(stream))
			n := 0
			for {
				f, err := d.Next()
				if err != nil {
					break
				}
				if f.Type != FrameData {
					t.Fatalf("bad frame delivered: %+v", f)
				}
				n++
			}
			ev := d.TakeEvents(nil)
			st := d.Stats()
			if n != 2 || st.BadFrames != 1 || st.SkippedBytes != 0 || len(ev) != 2 || ev[0].Kind != EventBadFrame || ev[0].Offset != int64(len(good)) {
				t.Fatalf("%d frames, stats %+v, events %v", n, st, ev)
			}
		})
	}
}

func TestDecoderReconnect(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	a, _ := encodeFrames(rng, 0, 3, 2, 10)
	b, _ := encodeFrames(rng, 50, 2, 2, 10)
	d := NewDecoder(bytes.NewReader(a[:len(a)-5])) // the port dies mid-frame
	got, err := decodeAll(t, d)
	if len(got) != 2 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("first connection: %d frames, %v", len(got), err)
	}
	d.TakeEvents(nil)
	d.Reconnect(bytes.NewReader(b))
	got, err = decodeAll(t, d)
	ev := d.TakeEvents(nil)
	if len(got) != 2 || !errors.Is(err, io.EOF) || len(ev) != 1 || ev[0].Kind != EventGap || ev[0].Sample != 50 || ev[0].Count != 30 {
		t.Fatalf("after reconnect: %d frames, %v, events %v", len(got), err, ev)
	}
	if st := d.Stats(); st.Frames != 4 || st.LostSamples != 30 || st.Bytes != uint64(len(a)-5+len(b)) {
		t.Fatalf("stats %+v", st)
	}
}

// rawFrame seals an arbitrary payload in a frame of type typ.
func rawFrame(typ FrameType, payload []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(payload)+TrailerSize)
	putHeader(b, typ, 0, len(payload), 0, 0, 0, 0, 0)
	b = append(b, payload...)
	return appendTrailer(b, 0)
}

// TestControlPayloads is a table of command and reply payloads: each is
// either decoded to the given value or refused as a bad frame.
func TestControlPayloads(t *testing.T) {
	le := binary.LittleEndian
	cmd := func(op Op, args ...byte) []byte {
		return append([]byte{9, 0, 0, 0, byte(op), 0, 0, 0}, args...)
	}
	reply := func(msgLen uint16, msg string) []byte {
		p := make([]byte, replyFixed)
		le.PutUint32(p, 9)
		p[4], p[5] = byte(OpInfo), byte(StatusOK)
		le.PutUint16(p[6:], msgLen)
		return append(p, msg...)
	}
	nan := le.AppendUint32(nil, math.Float32bits(float32(math.NaN())))
	stim := func(amp []byte) []byte {
		a := make([]byte, 16, 24)
		a = append(a, amp...)
		return append(a, 1, 0, 0, 0)
	}
	cases := []struct {
		name    string
		typ     FrameType
		payload []byte
		want    any // Command, Reply, or nil for a bad frame
	}{
		{"start", FrameCommand, cmd(OpStart), Command{Seq: 9, Op: OpStart}},
		{"start with args", FrameCommand, cmd(OpStart, 1), nil},
		{"short", FrameCommand, []byte{1, 2, 3}, nil},
		{"set_rate", FrameCommand, cmd(OpSetRate, 0x20, 0x4e, 0, 0), Command{Seq: 9, Op: OpSetRate, Rate: 20000}},
		{"set_rate 0", FrameCommand, cmd(OpSetRate, 0, 0, 0, 0), nil},
		{"set_rate short", FrameCommand, cmd(OpSetRate, 1), nil},
		{"set_channels", FrameCommand, cmd(OpSetChannels, 2, 0, 0, 0, 5, 0, 7, 0), Command{Seq: 9, Op: OpSetChannels, Channels: []uint16{5, 7}}},
		{"set_channels none", FrameCommand, cmd(OpSetChannels, 0, 0, 0, 0), Command{Seq: 9, Op: OpSetChannels, Channels: []uint16{}}},
		{"set_channels count too big", FrameCommand, cmd(OpSetChannels, 3, 0, 0, 0, 5, 0, 7, 0), nil},
		{"set_channels no count", FrameCommand, cmd(OpSetChannels, 2), nil},
		{"ping", FrameCommand, cmd(OpPing, 1, 0, 0, 0, 0, 0, 0, 0), Command{Seq: 9, Op: OpPing, PingTime: 1}},
		{"ping short", FrameCommand, cmd(OpPing, 1, 0, 0, 0), nil},
		{"stimulate NaN", FrameCommand, cmd(OpStimulate, stim(nan)...), nil},
		{"stimulate", FrameCommand, cmd(OpStimulate, stim([]byte{0, 0, 0x80, 0x3f})...), Command{Seq: 9, Op: OpStimulate, Stim: Stim{AmplitudeUA: 1, Biphasic: true}}},
		{"unknown op", FrameCommand, cmd(Op(200), 1, 2, 3), Command{Seq: 9, Op: Op(200)}},
		{"reply", FrameReply, reply(2, "hi"), Reply{Seq: 9, Op: OpInfo, Message: "hi"}},
		{"reply short", FrameReply, reply(0, "")[:20], nil},
		{"reply length mismatch", FrameReply, reply(3, "hi"), nil},
		{"reply not UTF-8", FrameReply, reply(2, "\xff\xfe"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecoder(bytes.NewReader(rawFrame(c.typ, c.payload)))
			f, err := d.Next()
			if c.want == nil {
				if err == nil || d.Stats().BadFrames != 1 {
					t.Fatalf("accepted %+v (%v), want a bad frame", f, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got any = f.Command
			if c.typ == FrameReply {
				got = f.Reply
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestReplyMessageLimits(t *testing.T) {
	long := strings.Repeat("µ", MaxMessage) // 2 bytes per rune
	for _, msg := range []string{long, "a" + long, "bad \xff byte"} {
		f, err := NewDecoder(bytes.NewReader(AppendReply(nil, Reply{Seq: 1, Message: msg}))).Next()
		if err != nil || len(f.Reply.Message) > MaxMessage || !utf8.ValidString(f.Reply.Message) {
			t.Fatalf("message of %d bytes: got %d bytes, %v", len(msg), len(f.Reply.Message), err)
		}
	}
}

func TestWireSourceDefaultGain(t *testing.T) {
	var stream []byte
	stream = AppendData(stream, 0, 1000, 0, 1, []int16{1}, 0)
	stream = AppendData(stream, 1, 1000, 0.5, 1, []int16{1}, 0)
	src := NewWireSource(bytes.NewReader(stream))
	a, _ := src.Next(t.Context())
	b, _ := src.Next(t.Context())
	if a.Gain != IntanGain || b.Gain != 0.5 {
		t.Fatalf("gains %g, %g; want %g, 0.5", a.Gain, b.Gain, IntanGain)
	}
}
