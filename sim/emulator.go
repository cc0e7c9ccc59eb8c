package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spikeline/spikeline/device"
)

// EmulatorConfig configures an Emulator. The zero value serves 32-sample
// frames paced at real time, streaming from the start, without faults.
type EmulatorConfig struct {
	// FrameSamples is the number of samples per channel in each data
	// frame (default 32, about 1 ms at 30 kHz).
	FrameSamples int
	// Speed paces the device clock at Speed times real time (default 1).
	Speed float64
	// Unpaced sends frames as fast as the transport takes them.
	Unpaced bool
	// WaitForStart keeps the device silent until the host sends OpStart,
	// as many headstages do; by default it streams from the start.
	WaitForStart bool
	// MaxLag, when paced, is the largest backlog the device buffers when
	// the host does not read: beyond it the device drops frames as a
	// buffer overflow and flags the next frame sent (default 1 s).
	MaxLag time.Duration
	// Faults to inject, drawn from a generator seeded with Seed.
	Faults Faults
	Seed   uint64
	// Trace, if set, is called with the fate of every data frame the
	// device clock produces, in counter order, from the goroutine that
	// serves. It is the ground truth tests compare a host against.
	Trace func(FrameRecord)
	// Name is the device name reported to OpInfo (default
	// "spikeline-emulator").
	Name string
	// Logf, if set, receives one line per notable event (unplug, reset,
	// bad command).
	Logf func(format string, args ...any)
}

// Faults are link and device faults an Emulator injects. Times are device
// time since the emulator started: the same seed and times give the same
// faults on the same frames.
type Faults struct {
	// CorruptRate is the probability that each byte sent to the host is
	// damaged (one bit flipped).
	CorruptRate float64
	// DropRate is the probability that each data frame is lost whole.
	DropRate float64
	// UnplugAt is the device time of the first unplug (0: none).
	UnplugAt time.Duration
	// UnplugEvery repeats the unplug at this period after UnplugAt (0: once).
	UnplugEvery time.Duration
	// UnplugFor is how long the device stays away (default 1 s).
	UnplugFor time.Duration
	// ResetAt is the device time when the device resets its sample
	// counter to 0 (0: never).
	ResetAt time.Duration
}

// FrameFate says what became of one data frame of the device clock.
type FrameFate uint8

// Frame fates.
const (
	FrameSent       FrameFate = iota + 1 // written intact
	FrameCorrupted                       // written with at least one damaged byte
	FrameDropped                         // lost whole (DropRate)
	FrameOverflowed                      // dropped by the device: the host fell more than MaxLag behind
	FrameIdle                            // not sent: streaming stopped, or unplugged
)

var fateNames = [...]string{
	FrameSent:       "sent",
	FrameCorrupted:  "corrupted",
	FrameDropped:    "dropped",
	FrameOverflowed: "overflowed",
	FrameIdle:       "idle",
}

func (f FrameFate) String() string {
	if int(f) < len(fateNames) && fateNames[f] != "" {
		return fateNames[f]
	}
	return fmt.Sprintf("fate(%d)", uint8(f))
}

// FrameRecord is the ground truth about one data frame.
type FrameRecord struct {
	Counter  uint64 // sample counter the frame carries (or would have carried)
	Samples  int    // samples per channel
	Channels int    // channels in the frame
	Fate     FrameFate
	Damaged  int  // bytes damaged (FrameCorrupted)
	Header   bool // a damaged byte fell in the frame header (sync word to header CRC)
	Trailer  bool // a damaged byte fell in the frame CRC
	Flags    uint16
}

// EmulatorStats counts what an Emulator did. Samples are per channel.
type EmulatorStats struct {
	FramesSent       uint64 // data frames written intact
	FramesCorrupted  uint64 // data frames written with damaged bytes
	FramesDropped    uint64 // data frames lost whole (DropRate)
	FramesOverflowed uint64 // data frames dropped because the host fell behind
	SamplesSent      uint64 // samples in data frames written (intact or not)
	SamplesIdle      uint64 // samples not sent: streaming stopped, or unplugged
	BytesSent        uint64 // bytes written, all frames
	BytesDamaged     uint64 // bytes damaged, all frames
	Replies          uint64 // reply frames written
	RepliesCorrupted uint64 // reply frames written with damaged bytes
	Commands         uint64 // command frames received
	BadCommands      uint64 // command frames refused (bad arguments)
	Stimulations     uint64 // OpStimulate commands acknowledged
	Unplugs          uint64
	Resets           uint64
	Connections      uint64 // hosts served
}

