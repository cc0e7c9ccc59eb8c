package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/intan"
)

// RHXConfig configures an RHXEmulator. The zero value paces at real time
// with 128 channels per port, as a recording controller.
type RHXConfig struct {
	// Speed paces the acquisition at Speed times real time (default 1).
	Speed float64
	// Unpaced sends data as fast as the host reads it.
	Unpaced bool
	// Type is the controller RHX reports (default ControllerRecordUSB3).
	Type string
	// PortChannels is the amplifier channels per port (1..128, default
	// 128): the Source's channels fill ports A, B, ... in order.
	PortChannels int
	// Logf, if set, receives one line per connection and refused command.
	Logf func(format string, args ...any)
}

// RHXStats counts what an RHXEmulator did.
type RHXStats struct {
	Commands      uint64 // command batches received
	Errors        uint64 // error replies sent
	Writes        uint64 // writes to the waveform port
	BlocksSent    uint64 // data blocks sent
	BlocksDropped uint64 // data blocks discarded: running with no waveform connection or no channel enabled
	BytesSent     uint64
	Garbage       uint64 // garbage bytes injected (InjectGarbage)
	Connections   uint64 // waveform connections accepted
	// MaxLate is the longest a write was finished after its samples were
	// all acquired (paced emulators): a host that cannot keep up makes
	// RHX's writes late, and RHX's FIFO overflows when they fall seconds
	// behind.
	MaxLate time.Duration
}

// RHXEmulator serves a device.Source as the Intan RHX software does
// (docs/intan.md): a text command port and a binary waveform port
// speaking RHX's TCP protocol (package device/intan has the byte
// layout), so that spikeline's RHX source, and any RHX client, can be
// tested without the hardware. What it does not emulate: the spike port,
// the low and high bands (set refuses them), recording to disk, and the
// GUI: where RHX needs a click ("Connect" on the command port after a
// client left), the emulator listens again by itself.
type RHXEmulator struct {
	src     device.Source
	cfg     RHXConfig
	rate    float64
	gain    float64
	chans   int
	ports   []int // amplifier channels per port
	pending []int16

	mu         sync.Mutex
	running    bool
	mode       string // Run or Record when running
	wake       chan struct{}
	perWrite   int
	notch      string
	enabled    []bool // wide band enabled, per channel
	waveState  int
	wave       net.Conn
	garbage    int
	timestamp  uint32
	stats      RHXStats
	srcErr     error
	sourceDone bool
}

// Waveform port states, as RHX's TCPCommunicator.
const (
	rhxListening = iota
	rhxConnected
	rhxDisconnected
)

// NewRHX returns an emulator serving src. It reads src's first Block to
// learn its channels and rate.
func NewRHX(ctx context.Context, src device.Source, cfg RHXConfig) (*RHXEmulator, error) {
	if cfg.Speed == 0 {
		cfg.Speed = 1
	}
	if cfg.Type == "" {
		cfg.Type = "ControllerRecordUSB3"
	}
	if cfg.PortChannels == 0 {
		cfg.PortChannels = intan.MaxPortChannels
	}
	if cfg.PortChannels < 1 || cfg.PortChannels > intan.MaxPortChannels || !(cfg.Speed > 0) {
		return nil, fmt.Errorf("sim: RHX emulator: %d channels per port at speed %g", cfg.PortChannels, cfg.Speed)
	}
	b, err := src.Next(ctx)
	if err != nil {
		return nil, fmt.Errorf("sim: RHX emulator: reading the source: %w", err)
	}
	e := &RHXEmulator{src: src, cfg: cfg, rate: b.Rate, gain: b.Gain, chans: b.Channels,
		wake: make(chan struct{}, 1), perWrite: 10, notch: "None", enabled: make([]bool, b.Channels)}
	if most := len(intan.Ports) * cfg.PortChannels; b.Channels > most {
		return nil, fmt.Errorf("sim: RHX emulator: %d channels, RHX has at most %d (%d ports of %d)", b.Channels, most, len(intan.Ports), cfg.PortChannels)
	}
	for n := b.Channels; n > 0; n -= cfg.PortChannels {
		e.ports = append(e.ports, min(n, cfg.PortChannels))
	}
	e.pending = append(e.pending, b.Samples...)
	return e, nil
}

