package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
)

// ServeTCP serves the device to hosts connecting to ln, one host at a
// time, as a network headstage does: a host that connects while another
// is served waits its turn. When a host disconnects the device serves the
// next; an unplug drops the host and closes every connection made during
// the unplug time. ServeTCP runs until ctx ends (returning ctx's error),
// the Source ends (nil) or ln fails, and closes ln.
func (e *Emulator) ServeTCP(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := make(chan net.Conn)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			select {
			case conns <- c:
			case <-ctx.Done():
				c.Close()
			}
		}
	}()
	defer ln.Close()
	for {
		var conn net.Conn
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-acceptErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("sim: accepting on %s: %w", ln.Addr(), err)
		case conn = <-conns:
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		host := conn.RemoteAddr()
		e.logf("sim: host %s connected", host)
		err := e.Serve(ctx, conn)
		var u *UnplugError
		switch {
		case errors.As(err, &u):
			idle := make(chan error, 1)
			go func() { idle <- e.Idle(ctx, u.For) }()
		away:
			for {
				select {
				case c := <-conns: // the device is away: nobody answers
					c.Close()
				case err := <-idle:
					if err != nil {
						return err
					}
					break away
				}
			}
		case errors.Is(err, io.EOF):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case IsHostClosed(err):
			e.logf("sim: host %s disconnected", host)
		default:
			// The connection failed (reset by the host...): serve the next.
			e.logf("sim: host %s: %v", host, err)
		}
	}
}