// ErrUnplugged is the error (matched with errors.Is) that Serve returns
// when the device is unplugged; the *UnplugError says for how long.
var ErrUnplugged = errors.New("sim: device unplugged")

// UnplugError reports an unplug: the transport should drop the
// connection, let For pass (Emulator.Idle) and come back.
type UnplugError struct{ For time.Duration }

func (e *UnplugError) Error() string { return fmt.Sprintf("sim: device unplugged for %v", e.For) }

// Is reports whether target is ErrUnplugged.
func (e *UnplugError) Is(target error) bool { return target == ErrUnplugged }

// RateSetter is implemented by Sources whose sample rate the host may set
// (OpSetRate). Without it the Emulator replies StatusUnsupported.
type RateSetter interface {
	SetRate(hz float64) error
}

// Stimulator is implemented by Sources that model electrical
// stimulation. The Emulator acknowledges OpStimulate either way and calls
// Stimulate when the Source has it.
type Stimulator interface {
	Stimulate(s device.Stim) error
}

// run is a stretch of contiguous, same-format samples from the Source not
// yet framed.
type run struct {
	first      uint64
	channels   int
	rate, gain float64
	buf        []int16 // time-major; unframed samples are buf[off:]
	off        int
}

func (r *run) len() int {
	if r.channels == 0 {
		return 0
	}
	return (len(r.buf) - r.off) / r.channels
}

func (r *run) reset() { r.buf, r.off, r.channels = r.buf[:0], 0, 0 }

func (r *run) append(s []int16) {
	if r.off > 0 && len(r.buf)+len(s) > cap(r.buf) {
		n := copy(r.buf, r.buf[r.off:])
		r.buf, r.off = r.buf[:n], 0
	}
	r.buf = append(r.buf, s...)
}

func (r *run) consume(n int) {
	r.off += n * r.channels
	r.first += uint64(n)
	if r.off >= len(r.buf) {
		r.buf, r.off = r.buf[:0], 0
	}
}

// sameRun reports whether block b continues run r.
func (r *run) continues(b *device.Block) bool {
	return b.Channels == r.channels && b.Rate == r.rate && b.Gain == r.gain && b.First == r.first+uint64(r.len())
}

// srcRequest is work on the Source that must run on the pump goroutine,
// which owns the Source.
type srcRequest struct {
	fn   func() error
	done chan error
}

// Emulator serves any device.Source as a headstage speaking the spikeline
// wire protocol (docs/protocol.md): data frames out, commands in, replies
// out, with seeded, reproducible fault injection. The device clock runs
// across connections: samples produced while the host is away (unplugged,
// streaming stopped) are lost, as on a real headstage, and the 64-bit
// sample counter tells the host exactly how many.
//
// Serve runs the device on one connection; ServePTY, ServeTCP and
// WriteStream are the transports. One transport at a time.
type Emulator struct {
	src device.Source
	cfg EmulatorConfig

	// Owned by the pump (the goroutine in Serve/Idle/WriteStream).
	cur, held  run
	srcEOF     bool
	frame      []int16 // channel-subset samples of the frame being sent
	wbuf       []byte
	dataRNG    *rand.Rand
	dataSkip   int64 // bytes until the next damaged data byte
	t0         time.Time
	clock      uint64  // samples since t0 at the current rate
	paceRate   float64 // rate the clock runs at
	elapsed    float64 // device time since start, s
	nextUnplug float64 // device time of the next scheduled unplug, s (0: none)
	resetDone  bool
	resetBase  uint64 // source index that counter 0 maps to
	lastSrcEnd uint64
	flagNext   uint16
	stimUntil  uint64 // source index up to which FlagStimulate is set

	// Used by the command reader only.
	replyRNG  *rand.Rand
	replySkip int64
	rbuf      []byte

	wmu sync.Mutex // serialises writes to the connection

	mu        sync.Mutex // guards the fields below
	modes     modeState  // version 2: mode, detector settings (emulator_modes.go)
	streaming bool
	enabled   []int // channel subset, nil: all
	srcCh     int
	rate      float64
	gain      float64
	counter   uint64 // counter of the next frame
	stats     EmulatorStats
	unplugReq time.Duration // on-demand unplug pending (> 0)
	resetReq  bool

	ended     chan struct{}
	endOnce   sync.Once
	poke      chan struct{}   // wakes the pump for an on-demand fault
	unplugNow chan struct{}   // closes the connection for an on-demand unplug
	srcReq    chan srcRequest // work for the pump
}