// Stats returns what the emulator did so far.
func (e *RHXEmulator) Stats() RHXStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// DropWaveform closes the waveform connection, as a network fault does;
// RHX then stops listening until a host executes
// connecttcpwaveformdataoutput.
func (e *RHXEmulator) DropWaveform() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wave != nil {
		e.wave.Close()
		e.wave = nil
		e.waveState = rhxDisconnected
	}
}

// InjectGarbage sends n bytes that are not a data block before the next
// data.
func (e *RHXEmulator) InjectGarbage(n int) {
	e.mu.Lock()
	e.garbage += n
	e.mu.Unlock()
}

func (e *RHXEmulator) logf(format string, args ...any) {
	if e.cfg.Logf != nil {
		e.cfg.Logf(format, args...)
	}
}

// Serve serves RHX's command port on cmd and its waveform port on wave
// until ctx ends (returning ctx's error) or the Source ends (nil). It
// closes both listeners.
func (e *RHXEmulator) Serve(ctx context.Context, cmd, wave net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cmd.Close()
	defer wave.Close()
	errc := make(chan error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); errc <- e.serveCommands(ctx, cmd) }()
	go func() { defer wg.Done(); errc <- e.serveWaveform(ctx, wave) }()
	go func() { defer wg.Done(); errc <- e.acquire(ctx) }()
	err := <-errc
	cancel()
	cmd.Close()
	wave.Close()
	e.mu.Lock()
	if e.wave != nil {
		e.wave.Close()
	}
	e.mu.Unlock()
	if ctx.Err() != nil && err == nil {
		err = ctx.Err()
	}
	return err
}

// serveCommands serves one command connection at a time; a host that
// connects while another is served is turned away, as RHX's listener is
// closed then.
func (e *RHXEmulator) serveCommands(ctx context.Context, ln net.Listener) error {
	busy := make(chan struct{}, 1)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim: RHX command port: %w", err)
		}
		// A host that comes while another is served waits a moment for it
		// to leave (RHX's user clicking Connect again), then is turned away.
		t := time.NewTimer(2 * time.Second)
		select {
		case busy <- struct{}{}:
			t.Stop()
		case <-t.C:
			c.Close()
			continue
		case <-ctx.Done():
			t.Stop()
			c.Close()
			return nil
		}
		e.logf("sim: RHX command port: host %s connected", c.RemoteAddr())
		go func() {
			defer func() { <-busy }()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					// RHX parses what one read of the socket holds.
					if reply := e.parseCommands(string(buf[:n])); reply != "" {
						if _, err := c.Write([]byte(reply)); err != nil {
							return
						}
					}
				}
				if err != nil {
					e.logf("sim: RHX command port: host %s left", c.RemoteAddr())
					return
				}
			}
		}()
	}
}

// serveWaveform accepts the waveform connection when RHX listens.
func (e *RHXEmulator) serveWaveform(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim: RHX waveform port: %w", err)
		}
		e.mu.Lock()
		if e.waveState != rhxListening {
			e.mu.Unlock()
			c.Close() // not listening (RHX refuses the connection)
			continue
		}
		e.wave, e.waveState = c, rhxConnected
		e.stats.Connections++
		e.mu.Unlock()
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
			tc.SetWriteBuffer(4 << 20)
		}
		e.logf("sim: RHX waveform port: host %s connected", c.RemoteAddr())
		// RHX notices the host leaving (its socket's disconnected signal).
		go func() {
			var b [256]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					e.mu.Lock()
					if e.wave == c {
						e.wave, e.waveState = nil, rhxDisconnected
						e.logf("sim: RHX waveform port: host %s left", c.RemoteAddr())
					}
					e.mu.Unlock()
					c.Close()
					return
				}
			}
		}()
	}
}

