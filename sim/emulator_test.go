package sim_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// traceLog collects an Emulator's ground truth.
type traceLog struct {
	mu  sync.Mutex
	rec []sim.FrameRecord
}

func (l *traceLog) add(r sim.FrameRecord) {
	l.mu.Lock()
	l.rec = append(l.rec, r)
	l.mu.Unlock()
}

func (l *traceLog) frames() []sim.FrameRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sim.FrameRecord(nil), l.rec...)
}

func checkFrame(t *testing.T, f device.Frame) {
	t.Helper()
	for i := range f.Len() {
		for c := range f.Channels {
			if got, want := f.Samples[i*f.Channels+c], sim.PatternValue(f.Counter+uint64(i), c); got != want {
				t.Fatalf("frame at %d: sample %d of channel %d = %d, want %d", f.Counter, i, c, got, want)
			}
		}
	}
}

// nextData returns the next data frame, passing replies to onReply.
func nextData(t *testing.T, dec *device.Decoder, onReply func(device.Reply)) device.Frame {
	t.Helper()
	for {
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("decoder: %v", err)
		}
		switch f.Type {
		case device.FrameData:
			checkFrame(t, f)
			return f
		case device.FrameReply:
			if onReply != nil {
				onReply(f.Reply)
			}
		}
	}
}

// TestEmulatorTCP serves a test pattern over TCP: data, a ping, a host
// leaving and coming back, and an unplug during which connections are
// refused.
func TestEmulatorTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pat := &sim.TestPattern{Channels: 4, Rate: 20000}
	em := sim.NewEmulator(pat, sim.EmulatorConfig{FrameSamples: 20, Speed: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- em.ServeTCP(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("ServeTCP: %v", err)
		}
	}()
	addr := ln.Addr().String()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	dec := device.NewDecoder(conn)
	f := nextData(t, dec, nil)
	end := f.Counter + uint64(f.Len())
	for range 20 {
		f = nextData(t, dec, nil)
		if f.Counter != end {
			t.Fatalf("frame at %d, want %d", f.Counter, end)
		}
		end += uint64(f.Len())
	}
	if err := device.NewEncoder(conn).WriteCommand(device.Command{Seq: 42, Op: device.OpPing, PingTime: 1234}); err != nil {
		t.Fatal(err)
	}
	var reply *device.Reply
	for reply == nil {
		nextData(t, dec, func(r device.Reply) { reply = &r })
	}
	if reply.Seq != 42 || reply.Op != device.OpPing || reply.PingTime != 1234 || reply.Status != device.StatusOK {
		t.Fatalf("ping reply %+v", *reply)
	}
	conn.Close()

	// The device serves the next host, its counter running on.
	conn, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	dec = device.NewDecoder(conn)
	f = nextData(t, dec, nil)
	if f.Counter < end {
		t.Fatalf("second host: frame at %d, before %d", f.Counter, end)
	}
	end = f.Counter + uint64(f.Len())

	// Unplugged: the host is dropped, and nobody answers meanwhile.
	const away = 300 * time.Millisecond
	em.Unplug(away)
	for {
		f, err := dec.Next()
		if err != nil {
			break
		}
		if f.Type == device.FrameData {
			end = f.Counter + uint64(f.Len())
		}
	}
	conn.Close()
	c2, err := net.Dial("tcp", addr)
	if err == nil {
		c2.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c2.Read(make([]byte, 1)); err == nil {
			t.Fatal("a host connecting during the unplug got data")
		}
		c2.Close()
	}
	time.Sleep(away)
	var f2 device.Frame
	for start := time.Now(); ; {
		conn, err = net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		dec = device.NewDecoder(conn)
		if f2, err = dec.Next(); err == nil {
			break
		}
		conn.Close()
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the device did not come back: %v", err)
		}
	}
	defer conn.Close()
	checkFrame(t, f2)
	// The device clock ran at 2× real time while away.
	if min := end + uint64(0.9*away.Seconds()*20000*2); f2.Counter < min {
		t.Fatalf("after the unplug: frame at %d, want at least %d (stats %+v)", f2.Counter, min, em.Stats())
	}
	if st := em.Stats(); st.Unplugs != 1 || st.Connections < 3 || st.SamplesIdle == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// decodeAll decodes a whole capture.
