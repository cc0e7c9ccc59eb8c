package intan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spikeline/spikeline/device"
)

// RHXConfig configures an RHX source. Only Addr is required.
type RHXConfig struct {
	// Addr is the RHX command port, HOST or HOST:PORT (port 5000 if
	// left out).
	Addr string
	// WaveformAddr is the waveform port (default: Addr's host, the
	// command port + 1, as RHX's defaults 5000/5001).
	WaveformAddr string
	// Channels are the amplifier channels to stream: a channel list
	// (ParseChannels: "A-000..A-031,B"); "" streams every amplifier
	// channel of every port.
	Channels string
	// Band is the band streamed (default BandWide, the amplifier signal).
	Band Band
	// BlocksPerWrite is TCPNumberDataBlocksPerWrite, 1..100: how many
	// 128-sample data blocks RHX sends at once (default 1, the lowest
	// latency: 4.3 ms at 30 kHz). RHX cannot change it while recording;
	// then the value it has is used.
	BlocksPerWrite int
	// Reconnect keeps the source alive across a lost waveform connection:
	// it reconnects (asking RHX to listen again) and reports the samples
	// lost from the timestamps.
	Reconnect bool
	// Timeout bounds connecting and each command exchange (default 5 s).
	Timeout time.Duration
	// Logf, if set, receives one line per connection event.
	Logf func(format string, args ...any)
}

// RHXInfo is what the RHX software said when the source connected.
type RHXInfo struct {
	Type           string  // controller: ControllerRecordUSB2, ControllerRecordUSB3, ControllerStimRecord
	SampleRate     float64 // Hz
	RunMode        string  // at connection: Stop, Run, Record or Trigger
	BlocksPerWrite int
	Notch          string // NotchFilterFreqHertz: None, 50 or 60 (RHX applies it before the TCP output)
	Ports          map[byte]int
}

// RHXSource is a device.Source streaming amplifier channels from the
// Intan RHX software over TCP (docs/intan.md). Open configures RHX over
// its command port (stop, clear the data outputs, enable the channels,
// set TCPNumberDataBlocksPerWrite, run) and reads the waveform port.
// Each Block is one or more 128-sample data blocks, in µV of Gain per
// count. RHX's timestamps are the device clock: a jump is a
// device.EventGap of exactly the samples missing, a timestamp going back
// (acquisition restarted) a device.EventReset, bytes skipped to find the
// next magic number a device.EventResync; a lost waveform connection is
// a device.EventDisconnect and, with Reconnect, a device.EventReconnect
// once data flows again.
type RHXSource struct {
	cfg      RHXConfig
	info     RHXInfo
	names    []string
	words    int // uint16 words per frame
	blockLen int
	wasMode  string // run mode at connection, restored by Close

	mu    sync.Mutex // guards cmd, wave, stats, closed
	cmd   *commandConn
	wave  net.Conn
	r     *bufio.Reader
	stats device.Stats

	started       bool
	lastTS        uint32
	next          uint64 // device sample index expected next
	offset        int64  // bytes read from the waveform port
	queue         []dataBlock
	free          [][]byte       // frame buffers of delivered data blocks, for reuse
	samples       []int16        // the last Block's samples, reused
	pendingEvents []device.Event // events seen without a data block (resync before an error)
	closed        bool
}