// acquire runs the acquisition: while running, every TCPNumberDataBlocks
// PerWrite × 128 samples it sends one write to the waveform host, or
// discards the data when there is none, as RHX's TCPDataOutputThread.
func (e *RHXEmulator) acquire(ctx context.Context) error {
	var (
		start   time.Time
		sent    uint64 // frames since start
		words   []uint16
		out     []byte
		timer   = time.NewTimer(time.Hour)
		enabled []int
	)
	timer.Stop()
	for {
		e.mu.Lock()
		running, perWrite := e.running, e.perWrite
		if e.sourceDone {
			e.mu.Unlock()
			return e.srcErr
		}
		e.mu.Unlock()
		if !running {
			start = time.Time{}
			select {
			case <-ctx.Done():
				return nil
			case <-e.wake:
			}
			continue
		}
		if start.IsZero() {
			start, sent = time.Now(), 0
		}
		n := perWrite * intan.FramesPerBlock
		if err := e.fill(ctx, n); err != nil {
			if errors.Is(err, io.EOF) {
				e.mu.Lock()
				e.running, e.sourceDone = false, true
				e.mu.Unlock()
				return nil
			}
			return err
		}
		var due time.Time
		if !e.cfg.Unpaced {
			due = start.Add(time.Duration(float64(sent+uint64(n)) / e.rate / e.cfg.Speed * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					timer.Stop()
					return nil
				case <-timer.C:
				}
			}
		} else {
			e.waitForHost(ctx)
		}
		e.mu.Lock()
		if !e.running { // stopped while waiting: the data is never sent
			e.mu.Unlock()
			e.pending = e.pending[:0]
			continue
		}
		enabled = enabled[:0]
		for c, on := range e.enabled {
			if on {
				enabled = append(enabled, c)
			}
		}
		conn, ts, garbage := e.wave, e.timestamp, e.garbage
		e.timestamp += uint32(n)
		e.garbage = 0
		if conn == nil || len(enabled) == 0 {
			e.stats.BlocksDropped += uint64(perWrite)
			conn = nil
		}
		e.mu.Unlock()
		sent += uint64(n)
		samples := e.pending[:n*e.chans]
		if conn != nil {
			out = out[:0]
			for range garbage {
				out = append(out, 0x5a)
			}
			k := len(enabled)
			if cap(words) < intan.FramesPerBlock*k {
				words = make([]uint16, intan.FramesPerBlock*k)
			}
			w := words[:intan.FramesPerBlock*k]
			for blk := range perWrite {
				for t := range intan.FramesPerBlock {
					row := samples[(blk*intan.FramesPerBlock+t)*e.chans:]
					for j, c := range enabled {
						w[t*k+j] = e.word(row[c])
					}
				}
				out = intan.AppendWaveformBlock(out, ts+uint32(blk*intan.FramesPerBlock), w)
			}
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, err := conn.Write(out)
			e.mu.Lock()
			if err != nil {
				if e.wave == conn {
					conn.Close()
					e.wave, e.waveState = nil, rhxDisconnected
					e.logf("sim: RHX waveform port: writing: %v", err)
				}
			} else {
				if !due.IsZero() {
					e.stats.MaxLate = max(e.stats.MaxLate, time.Since(due))
				}
				e.stats.Writes++
				e.stats.BlocksSent += uint64(perWrite)
				e.stats.BytesSent += uint64(len(out))
				e.stats.Garbage += uint64(garbage)
			}
			e.mu.Unlock()
		}
		e.pending = append(e.pending[:0], e.pending[n*e.chans:]...)
	}
}

