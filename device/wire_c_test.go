package device

import (
	"bytes"
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