func decodeAll(t *testing.T, b []byte) ([]device.Frame, []device.Event, device.Stats) {
	t.Helper()
	dec := device.NewDecoder(bytes.NewReader(b))
	var frames []device.Frame
	var events []device.Event
	for {
		f, err := dec.Next()
		events = dec.TakeEvents(events)
		if errors.Is(err, io.EOF) {
			return frames, events, dec.Stats()
		}
		if err != nil {
			t.Fatalf("decoding the capture: %v", err)
		}
		f.Samples = append([]int16(nil), f.Samples...)
		frames = append(frames, f)
	}
}

// TestEmulatorFaultsExact writes a capture with byte corruption and
// dropped frames and checks, frame by frame, that what a Decoder finds is
// what the emulator says it did, and that the same seed gives the same
// bytes.
func TestEmulatorFaultsExact(t *testing.T) {
	capture := func(seed uint64) ([]byte, []sim.FrameRecord, sim.EmulatorStats) {
		var log traceLog
		var buf bytes.Buffer
		pat := &sim.TestPattern{Channels: 3, Rate: 30000, Samples: 60000, BlockSamples: 77}
		em := sim.NewEmulator(pat, sim.EmulatorConfig{FrameSamples: 16, Unpaced: true, Seed: seed, Trace: log.add,
			Faults: sim.Faults{CorruptRate: 0.002, DropRate: 0.03}})
		if err := em.WriteStream(context.Background(), &buf, 0); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes(), log.frames(), em.Stats()
	}
	b1, trace, st := capture(11)
	b2, _, _ := capture(11)
	b3, _, _ := capture(12)
	if !bytes.Equal(b1, b2) {
		t.Fatal("the same seed gave different captures")
	}
	if bytes.Equal(b1, b3) {
		t.Fatal("different seeds gave the same capture")
	}
	frames, events, ds := decodeAll(t, b1)

	var want []sim.FrameRecord
	var crc uint64
	for _, r := range trace {
		switch r.Fate {
		case sim.FrameSent:
			want = append(want, r)
		case sim.FrameCorrupted:
			if !r.Header {
				crc++
			}
		}
	}
	if len(frames) != len(want) {
		t.Fatalf("decoded %d frames, %d were sent intact", len(frames), len(want))
	}
	var wantGaps []device.Event
	for i, f := range frames {
		if f.Counter != want[i].Counter || f.Len() != want[i].Samples {
			t.Fatalf("frame %d at %d (%d samples), want %d (%d)", i, f.Counter, f.Len(), want[i].Counter, want[i].Samples)
		}
		checkFrame(t, f)
		if i > 0 {
			if end := want[i-1].Counter + uint64(want[i-1].Samples); f.Counter > end {
				wantGaps = append(wantGaps, device.Event{Kind: device.EventGap, Sample: f.Counter, Count: f.Counter - end})
			}
		}
	}
	var gaps []device.Event
	for _, e := range events {
		if e.Kind == device.EventGap {
			gaps = append(gaps, device.Event{Kind: e.Kind, Sample: e.Sample, Count: e.Count})
		}
	}
	if len(gaps) != len(wantGaps) {
		t.Fatalf("%d gaps, want %d", len(gaps), len(wantGaps))
	}
	for i := range gaps {
		if gaps[i] != wantGaps[i] {
			t.Fatalf("gap %d: %+v, want %+v", i, gaps[i], wantGaps[i])
		}
	}
	if ds.CRCErrors != crc {
		t.Errorf("%d CRC errors, want %d", ds.CRCErrors, crc)
	}
	if st.FramesCorrupted == 0 || st.FramesDropped == 0 || st.BytesDamaged < st.FramesCorrupted {
		t.Fatalf("faults did not happen: %+v", st)
	}
	if got := st.FramesSent + st.FramesCorrupted + st.FramesDropped; got != uint64(len(trace)) {
		t.Errorf("stats count %d frames, trace %d", got, len(trace))
	}
}

// pipeHost serves em on one end of a net.Pipe and returns the other.
func pipeHost(t *testing.T, em *sim.Emulator) net.Conn {
	t.Helper()
	host, dev := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- em.Serve(ctx, dev) }()
	t.Cleanup(func() {
		cancel()
		host.Close()
		<-done
	})
	return host
}