// OpenRHX connects to the RHX software and starts streaming.
func OpenRHX(ctx context.Context, cfg RHXConfig) (*RHXSource, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.BlocksPerWrite == 0 {
		cfg.BlocksPerWrite = 1
	}
	if cfg.BlocksPerWrite < 1 || cfg.BlocksPerWrite > 100 {
		return nil, fmt.Errorf("intan: TCPNumberDataBlocksPerWrite %d, want 1..100", cfg.BlocksPerWrite)
	}
	param, err := cfg.Band.Parameter()
	if err != nil {
		return nil, err
	}
	addr, err := withPort(cfg.Addr, DefaultCommandPort)
	if err != nil {
		return nil, err
	}
	cfg.Addr = addr
	if cfg.WaveformAddr == "" {
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		cfg.WaveformAddr = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	s := &RHXSource{cfg: cfg}
	cmd, err := dialCommand(ctx, addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	s.cmd = cmd
	if err := s.setup(ctx, param); err != nil {
		cmd.close()
		return nil, err
	}
	if err := s.connectWaveform(ctx); err != nil {
		s.restore(ctx)
		cmd.close()
		return nil, err
	}
	if s.wasMode == "Stop" || s.wasMode == "Run" {
		if err := cmd.setRunMode(ctx, "Run"); err != nil {
			s.wave.Close()
			s.restore(ctx)
			cmd.close()
			return nil, err
		}
	}
	s.logf("intan: streaming %d channels at %g Hz from RHX (%s) at %s, waveforms on %s, %d data blocks per write",
		len(s.names), s.info.SampleRate, s.info.Type, addr, cfg.WaveformAddr, s.info.BlocksPerWrite)
	return s, nil
}

// withPort adds the default port to a host.
func withPort(addr string, port int) (string, error) {
	addr = strings.TrimPrefix(addr, "//")
	if addr == "" {
		return "", errors.New("intan: no RHX address")
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr, nil
	}
	if strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "[") {
		addr = "[" + addr + "]" // a bare IPv6 address
	}
	a := addr + ":" + strconv.Itoa(port)
	if _, _, err := net.SplitHostPort(a); err != nil {
		return "", fmt.Errorf("intan: RHX address %q: %w", addr, err)
	}
	return a, nil
}

// sampleRates maps RHX's SampleRateHertz values to rates (3333 is
// 10000/3; RHX: Engine/Processing/systemstate.cpp).
func sampleRate(v string) (float64, error) {
	if v == "3333" {
		return 10000.0 / 3, nil
	}
	return strconv.ParseFloat(v, 64)
}

// setup reads RHX's settings, stops it if it runs (unless it records),
// and enables the channels.
func (s *RHXSource) setup(ctx context.Context, param string) error {
	cmd := s.cmd
	var err error
	if s.info.Type, err = cmd.get(ctx, "Type"); err != nil {
		return err
	}
	v, err := cmd.get(ctx, "SampleRateHertz")
	if err != nil {
		return err
	}
	if s.info.SampleRate, err = sampleRate(v); err != nil {
		return fmt.Errorf("intan: RHX at %s: SampleRateHertz %q: %w", cmd.peer, v, err)
	}
	if err := device.CheckRate(cmd.peer, "SampleRateHertz", s.info.SampleRate); err != nil {
		return fmt.Errorf("intan: %w", err)
	}
	if s.info.Notch, err = cmd.get(ctx, "NotchFilterFreqHertz"); err != nil {
		return err
	}
	if s.wasMode, err = cmd.runMode(ctx); err != nil {
		return err
	}
	s.info.RunMode = s.wasMode
	// The ports and their amplifier channels.
	s.info.Ports = map[byte]int{}
	for i := range len(Ports) {
		p := Ports[i]
		reply, _, err := cmd.exchange(ctx, "get "+string(p)+".NumberAmplifierChannels")
		if err != nil {
			return err
		}
		v, ok := strings.CutPrefix(reply, "Return: NumberAmplifierChannels ")
		if !ok {
			continue // no such port on this controller
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxPortChannels {
			return fmt.Errorf("intan: RHX at %s: port %c: NumberAmplifierChannels %q", cmd.peer, p, v)
		}
		if n > 0 {
			s.info.Ports[p] = n
		}
	}
	spec := s.cfg.Channels
	if spec == "" {
		for i := range len(Ports) {
			if s.info.Ports[Ports[i]] > 0 {
				spec += string(Ports[i]) + ","
			}
		}
		if spec == "" {
			return fmt.Errorf("intan: RHX at %s: no amplifier channels on any port (is a headstage connected, and the ports scanned?)", cmd.peer)
		}
	}
	if s.names, err = ParseChannels(spec, s.info.Ports); err != nil {
		return fmt.Errorf("%w (RHX at %s has %s)", err, cmd.peer, describePorts(s.info.Ports))
	}
	if err := device.CheckChannels(cmd.peer, "channels", len(s.names)); err != nil {
		return fmt.Errorf("intan: %w", err)
	}
	s.words = len(s.names)
	s.blockLen = WaveformBlockBytes(s.words)
	recording := s.wasMode == "Record" || s.wasMode == "Trigger"
	if s.wasMode == "Run" {
		if err := cmd.setRunMode(ctx, "Stop"); err != nil {
			return err
		}
	}
	cmds := []string{"execute clearalldataoutputs"}
	for _, n := range s.names {
		cmds = append(cmds, "set "+n+"."+param+" true")
	}
	if !recording {
		cmds = append(cmds, "set TCPNumberDataBlocksPerWrite "+strconv.Itoa(s.cfg.BlocksPerWrite))
	}
	if err := cmd.do(ctx, cmds...); err != nil {
		return err
	}
	v, err = cmd.get(ctx, "TCPNumberDataBlocksPerWrite")
	if err != nil {
		return err
	}
	if s.info.BlocksPerWrite, err = strconv.Atoi(v); err != nil || s.info.BlocksPerWrite < 1 {
		return fmt.Errorf("intan: RHX at %s: TCPNumberDataBlocksPerWrite %q", cmd.peer, v)
	}
	if recording && s.info.BlocksPerWrite != s.cfg.BlocksPerWrite {
		s.logf("intan: RHX is recording (RunMode %s): TCPNumberDataBlocksPerWrite stays %d", s.wasMode, s.info.BlocksPerWrite)
	}
	return nil
}

func describePorts(ports map[byte]int) string {
	var parts []string
	for i := range len(Ports) {
		if n := ports[Ports[i]]; n > 0 {
			parts = append(parts, fmt.Sprintf("port %c: %d channels", Ports[i], n))
		}
	}
	if len(parts) == 0 {
		return "no amplifier channels"
	}
	return strings.Join(parts, ", ")
}

// errWaveform marks a failure to connect to the waveform port (the
// command connection is fine).
type errWaveform struct{ err error }

func (e *errWaveform) Error() string { return e.err.Error() }
func (e *errWaveform) Unwrap() error { return e.err }

// connectWaveform asks RHX to listen on its waveform port and connects.
// A failure to reach the waveform port is an *errWaveform; any other
// error is the command connection's.
func (s *RHXSource) connectWaveform(ctx context.Context) error {
	if err := s.cmd.do(ctx, "execute connecttcpwaveformdataoutput"); err != nil {
		return err
	}
	d := net.Dialer{Timeout: s.cfg.Timeout}
	var c net.Conn
	var err error
	// RHX starts listening when it handles the command: try a few times.
	for try := 0; try < 20; try++ {
		if c, err = d.DialContext(ctx, "tcp", s.cfg.WaveformAddr); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err != nil {
		return &errWaveform{fmt.Errorf("intan: RHX waveform port %s: %w (RHX: Network > Remote TCP Control > Data Output > Waveform Output)", s.cfg.WaveformAddr, err)}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 20)
	}
	s.mu.Lock()
	s.wave = c
	s.r = bufio.NewReaderSize(c, max(64<<10, 2*s.blockLen*s.info.BlocksPerWrite))
	closed := s.closed
	s.mu.Unlock()
	if closed {
		c.Close()
		return &errWaveform{net.ErrClosed}
	}
	return nil
}

// Info returns what RHX reported at connection.
func (s *RHXSource) Info() RHXInfo { return s.info }

// ChannelNames returns the native names of the channels streamed, in
// Block order (RHX's order).
func (s *RHXSource) ChannelNames() []string { return append([]string(nil), s.names...) }

// Stats returns the link statistics: Frames counts data blocks.
func (s *RHXSource) Stats() device.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *RHXSource) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

func (s *RHXSource) event(e device.Event) {
	s.mu.Lock()
	s.stats.Add(e)
	s.mu.Unlock()
	s.pendingEvents = append(s.pendingEvents, e)
}

var magicBytes = binary.LittleEndian.AppendUint32(nil, WaveformMagic)

// Next returns the next Block: the data blocks already received, as one
// Block while their timestamps are contiguous. Its Samples are reused by
// the next call.
func (s *RHXSource) Next(ctx context.Context) (device.Block, error) {
	for {
		if err := ctx.Err(); err != nil {
			return device.Block{}, err
		}
		b, err := s.read(ctx)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return device.Block{}, ctx.Err()
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return device.Block{}, io.EOF
		}
		if !s.cfg.Reconnect {
			return device.Block{}, err
		}
		s.event(device.Event{Kind: device.EventDisconnect, Sample: s.next, Detail: fmt.Sprintf("RHX waveform port %s: %v", s.cfg.WaveformAddr, err)})
		s.logf("intan: RHX waveform connection lost: %v; reconnecting", err)
		if err := s.reconnect(ctx); err != nil {
			return device.Block{}, err
		}
	}
}

