package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ConnConfig configures a WireConn. The zero value works.
type ConnConfig struct {
	// Queue is the number of Blocks buffered for Next (default 256). When
	// Next falls further behind, newer frames are dropped and reported as
	// a gap on the next Block delivered, so memory stays bounded.
	Queue int
	// CommandTimeout bounds the wait for a reply (default 2 s).
	CommandTimeout time.Duration
	// DefaultGain is the Block Gain for frames whose Gain is 0.
	DefaultGain float64
}

// WireConn is a Source over a two-way connection carrying the wire
// protocol: a TCP connection to a network headstage (DialTCP), or any
// net.Conn. A goroutine reads the connection with a Decoder, queues one
// Block per data frame for Next and hands replies to Command, so commands
// can be sent from any goroutine whether or not Next is being called.
// Anomalies ride on the Blocks as Events (see Decoder); frames dropped
// because Next fell behind are reported as a gap with Detail "host queue
// full".
type WireConn struct {
	conn net.Conn
	cfg  ConnConfig
	name string

	blocks chan Block
	done   chan struct{} // closed when the reader stops
	err    error         // why the reader stopped; read after done is closed
	closed atomic.Bool

	wmu  sync.Mutex // serialises writes
	wbuf []byte
	seq  atomic.Uint32

	mu      sync.Mutex
	waiters map[uint32]chan Reply
	stats   Stats // decoder stats, updated per frame, plus host drops
}

// DialTCP connects to a headstage serving the wire protocol over TCP at
// addr (host:port) and starts reading it.
func DialTCP(ctx context.Context, addr string, cfg ConnConfig) (*WireConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return NewWireConn(conn, cfg), nil
}

// NewWireConn starts reading the wire protocol from conn. The WireConn
// owns conn: Close closes it.
func NewWireConn(conn net.Conn, cfg ConnConfig) *WireConn {
	if cfg.Queue <= 0 {
		cfg.Queue = 256
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 2 * time.Second
	}
	c := &WireConn{
		conn:    conn,
		cfg:     cfg,
		name:    conn.RemoteAddr().String(),
		blocks:  make(chan Block, cfg.Queue),
		done:    make(chan struct{}),
		waiters: make(map[uint32]chan Reply),
	}
	go c.read()
	return c
}

// read is the reader goroutine.
func (c *WireConn) read() {
	dec := NewDecoder(c.conn)
	dec.Name = c.name
	dec.fresh = true // the Blocks keep the decoded samples: no copy
	var (
		carry   []Event // events of dropped blocks
		dropN   uint64  // samples per channel dropped since the last delivered block
		dropEnd uint64  // End of the last dropped block
		own     Stats   // host-side drops
	)
	var err error
	for {
		var f Frame
		f, err = dec.Next()
		if err != nil {
			if errors.Is(err, io.ErrNoProgress) {
				continue
			}
			break
		}
		switch f.Type {
		case FrameData:
			b := Block{
				First:    f.Counter,
				Rate:     float64(f.Rate),
				Channels: f.Channels,
				Gain:     float64(f.Gain),
				Samples:  f.Samples, // a fresh slice per frame
				Received: time.Now(),
			}
			if b.Gain == 0 {
				b.Gain = c.cfg.DefaultGain
			}
			if len(c.blocks) == cap(c.blocks) {
				// Next has fallen behind: drop the frame, keep its events.
				carry = dec.TakeEvents(carry)
				dropN += uint64(b.Len())
				dropEnd = b.End()
				break
			}
			events := carry
			if dropN > 0 {
				e := Event{Kind: EventGap, Sample: dropEnd, Count: dropN, Detail: "host queue full: frames dropped"}
				own.Add(e)
				events = append(events, e)
			}
			b.Events = dec.TakeEvents(events)
			c.blocks <- b // never blocks: this goroutine is the only sender
			carry, dropN = nil, 0
		case FrameReply:
			c.mu.Lock()
			ch := c.waiters[f.Reply.Seq]
			delete(c.waiters, f.Reply.Seq)
			c.mu.Unlock()
			if ch != nil {
				ch <- f.Reply
			}
		}
		st := dec.Stats()
		st.Gaps += own.Gaps
		st.LostSamples += own.LostSamples
		c.mu.Lock()
		c.stats = st
		c.mu.Unlock()
	}
	if c.closed.Load() {
		err = fmt.Errorf("device: %s: %w", c.name, net.ErrClosed)
	} else if !errors.Is(err, io.EOF) {
		err = fmt.Errorf("device: %s: %w", c.name, err)
	}
	c.err = err
	close(c.done)
	close(c.blocks)
}

