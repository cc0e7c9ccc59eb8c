package intan_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/intan"
	"github.com/spikeline/spikeline/sim"
)

// startRHX serves a test pattern of channels at rate through the RHX
// emulator on loopback (real TCP) and returns the emulator and its
// command address.
func startRHX(t *testing.T, channels int, rate float64, cfg sim.RHXConfig) (*sim.RHXEmulator, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	src := &sim.TestPattern{Channels: channels, Rate: rate, BlockSamples: 200}
	em, err := sim.NewRHX(ctx, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd, wave := listenPair(t)
	done := make(chan error, 1)
	go func() { done <- em.Serve(ctx, cmd, wave) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("emulator: %v", err)
		}
	})
	return em, cmd.Addr().String()
}

// listenPair listens on two loopback ports, the second one above the
// first, as RHX's 5000 and 5001.
func listenPair(t *testing.T) (net.Listener, net.Listener) {
	t.Helper()
	for range 50 {
		cmd, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := cmd.Addr().(*net.TCPAddr).Port
		wave, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		if err == nil {
			return cmd, wave
		}
		cmd.Close()
	}
	t.Fatal("no two adjacent free ports on loopback")
	return nil, nil
}

// check verifies that every sample of b is the test pattern's for its
// timestamp (the emulator's timestamp t carries source sample t) and
// channel, given the source channels streamed.
func check(t *testing.T, b device.Block, chans []int) {
	t.Helper()
	for i := range b.Len() {
		for j, c := range chans {
			if got, want := b.At(i, j), sim.PatternValue(b.First+uint64(i), c); got != want {
				t.Fatalf("sample %d channel %d: %d, want %d", b.First+uint64(i), c, got, want)
			}
		}
	}
}

