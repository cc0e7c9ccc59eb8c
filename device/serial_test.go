//go:build linux

package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
)

// ptyHeadstage runs a sim.Emulator on a real pseudo-terminal behind a
// symbolic link and returns the link. The emulator stops at the end of
// the test.
func ptyHeadstage(t testing.TB, src device.Source, cfg sim.EmulatorConfig) (*sim.Emulator, string) {
	t.Helper()
	link := filepath.Join(t.TempDir(), "headstage")
	em := sim.NewEmulator(src, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() {
		done <- em.ServePTY(ctx, link, func(string) {
			select {
			case ready <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ServePTY: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("ServePTY: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the emulator did not publish its pseudo-terminal")
	}
	return em, link
}

// tracer collects an emulator's ground truth.
type tracer struct {
	mu  sync.Mutex
	rec []sim.FrameRecord
}

func (tr *tracer) add(r sim.FrameRecord) {
	tr.mu.Lock()
	tr.rec = append(tr.rec, r)
	tr.mu.Unlock()
}

func (tr *tracer) frames() []sim.FrameRecord {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]sim.FrameRecord(nil), tr.rec...)
}

// TestSerialPTYCorruption streams a test pattern over a pseudo-terminal
// with 1% of bytes damaged and 2% of frames dropped, through
// go.bug.st/serial, and compares what the SerialSource reports with the
// emulator's record of every frame.
func TestSerialPTYCorruption(t *testing.T) {
	const total = 30000 // samples per channel
	var tr tracer
	pat := &sim.TestPattern{Channels: 4, Rate: 30000, BlockSamples: 250, Samples: total}
	em, link := ptyHeadstage(t, pat, sim.EmulatorConfig{
		FrameSamples: 10, Unpaced: true, Seed: 7, Trace: tr.add,
		Faults: sim.Faults{CorruptRate: 0.01, DropRate: 0.02},
	})
	src, err := device.OpenSerial(context.Background(), device.SerialConfig{Path: link, Queue: 1 << 14})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	var got []device.Block
	var events []device.Event
	lastIntact := uint64(0)
	for {
		if lastIntact == 0 {
			select {
			case <-em.Ended():
				for _, r := range tr.frames() {
					if r.Fate == sim.FrameSent {
						lastIntact = r.Counter + 1
					}
				}
			default:
			}
		}
		if lastIntact > 0 && len(got) > 0 && got[len(got)-1].First+1 == lastIntact {
			break
		}
		b, err := nextBlock(t, src, 10*time.Second)
		if err != nil {
			t.Fatalf("after %d blocks: %v", len(got), err)
		}
		checkPattern(t, b, nil)
		if b.Len() != 10 {
			t.Fatalf("block at %d of %d samples, want 10", b.First, b.Len())
		}
		events = append(events, b.Events...)
		b.Samples = nil // reused by the source; only the header is kept
		got = append(got, b)
	}

	// Every intact frame arrives, in order; nothing else does. The host
	// sees a gap wherever intact frames are not contiguous.
	var want []sim.FrameRecord
	var gaps []device.Event
	var crc, corrupted, dropped int
	next := uint64(0)
	trace := tr.frames()
	for len(trace) > 0 && trace[len(trace)-1].Fate != sim.FrameSent {
		// Faults after the last intact frame reach the host with no
		// Block to carry them.
		trace = trace[:len(trace)-1]
	}
	for _, r := range trace {
		if r.Counter != next {
			t.Fatalf("trace: frame at %d, want %d", r.Counter, next)
		}
		next += uint64(r.Samples)
		switch r.Fate {
		case sim.FrameSent:
			if len(want) > 0 {
				if end := want[len(want)-1].Counter + uint64(want[len(want)-1].Samples); r.Counter > end {
					gaps = append(gaps, device.Event{Kind: device.EventGap, Sample: r.Counter, Count: r.Counter - end})
				}
			}
			want = append(want, r)
		case sim.FrameCorrupted:
			corrupted++
			if !r.Header {
				crc++ // a damaged header is skipped as garbage, not a CRC failure
			}
		case sim.FrameDropped:
			dropped++
		default:
			t.Fatalf("frame at %d: %v", r.Counter, r.Fate)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d blocks, the emulator sent %d intact frames (%d corrupted, %d dropped)", len(got), len(want), corrupted, dropped)
	}
	for i := range want {
		if got[i].First != want[i].Counter {
			t.Fatalf("block %d at %d, want frame at %d", i, got[i].First, want[i].Counter)
		}
	}
	var gotGaps []device.Event
	var gotCRC int
	for _, e := range events {
		switch e.Kind {
		case device.EventGap:
			gotGaps = append(gotGaps, device.Event{Kind: e.Kind, Sample: e.Sample, Count: e.Count})
		case device.EventCRC:
			gotCRC += int(e.Count)
		case device.EventReset, device.EventFormat, device.EventBadFrame:
			t.Errorf("unexpected event %v", e)
		}
	}
	if len(gotGaps) != len(gaps) {
		t.Fatalf("%d gap events, want %d", len(gotGaps), len(gaps))
	}
	for i := range gaps {
		if gotGaps[i] != gaps[i] {
			t.Fatalf("gap %d: %+v, want %+v", i, gotGaps[i], gaps[i])
		}
	}
	if gotCRC != crc {
		t.Errorf("%d CRC failures, want %d (of %d corrupted frames)", gotCRC, crc, corrupted)
	}
	st := em.Stats()
	t.Logf("emulator: %d intact, %d corrupted, %d dropped frames, %d bytes damaged; host: %d blocks, %d gaps, %d CRC failures",
		st.FramesSent, st.FramesCorrupted, st.FramesDropped, st.BytesDamaged, len(got), len(gotGaps), gotCRC)
	if corrupted == 0 || dropped == 0 || crc == 0 {
		t.Fatalf("the faults did not happen: %d corrupted, %d dropped, %d CRC", corrupted, dropped, crc)
	}
}

// TestSerialPTYUnplug unplugs the pseudo-terminal under the SerialSource
// and checks that it reconnects at the same path and reports exactly the
// samples lost.
func TestSerialPTYUnplug(t *testing.T) {
	var tr tracer
	pat := &sim.TestPattern{Channels: 4, Rate: 10000, BlockSamples: 100}
	em, link := ptyHeadstage(t, pat, sim.EmulatorConfig{
		FrameSamples: 10, Trace: tr.add, MaxLag: time.Minute,
		Faults: sim.Faults{UnplugAt: 150 * time.Millisecond, UnplugFor: 250 * time.Millisecond},
	})
	src, err := device.OpenSerial(context.Background(), device.SerialConfig{
		Path: link, Reconnect: true, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	var (
		delivered      uint64
		first, end     uint64
		started        bool
		gaps           []device.Event
		disc, reconn   int
		emptyDisc      bool
		gapBefore      uint64 // end of the last block before the gap
		gapAfter       uint64 // first sample after it
		afterReconnect int
	)
	for afterReconnect < 100 {
		b, err := nextBlock(t, src, 10*time.Second)
		if err != nil {
			t.Fatalf("Next: %v (status %+v)", err, src.Status())
		}
		for _, e := range b.Events {
			switch e.Kind {
			case device.EventDisconnect:
				disc++
				emptyDisc = b.Len() == 0
			case device.EventReconnect:
				reconn++
			case device.EventGap:
				gaps = append(gaps, e)
				gapBefore, gapAfter = end, b.First
			case device.EventResync:
				// The remains of a frame cut by the unplug.
			default:
				t.Errorf("unexpected event %v", e)
			}
		}
		if b.Len() == 0 {
			continue
		}
		checkPattern(t, b, nil)
		if !started {
			first, end, started = b.First, b.First, true
		}
		if b.First != end && len(gaps) == 0 {
			t.Fatalf("block at %d after %d without a gap event", b.First, end)
		}
		delivered += uint64(b.Len())
		end = b.End()
		if reconn > 0 {
			afterReconnect++
		}
	}
	if disc != 1 || reconn != 1 || len(gaps) != 1 {
		t.Fatalf("%d disconnects, %d reconnects, %d gaps; want 1 each", disc, reconn, len(gaps))
	}
	if !emptyDisc {
		t.Errorf("the disconnection did not come at once in a Block of its own")
	}
	g := gaps[0]
	if g.Count != gapAfter-gapBefore || g.Sample != gapAfter {
		t.Errorf("gap %v, want %d samples before %d", g, gapAfter-gapBefore, gapAfter)
	}
	if delivered+g.Count != end-first {
		t.Errorf("%d samples delivered + %d lost != %d spanned", delivered, g.Count, end-first)
	}
	// The emulator's record: the gap is the frames it could not send while
	// away plus those left unread in the old pseudo-terminal.
	var idle, unread uint64
	for _, r := range tr.frames() {
		if r.Counter >= gapBefore && r.Counter < gapAfter {
			switch r.Fate {
			case sim.FrameIdle:
				idle += uint64(r.Samples)
			case sim.FrameSent:
				unread += uint64(r.Samples)
			default:
				t.Errorf("frame at %d in the gap: %v", r.Counter, r.Fate)
			}
		}
	}
	st := em.Stats()
	if idle+unread != g.Count || idle != st.SamplesIdle || st.Unplugs != 1 {
		t.Errorf("gap of %d samples; emulator: %d idle (stats %d), %d sent but unread, %d unplugs",
			g.Count, idle, st.SamplesIdle, unread, st.Unplugs)
	}
	ss := src.Status()
	if ss.Disconnects != 1 || ss.Reconnects != 1 || ss.LostSamples != g.Count || !ss.Connected {
		t.Errorf("status %+v", ss)
	}
	t.Logf("gap of %d samples (%d while unplugged, %d unread at the unplug)", g.Count, idle, unread)
}

// TestSerialPTYCommands drives the emulator's commands through the
// SerialSource: ping, info, stop/start, channel subset, rate, stimulation,
// refused and unsupported commands.
func TestSerialPTYCommands(t *testing.T) {
	pat := &sim.TestPattern{Channels: 8, Rate: 10000, BlockSamples: 100}
	em, link := ptyHeadstage(t, pat, sim.EmulatorConfig{FrameSamples: 20, Speed: 2})
	src, err := device.OpenSerial(context.Background(), device.SerialConfig{Path: link})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()

	if b, err := nextBlock(t, src, 5*time.Second); err != nil {
		t.Fatal(err)
	} else {
		checkPattern(t, b, nil)
	}

	t.Run("Ping", func(t *testing.T) {
		for range 5 {
			rtt, err := src.Ping(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rtt <= 0 || rtt > time.Second {
				t.Fatalf("rtt %v", rtt)
			}
			t.Logf("ping rtt %v", rtt)
		}
	})

	t.Run("Info", func(t *testing.T) {
		r, err := src.Command(ctx, device.Command{Op: device.OpInfo})
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Name     string  `json:"name"`
			Channels int     `json:"channels"`
			Rate     float64 `json:"rate"`
			SetRate  bool    `json:"set_rate"`
		}
		if err := json.Unmarshal([]byte(r.Message), &info); err != nil {
			t.Fatalf("info %q: %v", r.Message, err)
		}
		if info.Channels != 8 || info.Rate != 10000 || !info.SetRate || r.Channels != 8 || r.Rate != 10000 {
			t.Fatalf("info %+v, reply %+v", info, r)
		}
	})

	t.Run("StopStart", func(t *testing.T) {
		stop, err := src.Command(ctx, device.Command{Op: device.OpStop})
		if err != nil {
			t.Fatal(err)
		}
		// Frames queued before the stop drain; none is newer than it.
		end := uint64(0)
		for {
			b, err := nextBlock(t, src, 200*time.Millisecond)
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.End() > stop.Counter {
				t.Fatalf("block %d..%d after stop at counter %d", b.First, b.End(), stop.Counter)
			}
			end = b.End()
		}
		if em.Streaming() {
			t.Fatal("emulator still streaming")
		}
		if end == 0 {
			end = stop.Counter
		}
		start, err := src.Command(ctx, device.Command{Op: device.OpStart})
		if err != nil {
			t.Fatal(err)
		}
		b, err := nextBlock(t, src, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		checkPattern(t, b, nil)
		if b.First < stop.Counter || b.First+uint64(b.Len()) < start.Counter {
			t.Fatalf("first block after start at %d, stop at %d, start at %d", b.First, stop.Counter, start.Counter)
		}
		var gap uint64
		for _, e := range b.Events {
			if e.Kind == device.EventGap {
				gap += e.Count
			}
		}
		if gap != b.First-end {
			t.Fatalf("gap event of %d samples, want %d (stopped %d..%d)", gap, b.First-end, end, b.First)
		}
	})

	t.Run("SetChannels", func(t *testing.T) {
		r, err := src.Command(ctx, device.Command{Op: device.OpSetChannels, Channels: []uint16{5, 2, 7}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Channels != 3 {
			t.Fatalf("reply says %d channels", r.Channels)
		}
		for n := 0; n < 20; {
			b, err := nextBlock(t, src, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if b.First >= r.Counter && b.Channels != 3 {
				t.Fatalf("block at %d with %d channels after set_channels at %d", b.First, b.Channels, r.Counter)
			}
			if b.Channels == 3 {
				checkPattern(t, b, []int{5, 2, 7})
				n++
			}
		}
		_, err = src.Command(ctx, device.Command{Op: device.OpSetChannels, Channels: []uint16{1, 8}})
		var ce *device.CommandError
		if !errors.As(err, &ce) || ce.Status != device.StatusError {
			t.Fatalf("set_channels to a missing channel: %v", err)
		}
		if _, err := src.Command(ctx, device.Command{Op: device.OpSetChannels}); err != nil {
			t.Fatal(err)
		}
		for {
			b, err := nextBlock(t, src, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if b.Channels == 8 {
				checkPattern(t, b, nil)
				break
			}
		}
	})

	t.Run("SetRate", func(t *testing.T) {
		r, err := src.Command(ctx, device.Command{Op: device.OpSetRate, Rate: 20000})
		if err != nil {
			t.Fatal(err)
		}
		if r.Rate != 20000 {
			t.Fatalf("set_rate reply says %d Hz", r.Rate)
		}
		for {
			b, err := nextBlock(t, src, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if b.Rate == 20000 {
				checkPattern(t, b, nil)
				break
			}
			if b.First > r.Counter+1000 {
				t.Fatalf("still %g Hz at %d", b.Rate, b.First)
			}
		}
	})

	t.Run("Stimulate", func(t *testing.T) {
		stim := device.Stim{Channel: 3, Pulses: 10, PhaseUs: 200, InterphaseUs: 50, PeriodUs: 10000, AmplitudeUA: 25, Biphasic: true, CathodicFirst: true}
		if _, err := src.Command(ctx, device.Command{Op: device.OpStimulate, Stim: stim}); err != nil {
			t.Fatal(err)
		}
		if n := em.Stats().Stimulations; n != 1 {
			t.Fatalf("emulator counted %d stimulations", n)
		}
		stim.Channel = 100
		_, err := src.Command(ctx, device.Command{Op: device.OpStimulate, Stim: stim})
		var ce *device.CommandError
		if !errors.As(err, &ce) || ce.Status != device.StatusError {
			t.Fatalf("stimulating a missing channel: %v", err)
		}
	})

	t.Run("Unsupported", func(t *testing.T) {
		_, err := src.Command(ctx, device.Command{Op: 99})
		var ce *device.CommandError
		if !errors.As(err, &ce) || ce.Status != device.StatusUnsupported {
			t.Fatalf("op 99: %v", err)
		}
	})

	if st := src.Status(); st.ModemErrors == 0 || st.Timeouts != 0 {
		t.Errorf("status %+v: want modem-line failures on a pty, no timeouts", st)
	}
}

// TestSerialOpenErrors checks the errors of a port that is not there.
func TestSerialOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := device.OpenSerial(ctx, device.SerialConfig{}); err == nil {
		t.Error("opened a port without a path")
	}
	missing := filepath.Join(t.TempDir(), "nothing")
	if _, err := device.OpenSerial(ctx, device.SerialConfig{Path: missing}); err == nil {
		t.Errorf("opened %s", missing)
	}
	_, err := device.OpenSerial(ctx, device.SerialConfig{VID: "ffff", PID: "fffe"})
	if !errors.Is(err, device.ErrNoPort) {
		t.Errorf("VID ffff: %v, want ErrNoPort", err)
	}
}

// TestSerialPTYReadTimeout checks that a silent device is treated as gone
// while it should stream, and not after the host stopped it.
func TestSerialPTYReadTimeout(t *testing.T) {
	pat := &sim.TestPattern{Channels: 2, Rate: 10000}
	em, link := ptyHeadstage(t, pat, sim.EmulatorConfig{FrameSamples: 10, WaitForStart: true})
	src, err := device.OpenSerial(context.Background(), device.SerialConfig{
		Path: link, ReadTimeout: 100 * time.Millisecond, Reconnect: true, Backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// The device waits for a start command: silence, taken for a hang.
	for start := time.Now(); src.Status().Disconnects == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("no disconnection after 5 s of silence: %+v", src.Status())
		}
	}
	ctx := context.Background()
	for start := time.Now(); ; {
		_, err := src.Command(ctx, device.Command{Op: device.OpStart})
		if err == nil {
			break
		}
		if !errors.Is(err, device.ErrNotConnected) && !errors.Is(err, device.ErrDisconnected) || time.Since(start) > 5*time.Second {
			t.Fatalf("start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// No data came before the disconnection, so its event rides on the
	// first data Block, with the reconnection.
	b, err := nextBlock(t, src, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkPattern(t, b, nil)
	if len(b.Events) < 2 || b.Events[0].Kind != device.EventDisconnect || !strings.Contains(b.Events[0].Detail, "read timeout") ||
		b.Events[len(b.Events)-1].Kind != device.EventReconnect {
		t.Fatalf("first block: events %v; want the stall as a disconnection, then the reconnection", b.Events)
	}
	if _, err := src.Command(ctx, device.Command{Op: device.OpStop}); err != nil {
		t.Fatal(err)
	}
	before := src.Status().Disconnects
	time.Sleep(400 * time.Millisecond)
	if st := src.Status(); st.Disconnects != before || !st.Connected {
		t.Fatalf("stopped on purpose, yet %d more disconnections", st.Disconnects-before)
	}
	if em.Streaming() {
		t.Fatal("the emulator still streams")
	}
}