// NewEmulator returns an Emulator serving src with cfg.
func NewEmulator(src device.Source, cfg EmulatorConfig) *Emulator {
	if cfg.FrameSamples <= 0 {
		cfg.FrameSamples = 32
	}
	if cfg.FrameSamples > math.MaxUint16 {
		cfg.FrameSamples = math.MaxUint16
	}
	if cfg.Speed <= 0 {
		cfg.Speed = 1
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = time.Second
	}
	if cfg.Faults.UnplugFor <= 0 {
		cfg.Faults.UnplugFor = time.Second
	}
	if cfg.Name == "" {
		cfg.Name = "spikeline-emulator"
	}
	e := &Emulator{
		src:       src,
		cfg:       cfg,
		dataRNG:   rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		replyRNG:  rand.New(rand.NewPCG(cfg.Seed, 0x5851f42d4c957f2d)),
		streaming: !cfg.WaitForStart,
		poke:      make(chan struct{}, 1),
		unplugNow: make(chan struct{}, 1),
		ended:     make(chan struct{}),
		srcReq:    make(chan srcRequest),
	}
	e.dataSkip = skipLength(e.dataRNG, cfg.Faults.CorruptRate)
	e.replySkip = skipLength(e.replyRNG, cfg.Faults.CorruptRate)
	e.nextUnplug = cfg.Faults.UnplugAt.Seconds()
	return e
}

// Stats returns what the Emulator has done so far.
func (e *Emulator) Stats() EmulatorStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Streaming reports whether the device is sending data frames.
func (e *Emulator) Streaming() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.streaming
}

// Unplug unplugs the device now for d (the configured UnplugFor if d <= 0):
// Serve returns an *UnplugError at the next frame.
func (e *Emulator) Unplug(d time.Duration) {
	if d <= 0 {
		d = e.cfg.Faults.UnplugFor
	}
	e.mu.Lock()
	e.unplugReq = d
	e.mu.Unlock()
	select {
	case e.poke <- struct{}{}:
	default:
	}
	select {
	case e.unplugNow <- struct{}{}:
	default:
	}
}

// Reset restarts the device's sample counter at 0 from the next frame.
func (e *Emulator) Reset() {
	e.mu.Lock()
	e.resetReq = true
	e.mu.Unlock()
}

func (e *Emulator) logf(format string, args ...any) {
	if e.cfg.Logf != nil {
		e.cfg.Logf(format, args...)
	}
}

// skipLength draws how many bytes pass before the next damaged one: a
// geometric variable with success probability p (-1: never).
func skipLength(r *rand.Rand, p float64) int64 {
	switch {
	case p <= 0:
		return -1
	case p >= 1:
		return 0
	}
	u := r.Float64()
	return int64(math.Floor(math.Log1p(-u) / math.Log1p(-p)))
}

// damage flips one random bit in the bytes of b chosen by the geometric
// skip process in *skip, returning the offsets damaged (appended to dst).
func damage(b []byte, r *rand.Rand, p float64, skip *int64, dst []int) []int {
	if *skip < 0 {
		return dst
	}
	i := int64(0)
	for {
		i += *skip
		if i >= int64(len(b)) {
			*skip = i - int64(len(b))
			return dst
		}
		b[i] ^= 1 << r.IntN(8)
		dst = append(dst, int(i))
		i++
		*skip = skipLength(r, p)
	}
}