func seq(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// TestRHXStream: channels chosen on two ports stream in RHX's order,
// every sample where it belongs, RHX left as it was found.
func TestRHXStream(t *testing.T) {
	em, addr := startRHX(t, 64, 30000, sim.RHXConfig{PortChannels: 32, Unpaced: true})
	ctx := context.Background()
	src, err := intan.OpenRHX(ctx, intan.RHXConfig{Addr: addr, Channels: "B-003,A-010..A-012", BlocksPerWrite: 1})
	if err != nil {
		t.Fatal(err)
	}
	info := src.Info()
	if info.SampleRate != 30000 || info.Type != "ControllerRecordUSB3" || info.RunMode != "Stop" || info.BlocksPerWrite != 1 || info.Ports['A'] != 32 || info.Ports['B'] != 32 {
		t.Errorf("info %+v", info)
	}
	if got := strings.Join(src.ChannelNames(), ","); got != "A-010,A-011,A-012,B-003" {
		t.Errorf("channels %s", got)
	}
	var next uint64
	for next < 30000 {
		b, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.First != next || len(b.Events) > 0 || b.Gain != intan.Gain || b.Rate != 30000 || b.Len()%intan.FramesPerBlock != 0 {
			t.Fatalf("block at %d of %d (events %v), want at %d", b.First, b.Len(), b.Events, next)
		}
		check(t, b, []int{10, 11, 12, 35})
		next = b.End()
	}
	if st := src.Stats(); st.Gaps != 0 || st.SkippedBytes != 0 || st.Samples != next {
		t.Errorf("stats %+v", st)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	// Close stopped RHX, which was stopped when the source came.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("get runmode"))
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := c.Read(buf)
	if string(buf[:n]) != "Return: RunMode Stop" {
		t.Errorf("after Close: %q", buf[:n])
	}
	if st := em.Stats(); st.BlocksSent == 0 || st.Errors != 6 { // ports C..H do not exist
		t.Errorf("emulator %+v", st)
	}
}

// TestRHXReconnect: a lost waveform connection is reported, the source
// reconnects (RHX must be told to listen again), and the samples lost
// meanwhile are exactly the gap reported: every sample after it is the
// one its timestamp says.
func TestRHXReconnect(t *testing.T) {
	em, addr := startRHX(t, 8, 30000, sim.RHXConfig{})
	ctx := context.Background()
	src, err := intan.OpenRHX(ctx, intan.RHXConfig{Addr: addr, Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	chans := seq(0, 8)
	var next, lost uint64
	var kinds []device.EventKind
	dropped := false
	for next < 30000 {
		b, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			kinds = append(kinds, e.Kind)
			if e.Kind == device.EventGap {
				lost += e.Count
				if e.Sample != b.First || b.First != next+e.Count {
					t.Errorf("gap %v before block at %d after %d", e, b.First, next)
				}
			}
		}
		if b.First != next && len(b.Events) == 0 {
			t.Fatalf("block at %d after %d without an event", b.First, next)
		}
		check(t, b, chans)
		next = b.End()
		// Once, past 6000 (a Block may hold several data blocks when the
		// reader is behind, so no narrower window is sure to be hit).
		if next >= 6000 && !dropped {
			em.DropWaveform()
			dropped = true
		}
	}
	st := src.Stats()
	want := []device.EventKind{device.EventDisconnect, device.EventReconnect, device.EventGap}
	if len(kinds) != 3 || kinds[0] != want[0] || kinds[1] != want[1] || kinds[2] != want[2] {
		t.Errorf("events %v, want %v", kinds, want)
	}
	if lost == 0 || st.LostSamples != lost || st.Disconnects != 1 || st.Reconnects != 1 {
		t.Errorf("lost %d; stats %+v", lost, st)
	}
	// The source lost what the emulator dropped while no one was
	// connected, plus any blocks written to the dropped connection and
	// never read: whole blocks, at least the dropped ones.
	if es := em.Stats(); es.Connections != 2 || lost < es.BlocksDropped*intan.FramesPerBlock || lost%intan.FramesPerBlock != 0 {
		t.Errorf("emulator %+v, %d samples lost", es, lost)
	}
}

// TestRHXResync: bytes that are not a data block are skipped, counted and
// reported; no sample is lost.
func TestRHXResync(t *testing.T) {
	em, addr := startRHX(t, 4, 20000, sim.RHXConfig{Speed: 4})
	ctx := context.Background()
	src, err := intan.OpenRHX(ctx, intan.RHXConfig{Addr: addr, BlocksPerWrite: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var next, skipped uint64
	injected := false
	for next < 20000 {
		b, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.First != next {
			t.Fatalf("block at %d, want %d", b.First, next)
		}
		for _, e := range b.Events {
			if e.Kind != device.EventResync {
				t.Errorf("event %v", e)
			}
			skipped += e.Count
		}
		check(t, b, seq(0, 4))
		next = b.End()
		if next >= 1536 && !injected {
			em.InjectGarbage(37)
			injected = true
		}
	}
	if st := src.Stats(); skipped != 37 || st.SkippedBytes != 37 || st.LostSamples != 0 {
		t.Errorf("skipped %d; stats %+v", skipped, st)
	}
}

// TestRHXRecording: RHX recording when the source comes is left
// recording (stopping it would cut the lab's file); the channels are
// enabled while it runs and TCPNumberDataBlocksPerWrite stays as it is.
func TestRHXRecording(t *testing.T) {
	_, addr := startRHX(t, 4, 30000, sim.RHXConfig{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("set runmode record"))
	time.Sleep(50 * time.Millisecond)
	c.Close()
	ctx := context.Background()
	src, err := intan.OpenRHX(ctx, intan.RHXConfig{Addr: addr, BlocksPerWrite: 1})
	if err != nil {
		t.Fatal(err)
	}
	if info := src.Info(); info.RunMode != "Record" || info.BlocksPerWrite != 10 {
		t.Errorf("info %+v", info)
	}
	b, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(t, b, seq(0, 4))
	src.Close()
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("get runmode"))
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := c.Read(buf)
	if string(buf[:n]) != "Return: RunMode Record" {
		t.Errorf("after Close: %q", buf[:n])
	}
}

// TestRHXNotRHX: a peer that is not RHX on the command port is refused
// with an error naming it and saying what it did.
func TestRHXNotRHX(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A spikeline wire-protocol headstage streams frames at once.
	em := sim.NewEmulator(&sim.TestPattern{Channels: 4, Rate: 30000}, sim.EmulatorConfig{Unpaced: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go em.ServeTCP(ctx, ln)
	// A server that accepts and says nothing (an HTTP server waits for
	// a request line).
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// A server that answers something else.
	chatty, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer chatty.Close()
	go func() {
		for {
			c, err := chatty.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 smtp.example.com ESMTP ready\r\n"))
			defer c.Close()
		}
	}()
	cases := []struct {
		addr string
		want []string
	}{
		{ln.Addr().String(), []string{ln.Addr().String(), "not an Intan RHX command port", "not RHX's text replies", "--device tcp:HOST:PORT"}},
		{silent.Addr().String(), []string{silent.Addr().String(), "not an Intan RHX command port", "no reply to \"get runmode\" within 300ms"}},
		{chatty.Addr().String(), []string{chatty.Addr().String(), "not an Intan RHX command port", "220 smtp.example.com"}},
	}
	for _, c := range cases {
		_, err := intan.OpenRHX(ctx, intan.RHXConfig{Addr: c.addr, Timeout: 300 * time.Millisecond})
		if !errors.Is(err, intan.ErrNotRHX) {
			t.Errorf("%s: %v, want ErrNotRHX", c.addr, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.addr, err, w)
			}
		}
	}
	// Nobody listening: the error says what to do in RHX.
	_, err = intan.OpenRHX(ctx, intan.RHXConfig{Addr: "127.0.0.1:1", Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "Remote TCP Control") {
		t.Errorf("no RHX: %v", err)
	}
}

// TestRHXChannels: channels RHX does not have are refused before
// anything streams, naming what it has.
func TestRHXChannels(t *testing.T) {
	_, addr := startRHX(t, 40, 30000, sim.RHXConfig{PortChannels: 32})
	for spec, want := range map[string]string{
		"B-008": "port B has 8 amplifier channels",
		"C":     "port C: no amplifier channels",
		"A-040": "port A has 32",
		"Z-001": "want a native name",
	} {
		_, err := intan.OpenRHX(context.Background(), intan.RHXConfig{Addr: addr, Channels: spec})
		if err == nil || !strings.Contains(err.Error(), want) || spec != "Z-001" && !strings.Contains(err.Error(), "port A: 32 channels, port B: 8 channels") {
			t.Errorf("%s: %v", spec, err)
		}
	}
}

func TestParseChannels(t *testing.T) {
	ports := map[byte]int{'A': 64, 'C': 4}
	for spec, want := range map[string]string{
		"C,A-001":             "A-001,C-000,C-001,C-002,C-003",
		"a-002..a-004, A-003": "A-002,A-003,A-004",
		"A-062-A-063":         "A-062,A-063",
		"c-003,c-001,A-000,C": "A-000,C-000,C-001,C-002,C-003",
	} {
		got, err := intan.ParseChannels(spec, ports)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("%q: %v %v, want %s", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "B", "A-064", "A-003..A-001", "A-001..C-002", "A-1x"} {
		if got, err := intan.ParseChannels(bad, ports); err == nil {
			t.Errorf("%q: %v", bad, got)
		}
	}
}

// TestRHXManyChannels: enabling hundreds of channels takes many command
// batches (each must reach RHX in one piece), and they all stream.
func TestRHXManyChannels(t *testing.T) {
	_, addr := startRHX(t, 300, 30000, sim.RHXConfig{Unpaced: true})
	src, err := intan.OpenRHX(context.Background(), intan.RHXConfig{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if n := len(src.ChannelNames()); n != 300 {
		t.Fatalf("%d channels", n)
	}
	b, err := src.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	check(t, b, seq(0, 300))
}

// TestSpikeRecords: the spike port's 14-byte records, as RHX writes
// them, parse back, across garbage and a record cut short.
func TestSpikeRecords(t *testing.T) {
	want := []intan.SpikeRecord{{Channel: "A-010", Timestamp: 12345, ID: 1}, {Channel: "B-127", Timestamp: 1 << 31, ID: 1}}
	var p []byte
	p = intan.AppendSpikeRecord(p, want[0])
	p = append(p, 0xde, 0xad, 0xbe)
	p = intan.AppendSpikeRecord(p, want[1])
	p = append(p, intan.AppendSpikeRecord(nil, want[0])[:9]...)
	if len(p) != 2*intan.SpikeRecordLen+3+9 {
		t.Fatalf("%d bytes", len(p))
	}
	got, rest, skipped := intan.ParseSpikeRecords(p)
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] || skipped != 3 || len(rest) != 9 {
		t.Errorf("records %+v, %d bytes left, %d skipped", got, len(rest), skipped)
	}
}

// TestRHXTransportSoak streams the test pattern at 30 kHz through the
// RHX emulator, paced at real time, to the RHX source for
// $SPIKELINE_RHX_SOAK (skipped without it) at each channel count of
// $SPIKELINE_RHX_CHANNELS (default 64,512), checking every sample against
// the pattern: the RHX path alone, without the sorter (make
// rhx-transport-soak). It fails on a gap, a skipped byte, a wrong sample
// or the emulator's writes falling a second behind.
func TestRHXTransportSoak(t *testing.T) {
	env := os.Getenv("SPIKELINE_RHX_SOAK")
	if env == "" {
		t.Skip("set SPIKELINE_RHX_SOAK=10m to run the RHX transport soak")
	}
	dur, err := time.ParseDuration(env)
	if err != nil || dur < time.Second {
		t.Fatalf("SPIKELINE_RHX_SOAK=%q", env)
	}
	counts := os.Getenv("SPIKELINE_RHX_CHANNELS")
	if counts == "" {
		counts = "64,512"
	}
	for _, c := range strings.Split(counts, ",") {
		ch, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || ch < 1 {
			t.Fatalf("SPIKELINE_RHX_CHANNELS=%q", counts)
		}
		t.Run(fmt.Sprintf("%dch", ch), func(t *testing.T) {
			em, addr := startRHX(t, ch, 30000, sim.RHXConfig{})
			src, err := intan.OpenRHX(context.Background(), intan.RHXConfig{Addr: addr})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			chans := seq(0, ch)
			want := uint64(dur.Seconds() * 30000)
			start := time.Now()
			var next uint64
			cpu0 := processCPU()
			for next < want {
				b, err := src.Next(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if b.First != next || len(b.Events) > 0 {
					t.Fatalf("block at %d, want %d (events %v)", b.First, next, b.Events)
				}
				check(t, b, chans)
				next = b.End()
			}
			wall := time.Since(start)
			cpu := processCPU() - cpu0
			st, es := src.Stats(), em.Stats()
			load, _ := os.ReadFile("/proc/loadavg")
			t.Logf("%d channels: %d samples per channel (%.1f s) in %v, all checked; %d data blocks, %d bytes, %d skipped, %d lost; emulator's latest write %v after its samples; process CPU %v (%.1f %% of one core, emulator and checks included); load %s",
				ch, next, float64(next)/30000, wall.Round(time.Millisecond), st.Frames, st.Bytes, st.SkippedBytes, st.LostSamples,
				es.MaxLate.Round(time.Microsecond), cpu.Round(time.Millisecond), 100*cpu.Seconds()/wall.Seconds(), strings.Fields(string(load))[0])
			if st.SkippedBytes != 0 || st.LostSamples != 0 || es.MaxLate > time.Second {
				t.Errorf("stats %+v, emulator %+v", st, es)
			}
		})
	}
}
