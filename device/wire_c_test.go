package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCReference compiles testdata/c/headstage.c, a headstage written in C
// from docs/protocol.md alone, sends it commands and decodes what it
// writes: replies and data frames must check and carry what the C code
// meant. It also checks that the CRC function in the document is the one
// compiled. Skipped when no C compiler is installed.
func TestCReference(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) on PATH")
	}
	src, err := os.ReadFile("testdata/c/headstage.c")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(src, []byte("/* crc32c_update"))
	j := bytes.Index(src[i:], []byte("\n}\n"))
	if i < 0 || j < 0 || !bytes.Contains(doc, src[i:i+j+3]) {
		t.Fatal("docs/protocol.md does not contain the crc32c_update of testdata/c/headstage.c")
	}
	bin := filepath.Join(t.TempDir(), "headstage")
	if out, err := exec.Command(cc, "-std=c99", "-O2", "-Wall", "-Werror", "-o", bin, "testdata/c/headstage.c").CombinedOutput(); err != nil {
		t.Fatalf("compiling: %v\n%s", err, out)
	}
	var in []byte
	in = AppendCommand(in, Command{Seq: 1, Op: OpPing, PingTime: 0xDEADBEEF12345678})
	in = append(in, "noise"...)
	in = AppendCommand(in, Command{Seq: 2, Op: OpSetChannels, Channels: []uint16{0, 1, 2}})
	in = AppendCommand(in, Command{Seq: 3, Op: Op(77)})
	cmd := exec.Command(bin)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running: %v", err)
	}

	d := NewDecoder(bytes.NewReader(out))
	wantReplies := []Reply{
		{Seq: 1, Op: OpPing, Status: StatusOK, PingTime: 0xDEADBEEF12345678, Counter: 1000, Rate: 30000, Channels: 3, Message: "c-ref"},
		{Seq: 2, Op: OpSetChannels, Status: StatusOK, Counter: 1000, Rate: 30000, Channels: 3, Message: "c-ref"},
		{Seq: 3, Op: Op(77), Status: StatusUnsupported, Counter: 1000, Rate: 30000, Channels: 3, Message: "c-ref"},
	}
	for _, want := range wantReplies {
		f, err := d.Next()
		if err != nil || f.Type != FrameReply || f.Reply != want {
			t.Fatalf("reply %+v (%v), want %+v", f.Reply, err, want)
		}
	}
	next := uint64(1000)
	for n := 0; ; n++ {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			if n != 5 {
				t.Fatalf("%d data frames, want 5", n)
			}
			break
		}
		if err != nil || f.Type != FrameData || f.Counter != next || f.Channels != 3 || f.Len() != 4 || f.Rate != 30000 || f.Gain != 0.195 {
			t.Fatalf("data frame %d: %+v, %v", n, f, err)
		}
		for i := range f.Len() {
			for c := range 3 {
				tt := f.Counter + uint64(i)
				if want := int16(uint16(tt*7 + uint64(c)*1000 - 500)); f.Samples[i*3+c] != want {
					t.Fatalf("sample %d channel %d = %d, want %d", tt, c, f.Samples[i*3+c], want)
				}
			}
		}
		next += 4
	}
	if ev := d.TakeEvents(nil); len(ev) != 0 {
		t.Fatalf("events decoding the C headstage: %v", ev)
	}
	if !strings.Contains(string(doc), "testdata/c/headstage.c") {
		t.Error("docs/protocol.md does not point to the C reference")
	}
}

// cSignal is signal() of testdata/c/headstage.c: the synthetic recording
// its version-2 modes stream, drawn time-major from the same generator.
type cSignal struct{ lcg uint32 }

func (g *cSignal) at(t uint64, c int) int16 {
	dc := [3]int32{-1500, 300, 2500}
	shape := [11]int32{-10, -40, -90, -100, -70, -20, 20, 35, 30, 20, 10}
	tri := int32(t % 3000)
	if tri < 1500 {
		tri -= 750
	} else {
		tri = 2250 - tri
	}
	g.lcg = g.lcg*1664525 + 1013904223
	u1 := int32(g.lcg >> 24)
	g.lcg = g.lcg*1664525 + 1013904223
	u2 := int32(g.lcg >> 24)
	v := dc[c] + tri/2 + (u1+u2-255)/3
	if ph := (t + 91*uint64(c)) % 257; ph < 11 {
		v += shape[ph] * int32(6+c)
	}
	return int16(v)
}