// Serve runs the device on one connection until ctx ends, the connection
// fails, the host closes it (IsHostClosed) or the device is unplugged
// (*UnplugError). It reads host commands from conn and writes frames to
// it, and closes conn before returning. When the Source ends (Ended is
// closed) the device stays connected, silent, answering commands, until
// ctx ends or the host leaves.
func (e *Emulator) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	e.mu.Lock()
	e.stats.Connections++
	e.modes.announce = true // a new host learns the settings
	pending := e.unplugReq > 0
	e.mu.Unlock()
	if !pending { // a stale request to close an earlier connection
		select {
		case <-e.unplugNow:
		default:
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // closes conn to unblock reads and writes when done
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-e.unplugNow: // unplugged on demand, perhaps while a write blocks
		}
		conn.Close()
	}()
	go func() {
		defer wg.Done()
		err := e.readCommands(ctx, conn)
		if err == nil || errors.Is(err, io.EOF) {
			err = errHostClosed
		}
		cancel(err)
	}()
	err := e.stream(ctx, conn, 0)
	if errors.Is(err, io.EOF) {
		// The Source has ended: the device stays plugged in, silent,
		// answering commands, until the host or the caller leaves.
		e.markEnded()
		err = e.serveEnded(ctx)
	}
	// If the context ended first (the host closed the connection, or the
	// caller cancelled), say so rather than the write error it caused.
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, ErrUnplugged) {
		err = cause
	}
	cancel(err)
	wg.Wait()
	return err
}

// serveEnded answers the host's Source requests with io.EOF until ctx
// ends, then returns io.EOF.
func (e *Emulator) serveEnded(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); IsHostClosed(cause) {
				return cause
			}
			return io.EOF
		case r := <-e.srcReq:
			r.done <- io.EOF
		}
	}
}

// markEnded records that the Source has ended.
func (e *Emulator) markEnded() {
	e.endOnce.Do(func() { close(e.ended) })
}

// Ended is closed once the Source has ended and its last frame has been
// sent (or its fate traced).
func (e *Emulator) Ended() <-chan struct{} { return e.ended }

// errHostClosed is returned by Serve when the host closed the connection.
var errHostClosed = errors.New("sim: host closed the connection")

// IsHostClosed reports whether err from Serve means the host went away
// (closed its end of the connection).
func IsHostClosed(err error) bool { return errors.Is(err, errHostClosed) }

// WriteStream writes the device's data frames to w with the configured
// pacing and faults, without a host: a wire-protocol recording. It stops
// after d of device time (0: when the Source ends or ctx ends). Unplugs
// become idle stretches (a gap in the recording).
func (e *Emulator) WriteStream(ctx context.Context, w io.Writer, d time.Duration) error {
	until := 0.0
	if d > 0 {
		until = e.elapsed + d.Seconds()
	}
	for {
		err := e.stream(ctx, w, until)
		var u *UnplugError
		if errors.As(err, &u) {
			if err := e.Idle(ctx, u.For); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			e.markEnded()
			return nil
		}
		if errors.Is(err, errDone) {
			return nil
		}
		return err
	}
}

var errDone = errors.New("sim: duration reached")

// stream is the pump: it frames the Source, paces, injects faults and
// writes data frames to w until an error, an unplug, or the device time
// until (s since the emulator started, 0: no limit).
func (e *Emulator) stream(ctx context.Context, w io.Writer, until float64) error {
	e.rebase(time.Now())
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if until > 0 && e.elapsed >= until {
			return errDone
		}
		if err := e.faultsDue(); err != nil {
			return err
		}
		n, err := e.nextFrame(ctx)
		if err != nil {
			return err
		}
		if !e.cfg.Unpaced {
			if err := e.waitDue(ctx, n); err != nil {
				return err
			}
		}
		if err := e.emit(w, n); err != nil {
			if uerr := e.faultsDue(); uerr != nil {
				return uerr // the write failed because the device was unplugged
			}
			return err
		}
	}
}

// rebase restarts the pacing clock at now from the current position.
func (e *Emulator) rebase(now time.Time) {
	e.t0, e.clock, e.paceRate = now, 0, e.cur.rate
}

// due returns the wall time at which the device clock, running at speed
// times real time, reaches sample clock+n.
func (e *Emulator) due(n int, speed float64) time.Time {
	if e.paceRate <= 0 {
		return e.t0
	}
	s := float64(e.clock+uint64(n)) / (e.paceRate * speed)
	return e.t0.Add(time.Duration(s * float64(time.Second)))
}

// followRate restarts the pacing clock where it is when the Source's
// sample rate changed.
func (e *Emulator) followRate(speed float64) {
	if e.paceRate != e.cur.rate {
		e.t0, e.clock, e.paceRate = e.due(0, speed), 0, e.cur.rate
	}
}