// Next returns the next Block; io.EOF when the device closed the
// connection; an error wrapping net.ErrClosed after Close; ctx.Err() if ctx
// ends first.
func (c *WireConn) Next(ctx context.Context) (Block, error) {
	select {
	case b, ok := <-c.blocks:
		if !ok {
			return Block{}, c.err
		}
		return b, nil
	case <-ctx.Done():
		return Block{}, ctx.Err()
	}
}

// Send writes c to the device without waiting for its reply (which, if it
// comes, is dropped). A zero Seq is replaced by the next sequence number,
// which Send returns.
func (c *WireConn) Send(cmd Command) (uint32, error) {
	if cmd.Seq == 0 {
		cmd.Seq = c.nextSeq()
	}
	return cmd.Seq, c.write(cmd)
}

func (c *WireConn) nextSeq() uint32 {
	for {
		if s := c.seq.Add(1); s != 0 {
			return s
		}
	}
}

func (c *WireConn) write(cmd Command) error {
	if cmd.Op == OpSetChannels && len(cmd.Channels) > MaxCommandChannels {
		return fmt.Errorf("device: set_channels with %d channels, at most %d", len(cmd.Channels), MaxCommandChannels)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = AppendCommand(c.wbuf[:0], cmd)
	if _, err := c.conn.Write(c.wbuf); err != nil {
		return fmt.Errorf("device: %s: sending %s command %d: %w", c.name, cmd.Op, cmd.Seq, err)
	}
	return nil
}

// Command sends cmd and waits for its reply, at most CommandTimeout. A
// zero Seq is replaced by the next sequence number. A reply whose Status
// is not StatusOK is returned with a *CommandError.
func (c *WireConn) Command(ctx context.Context, cmd Command) (Reply, error) {
	if cmd.Seq == 0 {
		cmd.Seq = c.nextSeq()
	}
	ch := make(chan Reply, 1)
	c.mu.Lock()
	c.waiters[cmd.Seq] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.waiters, cmd.Seq)
		c.mu.Unlock()
	}
	if err := c.write(cmd); err != nil {
		forget()
		return Reply{}, err
	}
	t := time.NewTimer(c.cfg.CommandTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.Status != StatusOK {
			return r, &CommandError{Op: r.Op, Seq: r.Seq, Status: r.Status, Message: r.Message}
		}
		return r, nil
	case <-t.C:
		forget()
		return Reply{}, fmt.Errorf("device: %s: no reply to %s command %d after %v", c.name, cmd.Op, cmd.Seq, c.cfg.CommandTimeout)
	case <-ctx.Done():
		forget()
		return Reply{}, ctx.Err()
	case <-c.done:
		forget()
		return Reply{}, c.err
	}
}

// Ping measures the round-trip time of a ping command.
func (c *WireConn) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	stamp := uint64(start.UnixNano())
	r, err := c.Command(ctx, Command{Op: OpPing, PingTime: stamp})
	rtt := time.Since(start)
	if err != nil {
		return 0, err
	}
	if r.PingTime != stamp {
		return 0, fmt.Errorf("device: %s: ping reply %d echoes time %d, sent %d", c.name, r.Seq, r.PingTime, stamp)
	}
	return rtt, nil
}

// Stats returns the link statistics so far.
func (c *WireConn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Close closes the connection and waits for the reader to stop. Blocks
// already queued can still be read; then Next returns an error wrapping
// net.ErrClosed.
func (c *WireConn) Close() error {
	c.closed.Store(true)
	err := c.conn.Close()
	<-c.done
	return err
}