// TestCReferenceV2 runs the C reference headstage in each mode of
// version 2 and checks what it writes byte for byte against the Go
// encoders fed the same samples: the compressed frames against
// device.Compressor, the spike and feature frames against device.Detector
// and AppendSpikes/AppendFeatures, the settings against Settings.Apply.
// So the C code (integer-only, no allocation) is a reference firmware
// authors can start from, and the Go encoder is what a device sends.
func TestCReferenceV2(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) on PATH")
	}
	bin := filepath.Join(t.TempDir(), "headstage")
	if out, err := exec.Command(cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", "-o", bin, "testdata/c/headstage.c").CombinedOutput(); err != nil {
		t.Fatalf("compiling: %v\n%s", err, out)
	}
	const C, NS, frames, first = 3, 30, 60, 1000
	thr := []int16{-110, -120, -130}
	for _, tc := range []struct {
		name string
		cmds []Command
	}{
		{"lossless", []Command{{Op: OpSetMode, Mode: ModeCompressed}}},
		{"spikes", []Command{{Op: OpSetThresholds, Tenths: 36, Thresholds: thr}, {Op: OpSetMode, Mode: ModeSpikes}}},
		{"spikes without snippets", []Command{{Op: OpSetThresholds, Thresholds: thr}, {Op: OpSetSnippet, Pre: 10, Post: 20, NoSnippets: true}, {Op: OpSetMode, Mode: ModeSpikes}}},
		{"short snippets", []Command{{Op: OpSetThresholds, Thresholds: thr}, {Op: OpSetSnippet, Pre: 5, Post: 12}, {Op: OpSetMode, Mode: ModeSpikes}}},
		{"features", []Command{{Op: OpSetFeatures, BinSamples: 300, Levels: 2, CountBits: 4},
			{Op: OpSetThresholds, Level: 0, Tenths: 35, Thresholds: thr}, {Op: OpSetThresholds, Level: 1, Tenths: 50, Thresholds: []int16{-70, -80, -90}},
			{Op: OpSetMode, Mode: ModeFeatures}}},
		{"features 8-bit", []Command{{Op: OpSetFeatures, BinSamples: 90, Levels: 1, CountBits: 8},
			{Op: OpSetThresholds, Thresholds: []int16{-60, 70, -50}}, {Op: OpSetMode, Mode: ModeFeatures}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in, want []byte
			set := DefaultSettings(30000, C)
			for i, c := range tc.cmds {
				c.Seq = uint32(i + 1)
				in = AppendCommand(in, c)
				if err := set.Apply(c, C); err != nil {
					t.Fatal(err)
				}
				want = AppendReply(want, Reply{Seq: c.Seq, Op: c.Op, Status: StatusOK, Counter: first, Rate: 30000, Channels: C, Message: "c-ref"})
			}
			cmd := exec.Command(bin)
			cmd.Stdin = bytes.NewReader(in)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("running: %v", err)
			}
			// What the Go encoders send for the same samples.
			want = AppendSettings(want, first, 30000, 0.195, C, set)
			g := cSignal{lcg: 12345}
			comp := NewCompressor(CompressConfig{})
			det, err := NewDetector(set, C)
			if err != nil {
				t.Fatal(err)
			}
			x := make([]int16, C*NS)
			for f := range frames {
				counter := uint64(first + f*NS)
				for tt := range NS {
					for c := range C {
						x[tt*C+c] = g.at(counter+uint64(tt), c)
					}
				}
				switch set.Mode {
				case ModeCompressed:
					want = comp.AppendCompressed(want, counter, 30000, 0.195, C, x, 0)
				case ModeSpikes:
					det.Push(counter, x)
					ev := det.TakeEvents(nil)
					want = AppendSpikes(want, counter, NS, 30000, 0.195, C, &Spikes{Pre: set.Pre, Post: set.Post, Snippets: set.Snippets, Events: ev}, 0)
				case ModeFeatures:
					det.Push(counter, x)
					for det.Bins() > 0 {
						start, ft := det.TakeBins(1)
						want = AppendFeatures(want, start, 30000, 0.195, &ft, 0)
					}
				}
			}
			if !bytes.Equal(out, want) {
				i := 0
				for i < min(len(out), len(want)) && out[i] == want[i] {
					i++
				}
				t.Fatalf("the C reference wrote %d bytes, the Go encoder %d; first difference at byte %d", len(out), len(want), i)
			}
			// And the frames decode: a frame of every kind, no anomaly.
			d := NewDecoder(bytes.NewReader(out))
			kinds := map[FrameType]int{}
			events := 0
			for {
				fr, err := d.Next()
				if err != nil {
					break
				}
				kinds[fr.Type]++
				if fr.Spikes != nil {
					events += len(fr.Spikes.Events)
				}
			}
			if st := d.Stats(); st.BadFrames+st.CRCErrors+st.SkippedBytes+st.Gaps+st.Resets != 0 {
				t.Fatalf("decoding the C reference: %+v", st)
			}
			// Which predictors the compressed frames use (byte 0 of the payload).
			preds := map[byte]int{}
			for i := 0; i+HeaderSize <= len(out); {
				n := int(binary.LittleEndian.Uint32(out[i+8:]))
				if FrameType(out[i+5]) == FrameCompressed {
					preds[out[i+HeaderSize]]++
				}
				i += HeaderSize + n + TrailerSize
			}
			if set.Mode == ModeCompressed && (preds[predictLPC] == 0 || preds[predictPrev] == 0) {
				t.Fatalf("predictors used: %v; the test should exercise linear prediction and the previous sample", preds)
			}
			t.Logf("%d bytes: %v, %d spike events, predictors %v", len(out), kinds, events, preds)
			if set.Mode == ModeSpikes && events < 15 {
				t.Fatalf("%d spike events in %d samples with a spike every 257", events, frames*NS)
			}
		})
	}
}
