package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.bug.st/serial"
)

// SerialConfig says which serial port to open and how. The port is given
// by Path, or found by its USB identifiers (VID, PID, SerialNumber) among
// the ports ListPorts reports, again at every reconnection, so a device
// that comes back under another name (/dev/ttyACM1 instead of ttyACM0) is
// found. The zero value of every other field is a sensible default.
type SerialConfig struct {
	Path         string // e.g. /dev/ttyACM0, COM3, or a pseudo-terminal
	VID, PID     string // USB vendor and product IDs, hexadecimal ("2e8a")
	SerialNumber string // USB serial number, to tell identical devices apart

	// Baud is the line rate for a UART (default 921600). USB CDC-ACM
	// devices ignore it.
	Baud int
	// Reconnect keeps retrying to reopen the port when it goes away
	// (unplugged, powered off), with Backoff doubling up to MaxBackoff,
	// until it returns or the context given to OpenSerial ends. Without
	// it Next returns ErrDisconnected.
	Reconnect  bool
	Backoff    time.Duration // first retry delay (default 50 ms)
	MaxBackoff time.Duration // longest retry delay (default 2 s)
	// CommandTimeout bounds the wait for a reply to a Command
	// (default 1 s).
	CommandTimeout time.Duration
	// ReadTimeout, if > 0, treats a port that stays silent this long as
	// gone (a hung device that is still enumerated): it is closed and, with
	// Reconnect, reopened. The watch is off after a successful OpStop
	// Command and on again after OpStart. Leave it 0 for devices that wait
	// for a start command before streaming.
	ReadTimeout time.Duration
	// Queue is the number of frames buffered between the port and Next
	// (default 1024). When Next falls further behind, frames are dropped,
	// counted, and reported as a gap.
	Queue int
	// DefaultGain (µV per count) is used for frames whose gain is 0.
	DefaultGain float64
	// Logf, if set, receives one line per link event (open, disconnect,
	// reconnect, modem-line failures).
	Logf func(format string, args ...any)
}

// Errors of a SerialSource.
var (
	// ErrDisconnected: the port went away and Reconnect is off, or a
	// command was cut short by a disconnection.
	ErrDisconnected = errors.New("device: serial port disconnected")
	// ErrNotConnected: a command was sent while the port is away.
	ErrNotConnected = errors.New("device: serial port not connected")
	// ErrCommandTimeout: no reply to a command within CommandTimeout.
	ErrCommandTimeout = errors.New("device: no reply to command")
	// ErrClosed: the source was closed.
	ErrClosed = errors.New("device: serial source closed")
)

// CommandError is a reply whose Status is not StatusOK.
type CommandError struct {
	Op      Op
	Seq     uint32
	Status  Status
	Message string
}