// waitDue sleeps until the frame of n samples is due, running Source work
// the host asked for meanwhile.
func (e *Emulator) waitDue(ctx context.Context, n int) error {
	e.followRate(e.cfg.Speed)
	d := time.Until(e.due(n, e.cfg.Speed))
	if d <= 0 {
		return e.serveRequests()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.poke:
			// An on-demand fault: handled at the next frame.
			return nil
		case r := <-e.srcReq:
			r.done <- r.fn()
		case <-t.C:
			return nil
		}
	}
}

// serveRequests runs pending Source work without waiting.
func (e *Emulator) serveRequests() error {
	for {
		select {
		case r := <-e.srcReq:
			r.done <- r.fn()
		default:
			return nil
		}
	}
}

// faultsDue applies scheduled and requested unplugs and resets.
func (e *Emulator) faultsDue() error {
	e.mu.Lock()
	unplug, reset := e.unplugReq, e.resetReq
	e.unplugReq, e.resetReq = 0, false
	e.mu.Unlock()
	f := &e.cfg.Faults
	if f.ResetAt > 0 && !e.resetDone && e.elapsed >= f.ResetAt.Seconds() {
		e.resetDone, reset = true, true
	}
	if reset {
		e.resetBase = e.cur.first
		e.mu.Lock()
		e.stats.Resets++
		e.mu.Unlock()
		e.logf("sim: device reset at source sample %d: counter restarts at 0", e.cur.first)
	}
	if e.nextUnplug > 0 && e.elapsed >= e.nextUnplug {
		unplug = f.UnplugFor
		if f.UnplugEvery > 0 {
			e.nextUnplug += f.UnplugEvery.Seconds()
		} else {
			e.nextUnplug = 0
		}
	}
	if unplug > 0 {
		e.mu.Lock()
		e.stats.Unplugs++
		e.mu.Unlock()
		e.logf("sim: device unplugged for %v at device time %.3f s", unplug, e.elapsed)
		return &UnplugError{For: unplug}
	}
	return nil
}

// nextFrame makes sure e.cur holds the next frame's samples and returns
// how many samples per channel the frame has (at most FrameSamples; fewer
// before a discontinuity of the Source or at its end).
func (e *Emulator) nextFrame(ctx context.Context) (int, error) {
	want := e.cfg.FrameSamples
	if e.cur.len() == 0 && e.held.channels != 0 {
		e.cur, e.held = e.held, e.cur
		e.held.reset()
	}
	for e.cur.len() < want && e.held.channels == 0 && !e.srcEOF {
		b, err := e.src.Next(ctx)
		if errors.Is(err, io.EOF) {
			e.srcEOF = true
			break
		}
		if err != nil {
			return 0, err
		}
		if b.Channels <= 0 || b.Channels > math.MaxUint16 || len(b.Samples)%b.Channels != 0 ||
			!(b.Rate >= 1 && b.Rate <= math.MaxUint32) || !(b.Gain >= 0 && b.Gain <= math.MaxFloat32) {
			return 0, fmt.Errorf("sim: emulator: source block at sample %d that the wire protocol cannot carry: %d samples, %d channels, rate %g Hz, gain %g µV/count",
				b.First, len(b.Samples), b.Channels, b.Rate, b.Gain)
		}
		if len(b.Samples) == 0 {
			continue
		}
		switch {
		case e.cur.len() == 0:
			e.cur.reset()
			e.cur.first, e.cur.channels, e.cur.rate, e.cur.gain = b.First, b.Channels, b.Rate, b.Gain
			e.cur.append(b.Samples)
		case e.cur.continues(&b):
			e.cur.append(b.Samples)
		default: // a gap or format change in the Source: frame what we have first
			e.held.reset()
			e.held.first, e.held.channels, e.held.rate, e.held.gain = b.First, b.Channels, b.Rate, b.Gain
			e.held.append(b.Samples)
		}
	}
	n := min(e.cur.len(), want)
	if e.cur.channels > 0 {
		n = min(n, device.MaxPayload/(2*e.cur.channels)) // a frame's payload is bounded
	}
	if n == 0 {
		return 0, io.EOF
	}
	if e.cur.first < e.lastSrcEnd && e.resetBase > e.cur.first {
		e.resetBase = 0 // the Source itself went back: pass its counter through
	}
	e.mu.Lock()
	if e.cur.channels != e.srcCh {
		if e.srcCh != 0 && e.enabled != nil {
			e.logf("sim: source changed from %d to %d channels: all channels enabled", e.srcCh, e.cur.channels)
		}
		e.srcCh, e.enabled = e.cur.channels, nil
	}
	e.rate, e.gain = e.cur.rate, e.cur.gain
	e.counter = e.cur.first - e.resetBase
	e.mu.Unlock()
	return n, nil
}

