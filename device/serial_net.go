package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// port is what a SerialSource reads and writes: a serial port, or a TCP
// connection to a network headstage (or to `spikeline sim serve --tcp`).
// A Read that times out with nothing returns 0, nil.
type port interface {
	io.ReadWriteCloser
	SetDTR(bool) error
	SetRTS(bool) error
}

// netAddress reports whether path names a network headstage:
// "tcp://host:port" (or "socket://host:port", as pyserial spells it).
func netAddress(path string) (string, bool) {
	for _, scheme := range []string{"tcp://", "socket://"} {
		if rest, ok := strings.CutPrefix(path, scheme); ok {
			return rest, true
		}
	}
	return "", false
}

// netPort is a TCP connection behaving like a serial port.
type netPort struct {
	conn        net.Conn
	readTimeout time.Duration
}

// dialNet connects to a network headstage at addr (host:port).
func dialNet(ctx context.Context, addr string, readTimeout time.Duration) (*netPort, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("device: connecting to headstage at tcp://%s: %w", addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &netPort{conn: c, readTimeout: readTimeout}, nil
}

func (p *netPort) Read(b []byte) (int, error) {
	if p.readTimeout > 0 {
		p.conn.SetReadDeadline(time.Now().Add(p.readTimeout))
	}
	n, err := p.conn.Read(b)
	if err != nil && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil // timed out with nothing, as a serial port does
	}
	return n, err
}

func (p *netPort) Write(b []byte) (int, error) { return p.conn.Write(b) }
func (p *netPort) Close() error                { return p.conn.Close() }

// A network link has no modem lines.
func (p *netPort) SetDTR(bool) error { return nil }
func (p *netPort) SetRTS(bool) error { return nil }
