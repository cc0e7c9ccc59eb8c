package device

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpDevice is a minimal headstage on a real TCP socket: it answers
// commands (ping echoes, start streams frames, op 99 is unsupported) and
// sends frames of 2 channels x 10 samples when told.
type tcpDevice struct {
	ln     net.Listener
	frames chan int // number of data frames to send
}

func startTCPDevice(t *testing.T) *tcpDevice {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &tcpDevice{ln: ln, frames: make(chan int, 4)}
	t.Cleanup(func() { ln.Close() })
	go d.serve()
	return d
}

func (d *tcpDevice) serve() {
	conn, err := d.ln.Accept()
	if err != nil {
		return
	}
	defer conn.Close()
	replies := make(chan Reply, 16)
	go func() {
		dec := NewDecoder(conn)
		for {
			f, err := dec.Next()
			if err != nil {
				close(replies)
				return
			}
			c := f.Command
			r := Reply{Seq: c.Seq, Op: c.Op, Status: StatusOK, PingTime: c.PingTime, Rate: 1000, Channels: 2}
			switch c.Op {
			case OpStart:
				d.frames <- 5
			case OpPing:
			default:
				r.Status, r.Message = StatusUnsupported, "not here"
			}
			replies <- r
		}
	}()
	enc := NewEncoder(conn)
	counter := uint64(0)
	s := make([]int16, 20)
	for {
		select {
		case r, ok := <-replies:
			if !ok {
				return
			}
			enc.WriteReply(r)
		case n := <-d.frames:
			for range n {
				if n < 0 {
					return
				}
				enc.WriteData(counter, 1000, 0.5, 2, s, 0)
				counter += 10
			}
			if n < 0 {
				return
			}
		}
	}
}

func TestWireConn(t *testing.T) {
	dev := startTCPDevice(t)
	ctx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	c, err := DialTCP(ctx, dev.ln.Addr().String(), ConnConfig{Queue: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if rtt, err := c.Ping(ctx); err != nil || rtt <= 0 {
		t.Fatalf("ping: %v, %v", rtt, err)
	}
	var ce *CommandError
	if _, err := c.Command(ctx, Command{Op: Op(99)}); !errors.As(err, &ce) || ce.Status != StatusUnsupported || ce.Message != "not here" {
		t.Fatalf("unsupported op: %v", err)
	}
	if r, err := c.Command(ctx, Command{Op: OpStart}); err != nil || r.Op != OpStart {
		t.Fatalf("start: %+v %v", r, err)
	}
	for i := range 5 {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		b, err := c.Next(tctx)
		cancel()
		if err != nil || b.First != uint64(10*i) || b.Channels != 2 || b.Len() != 10 || b.Gain != 0.5 || len(b.Events) != 0 {
			t.Fatalf("block %d: %+v %v", i, b, err)
		}
	}

	// Not reading: 8 blocks queue, the rest are dropped and reported.
	dev.frames <- 30
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Frames < 35 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	dev.frames <- 1 // delivered after the drops, carrying the gap
	var got, lost uint64
	next := uint64(50)
	for got+lost < 31*10 {
		b, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			if e.Kind == EventGap {
				lost += e.Count
				next += e.Count
			}
		}
		if b.First != next {
			t.Fatalf("block at %d, want %d", b.First, next)
		}
		next = b.End()
		got += uint64(b.Len())
	}
	if got != 90 || lost != 220 || c.Stats().LostSamples != 220 || c.Stats().Gaps != 1 {
		t.Fatalf("got %d samples, lost %d; stats %+v", got, lost, c.Stats())
	}

	// Cancelling Next.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := c.Next(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled Next: %v", err)
	}

	// The device hangs up: io.EOF; commands fail.
	dev.frames <- -1
	if _, err := c.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after hang-up: %v", err)
	}
	if _, err := c.Command(ctx, Command{Op: OpPing}); err == nil {
		t.Fatal("command after hang-up succeeded")
	}
}

func TestWireConnClose(t *testing.T) {
	dev := startTCPDevice(t)
	c, err := DialTCP(context.Background(), dev.ln.Addr().String(), ConnConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Next(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if _, err := DialTCP(context.Background(), "127.0.0.1:1", ConnConfig{}); err == nil {
		t.Fatal("dialing a closed port succeeded")
	}
}
