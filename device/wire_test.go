package device

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
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