func (e *CommandError) Error() string {
	s := fmt.Sprintf("device: %s command %d: %s", e.Op, e.Seq, e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// SerialStatus is the state of a SerialSource's link.
type SerialStatus struct {
	Stats
	Path        string // port currently or last open
	Connected   bool
	Overruns    uint64 // frames dropped because Next fell behind
	ModemErrors uint64 // failures to set DTR/RTS (normal for pseudo-terminals)
	Commands    uint64 // commands sent
	Timeouts    uint64 // commands that got no reply in time
}

type commandResult struct {
	r   Reply
	err error
}

// SerialSource is a Source reading the wire protocol from a serial port
// (USB CDC-ACM, a UART, a pseudo-terminal). A goroutine reads the port
// continuously, so replies to Commands are seen even when nobody calls
// Next; data frames wait in a bounded queue for Next.
//
// Every anomaly rides on the next Block as an Event, and is counted in
// Status: the Decoder's (CRC failures, skipped bytes, gaps, resets, format
// changes), disconnections and reconnections, the gap across a
// reconnection (exact, from the 64-bit sample counter) and frames dropped
// because Next fell behind. When the port goes away after data has
// flowed, Next at once returns a Block without samples (Len 0, with the
// last data's channel count, rate and gain) carrying the EventDisconnect,
// so a consumer learns of it without waiting for data.
//
// Block Samples are reused after the next call to Next.
type SerialSource struct {
	cfg SerialConfig

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader has finished
	closed atomic.Bool
	silent atomic.Bool // the device was told to stop: silence is expected

	blocks chan Block
	free   chan []int16
	last   []int16 // Samples of the Block Next returned last
	err    error   // why blocks was closed; read after it is closed

	wmu    sync.Mutex // guards port for writers and the write buffer
	port   port
	wbuf   []byte
	seq    atomic.Uint32
	waitMu sync.Mutex
	waits  map[uint32]chan commandResult

	mu     sync.Mutex // guards status
	status SerialStatus

	// Reader-goroutine state.
	dec      *Decoder // one for the source's life: it follows the counter across reconnections
	own      Stats    // events the SerialSource itself raised
	pending  []Event
	evbuf    []Event
	settings *Settings // from a settings frame (protocol v2), for the next Block
	expect   uint64    // counter expected next (end of the last data frame)
	channels int
	rate     uint32
	gain     float32
	drop     Event // a run of frames dropped for Next falling behind (Count > 0)
	// announced is false from a reopening until the device is heard from:
	// EventReconnect is raised at the first byte, so a port that opens but
	// dies at once makes no disconnect/reconnect noise.
	announced bool
	downSince time.Time
}

// OpenSerial opens the port cfg describes and starts reading it. The
// source lives until Close or until ctx ends. It fails at once if the port
// cannot be opened, even with Reconnect: a wrong path should be reported,
// not retried.
func OpenSerial(ctx context.Context, cfg SerialConfig) (*SerialSource, error) {
	if cfg.Path == "" && cfg.VID == "" && cfg.PID == "" && cfg.SerialNumber == "" {
		return nil, errors.New("device: serial: give a port path or USB VID/PID/serial number")
	}
	if cfg.Baud <= 0 {
		cfg.Baud = 921600
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = max(2*time.Second, cfg.Backoff)
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	s := &SerialSource{
		cfg:    cfg,
		done:   make(chan struct{}),
		blocks: make(chan Block, cfg.Queue),
		free:   make(chan []int16, cfg.Queue+2),
		waits:  make(map[uint32]chan commandResult),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	port, path, err := s.open()
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.port = port
	s.status.Path, s.status.Connected = path, true
	go s.run(port, path)
	go func() {
		// A blocked port read ends only when the port is closed.
		<-s.ctx.Done()
		s.wmu.Lock()
		if s.port != nil {
			s.port.Close()
		}
		s.wmu.Unlock()
	}()
	return s, nil
}

func (s *SerialSource) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// resolve finds the path of the port to open.
func (s *SerialSource) resolve() (string, error) {
	if s.cfg.Path != "" {
		return s.cfg.Path, nil
	}
	ports, err := ListPorts()
	if err != nil {
		return "", err
	}
	return matchPort(ports, s.cfg.VID, s.cfg.PID, s.cfg.SerialNumber)
}

// open opens and configures the port: 8N1 at Baud, DTR and RTS asserted
// (many USB devices only send while DTR is up). Failing to set a modem line
// is counted and logged, not fatal: pseudo-terminals have none.
func (s *SerialSource) open() (port, string, error) {
	path, err := s.resolve()
	if err != nil {
		return nil, "", err
	}
	if addr, ok := netAddress(path); ok {
		c, err := dialNet(s.ctxOrBackground(), addr, s.cfg.ReadTimeout)
		if err != nil {
			return nil, path, err
		}
		s.logf("device: connected to %s", path)
		return c, path, nil
	}
	port, err := serial.Open(path, &serial.Mode{BaudRate: s.cfg.Baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, path, fmt.Errorf("device: opening serial port %s: %w", path, err)
	}
	if s.cfg.ReadTimeout > 0 {
		if err := port.SetReadTimeout(s.cfg.ReadTimeout); err != nil {
			port.Close()
			return nil, path, fmt.Errorf("device: serial port %s: read timeout: %w", path, err)
		}
	}
	var modemErr error
	if err := port.SetDTR(true); err != nil {
		modemErr = err
	}
	if err := port.SetRTS(true); err != nil && modemErr == nil {
		modemErr = err
	}
	if modemErr != nil {
		s.mu.Lock()
		s.status.ModemErrors++
		first := s.status.ModemErrors == 1
		s.mu.Unlock()
		if first {
			s.logf("device: %s: cannot set DTR/RTS (%v); continuing without modem lines", path, modemErr)
		}
	}
	s.logf("device: opened serial port %s", path)
	return port, path, nil
}

// Close stops reading and closes the port. Next then returns ErrClosed
// once the queued Blocks are consumed.
func (s *SerialSource) Close() error {
	s.closed.Store(true)
	s.cancel()
	<-s.done
	return nil
}

// endErr is why the source ended: ErrClosed after Close, else the
// error of its context.
func (s *SerialSource) endErr() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return context.Cause(s.ctx)
}

// Status returns the link state and counts.
func (s *SerialSource) Status() SerialStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Stats returns the link counts (see Status for more).
func (s *SerialSource) Stats() Stats { return s.Status().Stats }

// Next returns the next Block: data, or (at a disconnection) a Block with
// no samples carrying the event. It returns ErrClosed after Close,
// ErrDisconnected (wrapped) when the port went away without Reconnect, or
// the error that ended the source's context.
func (s *SerialSource) Next(ctx context.Context) (Block, error) {
	if s.last != nil {
		select {
		case s.free <- s.last[:0]:
		default:
		}
		s.last = nil
	}
	select {
	case b, ok := <-s.blocks:
		if !ok {
			return Block{}, s.err
		}
		s.last = b.Samples
		return b, nil
	case <-ctx.Done():
		return Block{}, ctx.Err()
	}
}

// run is the reader goroutine: it reads frames, dispatches replies,
// queues Blocks and reconnects.
func (s *SerialSource) run(p port, path string) {
	defer close(s.done)
	defer s.cancel() // runs last: ends the goroutine watching the context
	var err error
	defer func() {
		s.failWaiters(ErrDisconnected)
		s.err = err
		close(s.blocks)
	}()
	dec := NewDecoder(s.reader(p))
	s.dec = dec
	s.announced = true
	for {
		dec.Name = path
		rerr := s.readPort(dec)
		s.wmu.Lock()
		p.Close()
		s.port = nil
		s.wmu.Unlock()
		s.mu.Lock()
		s.status.Connected = false
		s.mu.Unlock()
		if s.ctx.Err() != nil {
			err = s.endErr()
			return
		}
		s.failWaiters(ErrDisconnected)
		dec.Reconnect(nil) // count the bytes left of the old connection
		s.pending = dec.TakeEvents(s.pending)
		if s.announced {
			s.logf("device: serial port %s went away: %v", path, rerr)
			s.downSince = time.Now()
			s.raise(Event{Kind: EventDisconnect, Sample: s.expect, Detail: fmt.Sprintf("%s: %v", path, rerr)})
			s.sendEventBlock()
			if !s.cfg.Reconnect {
				err = fmt.Errorf("%w: %s: %v", ErrDisconnected, path, rerr)
				return
			}
		}
		// Else the port reopened but died before the device said a word
		// (a network headstage refusing while away): retry quietly.
		p, path = s.reopen()
		s.announced = false
		if p == nil {
			err = s.endErr()
			return
		}
		dec.Reconnect(s.reader(p))
	}
}

// reopen retries opening the port with backoff until it succeeds (the
// port, registered for writers) or the source ends (nil).
func (s *SerialSource) reopen() (port, string) {
	delay := s.cfg.Backoff
	var lastErr string
	start := time.Now()
	for {
		t := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return nil, ""
		case <-t.C:
		}
		port, path, err := s.open()
		if err == nil {
			s.wmu.Lock()
			if s.ctx.Err() != nil {
				s.wmu.Unlock()
				port.Close()
				return nil, ""
			}
			s.port = port
			s.wmu.Unlock()
			s.mu.Lock()
			s.status.Path, s.status.Connected = path, true
			s.mu.Unlock()
			s.logf("device: reopened %s after %v", path, time.Since(start).Round(time.Millisecond))
			return port, path
		}
		if msg := err.Error(); msg != lastErr {
			s.logf("device: reopening: %v (retrying)", err)
			lastErr = msg
		}
		delay = min(2*delay, s.cfg.MaxBackoff)
	}
}

// raise records an event of the SerialSource's own.
func (s *SerialSource) raise(e Event) {
	s.own.Add(e)
	s.pending = append(s.pending, e)
	s.publish()
}

// readPort reads frames from one connection until a read error.
func (s *SerialSource) readPort(dec *Decoder) error {
	for {
		f, err := dec.Next()
		if err != nil {
			if errors.Is(err, io.ErrNoProgress) && s.ctx.Err() == nil {
				continue
			}
			return err
		}
		switch f.Type {
		case FrameData, FrameCompressed, FrameSpikes, FrameFeatures:
			s.data(dec, &f)
		case FrameSettings:
			s.settings = f.Settings // for the next Block
		case FrameReply:
			s.reply(f.Reply)
			s.publish()
		}
	}
}

// data turns a data frame into a queued Block.
func (s *SerialSource) data(dec *Decoder, f *Frame) {
	n := uint64(f.covered())
	s.expect = f.Counter + n
	s.channels, s.rate, s.gain = f.Channels, f.Rate, f.Gain

	full := len(s.blocks) == cap(s.blocks)
	s.evbuf = dec.TakeEvents(s.evbuf[:0])
	if s.drop.Count > 0 && (!full || len(s.evbuf) > 0 || f.Counter != s.drop.Sample) {
		s.flushDrop()
	}
	s.pending = append(s.pending, s.evbuf...)
	if full {
		// Next has fallen behind: drop this frame, report it as a gap.
		if s.drop.Count > 0 {
			s.drop.Sample += n
			s.drop.Count += n
		} else {
			s.drop = Event{Kind: EventGap, Sample: f.Counter + n, Count: n, Detail: "host queue full: frames dropped"}
		}
		s.mu.Lock()
		s.status.Overruns++
		s.mu.Unlock()
		s.publish()
		return
	}
	var buf []int16
	select {
	case buf = <-s.free:
	default:
	}
	gain := float64(f.Gain)
	if gain == 0 {
		gain = s.cfg.DefaultGain
	}
	b := Block{
		First:    f.Counter,
		Rate:     float64(f.Rate),
		Channels: f.Channels,
		Gain:     gain,
		Samples:  append(buf[:0], f.Samples...),
		Received: time.Now(),
		Span:     f.Span,
		Spikes:   f.Spikes,
		Features: f.Features,
		Settings: s.settings,
	}
	s.settings = nil
	if len(s.pending) > 0 {
		b.Events = append([]Event(nil), s.pending...)
		clear(s.pending)
		s.pending = s.pending[:0]
	}
	s.publish()
	s.blocks <- b
}

// flushDrop turns a finished run of dropped frames into a gap event. The
// gap's Sample is the first sample after the run.
func (s *SerialSource) flushDrop() {
	if s.drop.Count == 0 {
		return
	}
	e := s.drop
	s.drop = Event{}
	s.own.Add(e)
	s.pending = append(s.pending, e)
}

// sendEventBlock queues a Block without samples carrying the pending
// events (a disconnection), if there is room. It has the channel count,
// rate and gain of the last data frame, so consumers checking the format
// accept it.
func (s *SerialSource) sendEventBlock() {
	s.flushDrop()
	if len(s.pending) == 0 || len(s.blocks) == cap(s.blocks) || s.channels == 0 {
		// No room, or no data yet to take the format from: the events
		// ride on the next data Block.
		return
	}
	b := Block{First: s.expect, Rate: float64(s.rate), Channels: s.channels, Gain: float64(s.gain),
		Received: time.Now(), Events: append([]Event(nil), s.pending...)}
	if b.Gain == 0 {
		b.Gain = s.cfg.DefaultGain
	}
	clear(s.pending)
	s.pending = s.pending[:0]
	s.blocks <- b
}

// publish refreshes the Stats in status.
func (s *SerialSource) publish() {
	st := s.own
	if s.dec != nil {
		st = addStats(st, s.dec.Stats())
	}
	s.mu.Lock()
	s.status.Stats = st
	s.mu.Unlock()
}

func addStats(a, b Stats) Stats {
	return Stats{
		Frames:        a.Frames + b.Frames,
		Bytes:         a.Bytes + b.Bytes,
		Samples:       a.Samples + b.Samples,
		CRCErrors:     a.CRCErrors + b.CRCErrors,
		BadFrames:     a.BadFrames + b.BadFrames,
		SkippedBytes:  a.SkippedBytes + b.SkippedBytes,
		Gaps:          a.Gaps + b.Gaps,
		LostSamples:   a.LostSamples + b.LostSamples,
		Resets:        a.Resets + b.Resets,
		FormatChanges: a.FormatChanges + b.FormatChanges,
		Disconnects:   a.Disconnects + b.Disconnects,
		Reconnects:    a.Reconnects + b.Reconnects,
	}
}

// reply hands a reply to the Command waiting for it.
func (s *SerialSource) reply(r Reply) {
	s.waitMu.Lock()
	ch, ok := s.waits[r.Seq]
	delete(s.waits, r.Seq)
	s.waitMu.Unlock()
	if !ok {
		s.logf("device: reply %d (%s) to no pending command", r.Seq, r.Op)
		return
	}
	ch <- commandResult{r: r}
}

// failWaiters ends every pending Command with err.
func (s *SerialSource) failWaiters(err error) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	for seq, ch := range s.waits {
		ch <- commandResult{err: err}
		delete(s.waits, seq)
	}
}

// Command sends c to the device and waits for its reply, at most
// CommandTimeout. A zero c.Seq is replaced by the next sequence number.
// A reply with a Status other than StatusOK is returned with a
// *CommandError. Commands may be sent from any goroutine.
func (s *SerialSource) Command(ctx context.Context, c Command) (Reply, error) {
	if c.Seq == 0 {
		c.Seq = s.seq.Add(1)
		if c.Seq == 0 {
			c.Seq = s.seq.Add(1)
		}
	}
	if c.Op == OpSetChannels && len(c.Channels) > MaxCommandChannels {
		return Reply{}, fmt.Errorf("device: set_channels with %d channels, at most %d", len(c.Channels), MaxCommandChannels)
	}
	ch := make(chan commandResult, 1)
	s.waitMu.Lock()
	s.waits[c.Seq] = ch
	s.waitMu.Unlock()
	forget := func() {
		s.waitMu.Lock()
		delete(s.waits, c.Seq)
		s.waitMu.Unlock()
	}

	s.wmu.Lock()
	if s.port == nil {
		s.wmu.Unlock()
		forget()
		if s.ctx.Err() != nil {
			return Reply{}, s.endErr()
		}
		return Reply{}, fmt.Errorf("%w: %s command %d", ErrNotConnected, c.Op, c.Seq)
	}
	s.wbuf = AppendCommand(s.wbuf[:0], c)
	_, err := s.port.Write(s.wbuf)
	s.wmu.Unlock()
	s.mu.Lock()
	s.status.Commands++
	s.mu.Unlock()
	if err != nil {
		forget()
		return Reply{}, fmt.Errorf("device: sending %s command %d: %w", c.Op, c.Seq, err)
	}

	t := time.NewTimer(s.cfg.CommandTimeout)
	defer t.Stop()
	select {
	case res := <-ch:
		if res.err != nil {
			return Reply{}, fmt.Errorf("device: %s command %d: %w", c.Op, c.Seq, res.err)
		}
		if res.r.Status == StatusOK && (c.Op == OpStart || c.Op == OpStop) {
			s.silent.Store(c.Op == OpStop)
		}
		if res.r.Status != StatusOK {
			return res.r, &CommandError{Op: res.r.Op, Seq: res.r.Seq, Status: res.r.Status, Message: res.r.Message}
		}
		return res.r, nil
	case <-t.C:
		forget()
		s.mu.Lock()
		s.status.Timeouts++
		s.mu.Unlock()
		return Reply{}, fmt.Errorf("%w: %s command %d after %v", ErrCommandTimeout, c.Op, c.Seq, s.cfg.CommandTimeout)
	case <-ctx.Done():
		forget()
		return Reply{}, ctx.Err()
	case <-s.done:
		forget()
		return Reply{}, s.endErr()
	}
}

// Ping measures the round-trip time of a command to the device and back.
func (s *SerialSource) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	stamp := uint64(start.UnixNano())
	r, err := s.Command(ctx, Command{Op: OpPing, PingTime: stamp})
	rtt := time.Since(start)
	if err != nil {
		return 0, err
	}
	if r.PingTime != stamp {
		return 0, fmt.Errorf("device: ping reply %d echoes time %d, sent %d", r.Seq, r.PingTime, stamp)
	}
	return rtt, nil
}

// errStalled is the read error of a port silent for longer than
// ReadTimeout while the device should be streaming.
var errStalled = errors.New("no data within the read timeout")

// portReader adapts a serial.Port to the Decoder: a read that times out
// with nothing is retried while silence is expected and is errStalled
// otherwise.
type portReader struct {
	s    *SerialSource
	port port
}

func (s *SerialSource) reader(p port) io.Reader { return &portReader{s: s, port: p} }

func (r *portReader) Read(p []byte) (int, error) {
	for {
		n, err := r.port.Read(p)
		if n > 0 && !r.s.announced {
			r.s.announced = true
			r.s.mu.Lock()
			path := r.s.status.Path
			r.s.mu.Unlock()
			down := time.Since(r.s.downSince).Round(time.Millisecond)
			r.s.logf("device: %s is back after %v", path, down)
			r.s.raise(Event{Kind: EventReconnect, Sample: r.s.expect, Detail: fmt.Sprintf("%s after %v", path, down)})
		}
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
		if r.s.ctx.Err() != nil {
			return 0, r.s.endErr()
		}
		if !r.s.silent.Load() {
			return 0, fmt.Errorf("%w (%v)", errStalled, r.s.cfg.ReadTimeout)
		}
	}
}

// ctxOrBackground returns the source's context (dials are cut short when
// it ends).
func (s *SerialSource) ctxOrBackground() context.Context {
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}