// emit decides the fate of the frame of n samples at the head of e.cur,
// writes it to w if it is sent, and advances the device clock.
func (e *Emulator) emit(w io.Writer, n int) error {
	r := &e.cur
	rec := FrameRecord{Counter: r.first - e.resetBase, Samples: n}
	if w != nil {
		// Held from the decision to the write, so that a command's state
		// change (start, stop, channels) applies exactly from the first
		// frame after its reply.
		e.wmu.Lock()
		defer e.wmu.Unlock()
	}
	e.mu.Lock()
	streaming := e.streaming && w != nil
	enabled := e.enabled
	e.mu.Unlock()
	rec.Channels = r.channels
	if enabled != nil {
		rec.Channels = len(enabled)
	}
	if r.first < e.stimUntil {
		rec.Flags |= device.FlagStimulate
	}
	late := !e.cfg.Unpaced && time.Since(e.due(n, e.cfg.Speed)) > e.cfg.MaxLag
	f := &e.cfg.Faults
	var err error
	var samples []int16 // the enabled channels of the frame's samples
	if streaming {
		src := r.buf[r.off : r.off+n*r.channels]
		samples = src
		if enabled != nil {
			e.frame = e.frame[:0]
			for t := range n {
				row := src[t*r.channels : (t+1)*r.channels]
				for _, c := range enabled {
					e.frame = append(e.frame, row[c])
				}
			}
			samples = e.frame
		}
	}
	switch {
	case !streaming:
		rec.Fate = FrameIdle
	case late:
		// The host has not been reading: the device buffer overflows
		// until the device clock is back within MaxLag of real time.
		rec.Fate = FrameOverflowed
		e.flagNext |= device.FlagOverflow
		e.detectOnly(rec.Counter, samples, rec.Channels, r.rate)
	case f.DropRate > 0 && e.dataRNG.Float64() < f.DropRate:
		rec.Fate = FrameDropped
		e.detectOnly(rec.Counter, samples, rec.Channels, r.rate)
	default:
		rec.Flags |= e.flagNext
		e.flagNext = 0
		e.wbuf = e.appendFrame(e.wbuf[:0], rec.Counter, uint32(math.Round(r.rate)), float32(r.gain), rec.Channels, samples, rec.Flags)
		var hit [8]int
		damaged := damage(e.wbuf, e.dataRNG, f.CorruptRate, &e.dataSkip, hit[:0])
		rec.Fate = FrameSent
		if len(damaged) > 0 {
			rec.Fate, rec.Damaged = FrameCorrupted, len(damaged)
			for _, i := range damaged {
				rec.Header = rec.Header || i < device.HeaderSize
				rec.Trailer = rec.Trailer || i >= len(e.wbuf)-device.TrailerSize
			}
		}
		_, err = w.Write(e.wbuf)
		if err == nil {
			e.mu.Lock()
			e.stats.BytesSent += uint64(len(e.wbuf))
			e.stats.BytesDamaged += uint64(len(damaged))
			e.mu.Unlock()
		}
	}
	if err != nil {
		// The frame did not leave: the device clock stays put, so the
		// next connection starts from it.
		return err
	}
	e.mu.Lock()
	switch rec.Fate {
	case FrameSent:
		e.stats.FramesSent++
		e.stats.SamplesSent += uint64(n)
	case FrameCorrupted:
		e.stats.FramesCorrupted++
		e.stats.SamplesSent += uint64(n)
	case FrameDropped:
		e.stats.FramesDropped++
	case FrameOverflowed:
		e.stats.FramesOverflowed++
	case FrameIdle:
		e.stats.SamplesIdle += uint64(n)
	}
	e.mu.Unlock()
	if e.cfg.Trace != nil {
		e.cfg.Trace(rec)
	}
	e.advance(n)
	return nil
}