// TestEmulatorWaitForStart checks a device that is silent until started.
func TestEmulatorWaitForStart(t *testing.T) {
	pat := &sim.TestPattern{Channels: 2, Rate: 10000}
	em := sim.NewEmulator(pat, sim.EmulatorConfig{FrameSamples: 10, Speed: 4, WaitForStart: true})
	host := pipeHost(t, em)
	host.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := host.Read(make([]byte, 64)); err == nil {
		t.Fatalf("the device sent %d bytes before start", n)
	}
	host.SetReadDeadline(time.Time{})
	go device.NewEncoder(host).WriteCommand(device.Command{Seq: 1, Op: device.OpStart})
	dec := device.NewDecoder(host)
	var started *device.Reply
	f := nextData(t, dec, func(r device.Reply) { started = &r })
	for started == nil {
		f = nextData(t, dec, func(r device.Reply) { started = &r })
	}
	if started.Status != device.StatusOK || f.Counter < 10000*4/10/2 { // 100 ms at 4× real time, with margin
		t.Fatalf("reply %+v, frame at %d: the device clock should have run while silent", *started, f.Counter)
	}
}

// TestEmulatorOverflow stops reading and checks that the device drops
// frames beyond MaxLag, flags the next frame, and the gap is exact.
func TestEmulatorOverflow(t *testing.T) {
	var log traceLog
	pat := &sim.TestPattern{Channels: 2, Rate: 10000}
	em := sim.NewEmulator(pat, sim.EmulatorConfig{FrameSamples: 10, MaxLag: 20 * time.Millisecond, Trace: log.add})
	host := pipeHost(t, em)
	dec := device.NewDecoder(host)
	f := nextData(t, dec, nil)
	end := f.Counter + uint64(f.Len())
	time.Sleep(200 * time.Millisecond) // the host stops reading
	// Every gap (a loaded machine may add small ones) must be frames the
	// device overflowed, flagged on the next frame sent; the pause makes
	// one of at least 1000 samples.
	for big := false; !big; {
		f = nextData(t, dec, nil)
		if f.Counter == end {
			end += uint64(f.Len())
			continue
		}
		if f.Flags&device.FlagOverflow == 0 {
			t.Errorf("the frame after the gap at %d..%d is not flagged", end, f.Counter)
		}
		var overflowed uint64
		for _, r := range log.frames() {
			if r.Counter >= end && r.Counter < f.Counter {
				if r.Fate != sim.FrameOverflowed {
					t.Errorf("frame at %d in the gap: %v", r.Counter, r.Fate)
				}
				overflowed += uint64(r.Samples)
			}
		}
		if overflowed != f.Counter-end {
			t.Fatalf("gap %d..%d: %d samples overflowed", end, f.Counter, overflowed)
		}
		big = overflowed >= 1000
		end = f.Counter + uint64(f.Len())
	}
}

// TestEmulatorReset checks the counter reset fault.
func TestEmulatorReset(t *testing.T) {
	var buf bytes.Buffer
	pat := &sim.TestPattern{Channels: 2, Rate: 1000, Samples: 500}
	em := sim.NewEmulator(pat, sim.EmulatorConfig{FrameSamples: 10, Unpaced: true, Faults: sim.Faults{ResetAt: 200 * time.Millisecond}})
	if err := em.WriteStream(context.Background(), &buf, 0); err != nil {
		t.Fatal(err)
	}
	frames, events, _ := decodeAll(t, buf.Bytes())
	var resets []device.Event
	for _, e := range events {
		if e.Kind == device.EventReset {
			resets = append(resets, e)
		}
	}
	if len(resets) != 1 || resets[0].Sample != 0 || len(frames) != 50 || frames[20].Counter != 0 || frames[19].Counter != 190 {
		t.Fatalf("resets %v; frames 19, 20 at %d, %d", resets, frames[19].Counter, frames[20].Counter)
	}
}

// TestEmulatorSimSource serves the real simulator for a moment: frames
// carry its rate, gain and channel count.
func TestEmulatorSimSource(t *testing.T) {
	s, err := sim.New(sim.Config{Channels: 16, Seed: 3, Duration: 3000})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	em := sim.NewEmulator(s, sim.EmulatorConfig{Unpaced: true})
	if err := em.WriteStream(context.Background(), &buf, 0); err != nil {
		t.Fatal(err)
	}
	frames, events, _ := decodeAll(t, buf.Bytes())
	if len(events) != 0 || len(frames) == 0 {
		t.Fatalf("%d frames, events %v", len(frames), events)
	}
	var n int
	for _, f := range frames {
		if f.Channels != 16 || f.Rate != 30000 || f.Gain != float32(0.195) {
			t.Fatalf("frame %+v", f)
		}
		n += f.Len()
	}
	if n != 3000 {
		t.Fatalf("%d samples, want 3000", n)
	}
}