// waitForHost blocks an unpaced emulator until a waveform host is
// connected (it would otherwise discard data as fast as it can make it).
func (e *RHXEmulator) waitForHost(ctx context.Context) {
	for ctx.Err() == nil {
		e.mu.Lock()
		ok := e.wave != nil || !e.running
		e.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// word converts a count to RHX's offset-binary amplifier word, rescaled
// to 0.195 µV per count if the Source has another gain.
func (e *RHXEmulator) word(v int16) uint16 {
	if e.gain == intan.Gain {
		return uint16(v) ^ 0x8000
	}
	x := math.Round(float64(v)*e.gain/intan.Gain) + 32768
	return uint16(max(0, min(65535, x)))
}

// fill reads the Source until n samples per channel are pending.
func (e *RHXEmulator) fill(ctx context.Context, n int) error {
	for len(e.pending) < n*e.chans {
		b, err := e.src.Next(ctx)
		if err != nil {
			return err
		}
		if b.Channels != e.chans {
			return fmt.Errorf("sim: RHX emulator: the source changed from %d to %d channels", e.chans, b.Channels)
		}
		e.pending = append(e.pending, b.Samples...)
	}
	return nil
}

// channel finds amplifier channel name ("A-012") among the emulated
// ones.
func (e *RHXEmulator) channel(name string) (int, bool) {
	name = strings.ToUpper(name)
	if len(name) < 3 || name[1] != '-' {
		return 0, false
	}
	p := strings.IndexByte(intan.Ports, name[0])
	n, err := strconv.Atoi(name[2:])
	if p < 0 || p >= len(e.ports) || err != nil || n < 0 || n >= e.ports[p] || len(name) != 5 {
		return 0, false
	}
	return p*e.cfg.PortChannels + n, true
}

// parseCommands answers a batch of commands as RHX's
// TCPDisplay::parseCommands and CommandParser do; it returns the text
// sent back (RHX sends no separator between replies).
func (e *RHXEmulator) parseCommands(batch string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Commands++
	var out strings.Builder
	reply := func(s string) { out.WriteString(s) }
	fail := func(s string) { e.stats.Errors++; e.logf("sim: RHX: %s", s); reply(s) }
	cmds := strings.Split(batch, ";")
	if cmds[len(cmds)-1] == "" {
		cmds = cmds[:len(cmds)-1]
	}
	i := 0
	for _, c := range cmds {
		if strings.TrimSpace(c) == "" {
			continue
		}
		i++
		var words []string
		for _, w := range strings.Split(c, " ") {
			if w = strings.TrimSpace(w); w != "" {
				words = append(words, w)
			}
		}
		switch strings.ToLower(words[0]) {
		case "set":
			if len(words) != 3 {
				fail(fmt.Sprintf("Error - Command %d: Set commands require a parameter and a value", i))
				continue
			}
			if s := e.set(words[1], words[2]); s != "" {
				fail(s)
			}
		case "get":
			if len(words) != 2 {
				fail(fmt.Sprintf("Error - Command %d: Get commands require a parameter", i))
				continue
			}
			r, ok := e.get(words[1])
			if !ok {
				fail(r)
				continue
			}
			reply(r)
		case "execute":
			if len(words) != 2 && len(words) != 3 {
				fail(fmt.Sprintf("Error - Command %d: Execute commands require an action", i))
				continue
			}
			if s := e.execute(strings.ToLower(words[1])); s != "" {
				fail(s)
			}
		default:
			fail(fmt.Sprintf("Error - Command %d: Unrecognized command", i))
		}
	}
	return out.String()
}

func (e *RHXEmulator) get(param string) (string, bool) {
	lower := strings.ToLower(param)
	ret := func(name, value string) (string, bool) { return "Return: " + name + " " + value, true }
	if ch, item, ok := strings.Cut(lower, "."); ok {
		if c, found := e.channel(ch); found {
			switch item {
			case "tcpdataoutputenabled":
				return ret("TCPDataOutputEnabled", boolString(e.enabled[c]))
			case "tcpdataoutputenabledlow", "tcpdataoutputenabledhigh", "tcpdataoutputenabledspike":
				return ret(map[string]string{"tcpdataoutputenabledlow": "TCPDataOutputEnabledLow",
					"tcpdataoutputenabledhigh": "TCPDataOutputEnabledHigh", "tcpdataoutputenabledspike": "TCPDataOutputEnabledSpike"}[item], "False")
			case "nativechannelname":
				return ret("NativeChannelName", strings.ToUpper(ch))
			case "customchannelname":
				return ret("CustomChannelName", strings.ToUpper(ch))
			case "enabled":
				return ret("Enabled", "True")
			}
		}
		if len(ch) == 1 {
			if p := strings.IndexByte(intan.Ports, strings.ToUpper(ch)[0]); p >= 0 && p < len(e.ports) {
				switch item {
				case "numberamplifierchannels":
					return ret("NumberAmplifierChannels", strconv.Itoa(e.ports[p]))
				case "prefix":
					return ret("Prefix", strings.ToUpper(ch))
				}
			}
		}
		return "Unrecognized parameter", false
	}
	switch lower {
	case "type":
		return ret("Type", e.cfg.Type)
	case "sampleratehertz":
		if e.rate == 10000.0/3 {
			return ret("SampleRateHertz", "3333")
		}
		return ret("SampleRateHertz", strconv.FormatFloat(e.rate, 'f', -1, 64))
	case "tcpnumberdatablocksperwrite":
		return ret("TCPNumberDataBlocksPerWrite", strconv.Itoa(e.perWrite))
	case "notchfilterfreqhertz":
		return ret("NotchFilterFreqHertz", e.notch)
	case "version":
		return ret("Version", "3.4.0")
	case "runmode":
		mode := "Stop"
		if e.running {
			mode = e.mode
		}
		return "Return: RunMode " + mode, true
	case "currenttimestamp":
		if !e.running {
			return "Return: -1", true
		}
		return "Return: " + strconv.FormatUint(uint64(e.timestamp), 10), true
	}
	return "Unrecognized parameter", false
}

func boolString(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func (e *RHXEmulator) set(param, value string) string {
	lower, v := strings.ToLower(param), strings.ToLower(value)
	if ch, item, ok := strings.Cut(lower, "."); ok {
		if c, found := e.channel(ch); found {
			switch item {
			case "tcpdataoutputenabled":
				if v != "true" && v != "false" {
					return "Invalid value for TCPDataOutputEnabled command. Acceptable: True;False"
				}
				e.enabled[c] = v == "true"
				return ""
			case "tcpdataoutputenabledlow", "tcpdataoutputenabledhigh", "tcpdataoutputenabledspike":
				if v == "false" {
					return ""
				}
				return param + ": the spikeline RHX emulator streams the wide band only"
			}
		}
		return "Unrecognized parameter"
	}
	switch lower {
	case "runmode":
		switch v {
		case "run", "record":
			if e.running {
				return "Board must be stopped in order to start running"
			}
			e.running, e.mode, e.timestamp = true, map[string]string{"run": "Run", "record": "Record"}[v], 0
			select {
			case e.wake <- struct{}{}:
			default:
			}
		case "stop":
			if !e.running {
				return "Board must be running in order to stop"
			}
			e.running = false
		default:
			return "Invalid value for RunMode command. Acceptable: Run;Record;Trigger;Stop"
		}
		return ""
	case "tcpnumberdatablocksperwrite":
		if e.running {
			return "TCPNumberDataBlocksPerWrite cannot be set while controller is running."
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return "Invalid value for TCPNumberDataBlocksPerWrite command. Acceptable: [ 1 , 100 ]"
		}
		e.perWrite = n
		return ""
	case "notchfilterfreqhertz":
		switch v {
		case "none":
			e.notch = "None"
		case "50", "60":
			e.notch = v
		default:
			return "Invalid value for NotchFilterFreqHertz command. Acceptable: None;50;60;"
		}
		return ""
	case "type", "sampleratehertz":
		return param + " cannot be changed once software has started."
	}
	return "Unrecognized parameter"
}

func (e *RHXEmulator) execute(action string) string {
	switch action {
	case "clearalldataoutputs":
		clear(e.enabled)
	case "connecttcpwaveformdataoutput":
		if e.waveState == rhxDisconnected {
			e.waveState = rhxListening
		}
	case "disconnecttcpwaveformdataoutput":
		if e.wave != nil {
			e.wave.Close()
			e.wave = nil
		}
		e.waveState = rhxDisconnected
	case "connecttcpspikedataoutput", "disconnecttcpspikedataoutput":
	default:
		return "Unrecognized action"
	}
	return ""
}