// reconnect reconnects the waveform port (and the command port if it
// went too), backing off up to a second between tries.
func (s *RHXSource) reconnect(ctx context.Context) error {
	s.mu.Lock()
	if s.wave != nil {
		s.wave.Close()
	}
	s.mu.Unlock()
	wait := 50 * time.Millisecond
	for try := 1; ; try++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
		if s.cmd == nil {
			cmd, err := dialCommand(ctx, s.cfg.Addr, s.cfg.Timeout)
			if err != nil {
				s.logf("intan: reconnecting to RHX (try %d): %v", try, err)
				continue
			}
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
		}
		if err := s.connectWaveform(ctx); err != nil {
			s.logf("intan: reconnecting to RHX (try %d): %v", try, err)
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return io.EOF
			}
			var we *errWaveform
			if !errors.As(err, &we) {
				// The command connection failed: dial it again.
				s.mu.Lock()
				if s.cmd != nil {
					s.cmd.close()
					s.cmd = nil
				}
				s.mu.Unlock()
			}
			continue
		}
		s.event(device.Event{Kind: device.EventReconnect, Sample: s.next, Detail: "RHX waveform port " + s.cfg.WaveformAddr})
		s.logf("intan: RHX waveform connection back after %d tries", try)
		return nil
	}
}