// advance moves the device clock past the frame of n samples at the head
// of e.cur.
func (e *Emulator) advance(n int) {
	e.elapsed += float64(n) / e.cur.rate
	e.clock += uint64(n)
	e.cur.consume(n)
	e.lastSrcEnd = e.cur.first
	e.mu.Lock()
	e.counter = e.cur.first - e.resetBase
	e.mu.Unlock()
}

// Idle lets d of wall time pass with no host: the device clock runs on
// (paced, or at real time when unpaced) and its frames are lost.
func (e *Emulator) Idle(ctx context.Context, d time.Duration) error {
	start := time.Now()
	end := start.Add(d)
	e.rebase(start)
	speed := e.cfg.Speed
	if e.cfg.Unpaced {
		speed = 1
	}
	for {
		limit := time.Now()
		if limit.After(end) {
			limit = end
		}
		for !e.srcEOF || e.cur.len() > 0 || e.held.channels != 0 {
			n, err := e.nextFrame(ctx)
			if errors.Is(err, io.EOF) {
				e.markEnded() // the Source ended while the device was away
				break
			}
			if err != nil {
				return err
			}
			e.followRate(speed)
			if e.due(n, speed).After(limit) {
				break
			}
			if err := e.emit(nil, n); err != nil {
				return err
			}
		}
		wait := time.Until(end)
		if wait <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(10*time.Millisecond, wait)):
		}
	}
}

// readCommands reads host commands from r and answers them until r fails.
func (e *Emulator) readCommands(ctx context.Context, conn io.ReadWriter) error {
	dec := device.NewDecoder(conn)
	var events []device.Event
	for {
		f, err := dec.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.ErrNoProgress) {
				continue
			}
			return err
		}
		events = dec.TakeEvents(events[:0])
		if f.Type != device.FrameCommand {
			continue
		}
		e.mu.Lock()
		e.stats.Commands++
		e.mu.Unlock()
		r := e.handle(ctx, f.Command)
		if err := e.writeReply(conn, r); err != nil {
			return err
		}
	}
}

// writeReply writes a reply frame, with the configured corruption.
func (e *Emulator) writeReply(w io.Writer, r device.Reply) error {
	e.rbuf = device.AppendReply(e.rbuf[:0], r)
	damaged := damage(e.rbuf, e.replyRNG, e.cfg.Faults.CorruptRate, &e.replySkip, nil)
	e.wmu.Lock()
	_, err := w.Write(e.rbuf)
	e.wmu.Unlock()
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.stats.Replies++
	e.stats.BytesSent += uint64(len(e.rbuf))
	e.stats.BytesDamaged += uint64(len(damaged))
	if len(damaged) > 0 {
		e.stats.RepliesCorrupted++
	}
	e.mu.Unlock()
	return nil
}