// dataBlock is a data block read from the waveform port, its frames not
// yet delivered and the events seen before it.
type dataBlock struct {
	frames []byte // 128 frames of 4+2C bytes
	next   int    // first frame not delivered
	events []device.Event
}

// maxQueued bounds the data blocks read ahead of delivery.
const maxQueued = 100

// read delivers the frames received so far (reading at least one data
// block) as one Block, up to the first discontinuity of the timestamps.
func (s *RHXSource) read(ctx context.Context) (device.Block, error) {
	s.mu.Lock()
	r, c := s.r, s.wave
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	if len(s.queue) == 0 {
		if err := s.readBlock(r); err != nil {
			return device.Block{}, err
		}
	}
	for len(s.queue) < maxQueued && r.Buffered() >= s.blockLen {
		if err := s.readBlock(r); err != nil {
			break // deliver what is read; the error comes back next time
		}
	}
	C := s.words
	frame := 4 + 2*C
	b := device.Block{Rate: s.info.SampleRate, Channels: C, Gain: Gain, Events: s.pendingEvents}
	s.pendingEvents = nil
	n := 0
	for len(s.queue) > 0 {
		q := &s.queue[0]
		if len(q.events) > 0 {
			if n > 0 {
				break // its events belong to the Block it starts
			}
			b.Events = append(b.Events, q.events...)
			q.events = nil
		}
		for q.next < FramesPerBlock {
			f := q.frames[q.next*frame:]
			ts := binary.LittleEndian.Uint32(f)
			idx := uint64(ts)
			if s.started {
				if d := int32(ts - s.lastTS); d > 0 {
					idx = s.next - 1 + uint64(d)
				}
			}
			if n == 0 {
				if s.started && idx != s.next {
					e := device.Event{Kind: device.EventGap, Sample: idx, Count: idx - s.next,
						Detail: fmt.Sprintf("RHX timestamps jump from %d to %d", s.lastTS, ts)}
					if idx < s.next {
						e = device.Event{Kind: device.EventReset, Sample: idx, Detail: fmt.Sprintf("RHX timestamps go back from %d to %d (acquisition restarted)", s.lastTS, ts)}
					}
					s.mu.Lock()
					s.stats.Add(e)
					s.mu.Unlock()
					b.Events = append(b.Events, e)
				}
				b.First = idx
				if want := C * FramesPerBlock * len(s.queue); cap(s.samples) < want {
					s.samples = make([]int16, 0, want)
				}
				b.Samples = s.samples[:0]
			} else if idx != s.next {
				break
			}
			k := len(b.Samples)
			b.Samples = b.Samples[:k+C]
			row, words := b.Samples[k:k+C], f[4:4+2*C]
			for w := range row {
				row[w] = int16(uint16(words[2*w]) | uint16(words[2*w+1])<<8 ^ 0x8000)
			}
			s.lastTS, s.next, s.started = ts, idx+1, true
			q.next++
			n++
		}
		if q.next < FramesPerBlock {
			break
		}
		s.free = append(s.free, q.frames)
		s.queue[0] = dataBlock{}
		s.queue = s.queue[1:]
	}
	s.mu.Lock()
	s.stats.Samples += uint64(n)
	s.mu.Unlock()
	b.Received = time.Now()
	return b, nil
}

// readBlock reads one data block into the queue, finding the magic
// number first if it is not where a block starts (a device.EventResync
// for the bytes skipped).
func (s *RHXSource) readBlock(r *bufio.Reader) error {
	skipped := 0
	at := s.offset
	for {
		p, err := r.Peek(4)
		if err != nil {
			s.countSkipped(skipped, at)
			return err
		}
		if bytes.Equal(p, magicBytes) {
			break
		}
		// Look for the magic number in what is buffered.
		buf, _ := r.Peek(r.Buffered())
		i := bytes.Index(buf[1:], magicBytes)
		k := i + 1
		if i < 0 {
			k = max(1, len(buf)-3)
		}
		r.Discard(k)
		skipped += k
		s.offset += int64(k)
	}
	r.Discard(4)
	s.offset += 4
	var frames []byte
	if n := len(s.free); n > 0 {
		frames, s.free = s.free[n-1], s.free[:n-1]
	} else {
		frames = make([]byte, s.blockLen-4)
	}
	if n, err := io.ReadFull(r, frames); err != nil {
		s.offset += int64(n)
		s.countSkipped(skipped, at)
		return err
	}
	s.offset += int64(len(frames))
	var events []device.Event
	if skipped > 0 {
		// A magic number found by searching may be data that looks like
		// one: the block's timestamps must run on.
		frame := 4 + 2*s.words
		t0 := binary.LittleEndian.Uint32(frames)
		for i := 1; i < FramesPerBlock; i++ {
			if binary.LittleEndian.Uint32(frames[i*frame:]) != t0+uint32(i) {
				s.countSkipped(skipped+s.blockLen, at)
				return s.readBlock(r)
			}
		}
		e := device.Event{Kind: device.EventResync, Sample: s.next, Count: uint64(skipped), Offset: at,
			Detail: fmt.Sprintf("%d bytes without the RHX waveform magic number 0x%08x", skipped, WaveformMagic)}
		s.mu.Lock()
		s.stats.Add(e)
		s.mu.Unlock()
		events = append(events, e)
	}
	s.mu.Lock()
	s.stats.Frames++
	s.stats.Bytes += uint64(s.blockLen + skipped)
	s.mu.Unlock()
	s.queue = append(s.queue, dataBlock{frames: frames, events: events})
	return nil
}

// countSkipped records bytes skipped without finding a data block.
func (s *RHXSource) countSkipped(n int, at int64) {
	if n == 0 {
		return
	}
	e := device.Event{Kind: device.EventResync, Sample: s.next, Count: uint64(n), Offset: at,
		Detail: fmt.Sprintf("%d bytes without a valid RHX waveform data block", n)}
	s.mu.Lock()
	s.stats.Add(e)
	s.stats.Bytes += uint64(n)
	s.mu.Unlock()
	s.pendingEvents = append(s.pendingEvents, e)
}

// restore puts RHX back in the run mode it had: a stopped RHX is
// stopped again; a running or recording one is left running.
func (s *RHXSource) restore(ctx context.Context) {
	if s.cmd == nil || s.wasMode != "Stop" {
		return
	}
	if mode, err := s.cmd.runMode(ctx); err == nil && mode != "Stop" {
		if err := s.cmd.setRunMode(ctx, "Stop"); err != nil {
			s.logf("intan: stopping RHX: %v", err)
		}
	}
}

// Close stops RHX if it was stopped when the source connected, and
// closes the connections.
func (s *RHXSource) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	wave, cmd := s.wave, s.cmd
	s.mu.Unlock()
	if wave != nil {
		wave.Close()
	}
	if cmd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		s.restore(ctx)
		cancel()
		return cmd.close()
	}
	return nil
}