// onPump runs fn on the pump goroutine, which owns the Source.
func (e *Emulator) onPump(ctx context.Context, fn func() error) error {
	r := srcRequest{fn: fn, done: make(chan error, 1)}
	select {
	case e.srcReq <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handle carries out one command and returns the reply.
func (e *Emulator) handle(ctx context.Context, c device.Command) device.Reply {
	r := device.Reply{Seq: c.Seq, Op: c.Op, Status: device.StatusOK}
	var newRate uint32 // the rate just set, which frames carry from now on
	fail := func(s device.Status, format string, args ...any) {
		r.Status, r.Message = s, fmt.Sprintf(format, args...)
		if s == device.StatusError {
			e.mu.Lock()
			e.stats.BadCommands++
			e.mu.Unlock()
		}
		e.logf("sim: %s command %d: %s", c.Op, c.Seq, r.Message)
	}
	switch c.Op {
	case device.OpPing:
		r.PingTime = c.PingTime
	case device.OpStart, device.OpStop:
		e.wmu.Lock()
		e.mu.Lock()
		e.streaming = c.Op == device.OpStart
		e.modes.announce = e.modes.announce || c.Op == device.OpStart // settings again when streaming starts
		e.mu.Unlock()
		e.wmu.Unlock()
	case device.OpSetChannels:
		e.mu.Lock()
		n := e.srcCh
		e.mu.Unlock()
		if n == 0 {
			// The Source has not said how many channels it has yet.
			if err := e.onPump(ctx, func() error { _, err := e.nextFrame(ctx); return err }); err != nil {
				fail(device.StatusError, "source: %v", err)
				break
			}
			e.mu.Lock()
			n = e.srcCh
			e.mu.Unlock()
		}
		if msg := checkChannels(c.Channels, n); msg != "" {
			fail(device.StatusError, "%s", msg)
			break
		}
		var enabled []int
		if len(c.Channels) > 0 {
			enabled = make([]int, len(c.Channels))
			for i, ch := range c.Channels {
				enabled[i] = int(ch)
			}
		}
		e.wmu.Lock()
		e.mu.Lock()
		e.enabled = enabled
		e.modes.channelsChanged() // thresholds were per channel
		e.mu.Unlock()
		e.wmu.Unlock()
	case device.OpSetRate:
		rs, ok := e.src.(RateSetter)
		if !ok {
			fail(device.StatusUnsupported, "this source has a fixed sample rate")
			break
		}
		if err := e.onPump(ctx, func() error { return rs.SetRate(float64(c.Rate)) }); err != nil {
			fail(device.StatusError, "set rate %d Hz: %v", c.Rate, err)
			break
		}
		newRate = c.Rate
	case device.OpStimulate:
		s := c.Stim
		e.mu.Lock()
		n := e.srcCh
		e.mu.Unlock()
		if n > 0 && int(s.Channel) >= n {
			fail(device.StatusError, "stimulate channel %d: the device has %d channels", s.Channel, n)
			break
		}
		if st, ok := e.src.(Stimulator); ok {
			if err := e.onPump(ctx, func() error { return st.Stimulate(s) }); err != nil {
				fail(device.StatusError, "stimulate: %v", err)
				break
			}
		}
		if err := e.onPump(ctx, func() error {
			train := float64(s.Pulses) * float64(max(s.PeriodUs, 2*s.PhaseUs+s.InterphaseUs)) * 1e-6
			e.stimUntil = e.cur.first + uint64(math.Ceil(train*e.cur.rate))
			return nil
		}); err != nil {
			fail(device.StatusError, "stimulate: %v", err)
			break
		}
		e.mu.Lock()
		e.stats.Stimulations++
		e.mu.Unlock()
	case device.OpInfo:
		e.mu.Lock()
		info := struct {
			Name         string  `json:"name"`
			Channels     int     `json:"channels"`
			Enabled      int     `json:"enabled"`
			Rate         float64 `json:"rate"`
			Gain         float64 `json:"gain_uv_per_count"`
			FrameSamples int     `json:"frame_samples"`
			Streaming    bool    `json:"streaming"`
			SetRate      bool    `json:"set_rate"`
			Stimulate    bool    `json:"stimulate"`
			Protocol     int     `json:"protocol"` // highest wire protocol version spoken
			Mode         string  `json:"mode"`
		}{e.cfg.Name, e.srcCh, e.srcCh, e.rate, e.gain, e.cfg.FrameSamples, e.streaming, false, false, device.ProtocolVersion2, e.modes.mode().String()}
		if e.enabled != nil {
			info.Enabled = len(e.enabled)
		}
		e.mu.Unlock()
		_, info.SetRate = e.src.(RateSetter)
		_, info.Stimulate = e.src.(Stimulator)
		b, _ := json.Marshal(info)
		r.Message = string(b)
	case device.OpSetMode, device.OpSetThresholds, device.OpSetSnippet, device.OpSetFeatures:
		if msg := e.setMode(ctx, c); msg != "" {
			fail(device.StatusError, "%s", msg)
		}
	default:
		fail(device.StatusUnsupported, "unknown operation %d", uint8(c.Op))
	}
	e.mu.Lock()
	r.Counter = e.counter
	r.Rate = uint32(math.Round(e.rate))
	if newRate != 0 {
		r.Rate = newRate
	}
	r.Channels = uint16(e.srcCh)
	if e.enabled != nil {
		r.Channels = uint16(len(e.enabled))
	}
	e.mu.Unlock()
	return r
}

// checkChannels validates a channel subset for a device of n channels.
func checkChannels(chs []uint16, n int) string {
	seen := make(map[uint16]bool, len(chs))
	for i, c := range chs {
		if int(c) >= n {
			return fmt.Sprintf("channel %d (entry %d) does not exist: the device has channels 0..%d", c, i, n-1)
		}
		if seen[c] {
			return fmt.Sprintf("channel %d is listed twice", c)
		}
		seen[c] = true
	}
	return ""
}
