package intan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode"
)

// The RHX command port (RHX: GUI/Widgets/tcpdisplay.cpp parseCommands,
// Engine/Processing/commandparser.cpp). The host sends text commands
// separated by ';' ("set runmode run", "get sampleratehertz",
// "execute clearalldataoutputs"); RHX parses whatever one read of the
// socket holds as whole commands, so a batch must arrive in one piece.
// A get is answered "Return: <Parameter> <value>"; a set that works is not
// answered at all; errors come back as text. Nothing delimits replies,
// so every exchange here ends with "get runmode", whose reply
// "Return: RunMode Stop|Run|Record|Trigger" is recognisable where it
// ends: what arrives before it answers the commands before it.

// ErrNotRHX is wrapped when the peer on the command port does not answer
// as the RHX software does.
var ErrNotRHX = errors.New("not an Intan RHX command port")

// RHXError is an error message RHX sent back.
type RHXError struct {
	Peer     string
	Commands string // what was sent
	Reply    string // what came back
}

func (e *RHXError) Error() string {
	return fmt.Sprintf("intan: RHX at %s refused %q: %s", e.Peer, e.Commands, strings.TrimSpace(e.Reply))
}

// maxBatch bounds the bytes of one exchange, so that it fits one TCP
// segment and RHX reads it whole.
const maxBatch = 1000

// runModes are the values of RunMode; none is a prefix of another.
var runModes = []string{"Stop", "Run", "Record", "Trigger"}

const runModeReply = "Return: RunMode "

// commandConn is a connection to an RHX command port.
type commandConn struct {
	c       net.Conn
	peer    string
	timeout time.Duration
	buf     []byte
}

func dialCommand(ctx context.Context, addr string, timeout time.Duration) (*commandConn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("intan: RHX command port: %w (is RHX running, with Network > Remote TCP Control > Command Output connected on %s?)", err, addr)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	cc := &commandConn{c: c, peer: addr, timeout: timeout}
	// The first exchange checks that this is RHX.
	if _, _, err := cc.exchange(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return cc, nil
}

// exchange sends cmds and "get runmode" in one write and returns the
// text received before the RunMode reply, and the run mode.
func (cc *commandConn) exchange(ctx context.Context, cmds ...string) (string, string, error) {
	line := "get runmode"
	if len(cmds) > 0 {
		line = strings.Join(cmds, ";") + ";" + line // never append to cmds: it may be a caller's slice
	}
	deadline := time.Now().Add(cc.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	cc.c.SetDeadline(deadline)
	defer cc.c.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { cc.c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := cc.c.Write([]byte(line)); err != nil {
		return "", "", cc.fail(ctx, line, err)
	}
	cc.buf = cc.buf[:0]
	var chunk [4096]byte
	for {
		n, err := cc.c.Read(chunk[:])
		cc.buf = append(cc.buf, chunk[:n]...)
		got := string(cc.buf)
		if i := strings.LastIndex(got, runModeReply); i >= 0 {
			for _, m := range runModes {
				if got[i+len(runModeReply):] == m {
					return got[:i], m, nil
				}
			}
		}
		if bad := notText(cc.buf); bad >= 0 || len(cc.buf) > 1<<16 {
			return "", "", fmt.Errorf("intan: peer %s: %w: it answered %q with %d bytes that are not RHX's text replies (byte %d: %s)%s",
				cc.peer, ErrNotRHX, line, len(cc.buf), max(bad, 0), quoteStart(cc.buf), wireHint(cc.buf))
		}
		if err != nil {
			return "", "", cc.fail(ctx, line, err)
		}
	}
}

// fail explains an exchange that got no complete reply.
func (cc *commandConn) fail(ctx context.Context, line string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if len(cc.buf) == 0 {
			return fmt.Errorf("intan: peer %s: %w: no reply to %q within %v", cc.peer, ErrNotRHX, line, cc.timeout)
		}
		return fmt.Errorf("intan: peer %s: %w: it answered %q with %s and then nothing for %v", cc.peer, ErrNotRHX, line, quoteStart(cc.buf), cc.timeout)
	}
	if len(cc.buf) > 0 {
		return fmt.Errorf("intan: peer %s: after %s in answer to %q: %w", cc.peer, quoteStart(cc.buf), line, err)
	}
	return fmt.Errorf("intan: RHX command port %s: %w", cc.peer, err)
}

// notText returns the index of the first byte that cannot be in RHX's
// replies (Latin-1 text), or -1.
func notText(b []byte) int {
	for i, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c == 0x7f {
			return i
		}
	}
	return -1
}

func quoteStart(b []byte) string {
	if len(b) > 48 {
		return fmt.Sprintf("%q...", b[:48])
	}
	return fmt.Sprintf("%q", b)
}

// wireHint recognises a spikeline wire-protocol headstage on the port.
func wireHint(b []byte) string {
	if strings.Contains(string(b), "\xa5\x5a\xc3\x3c") {
		return ": this is a spikeline wire-protocol headstage; open it with --device tcp:HOST:PORT"
	}
	return ""
}

// get asks for one parameter and returns its value.
func (cc *commandConn) get(ctx context.Context, param string) (string, error) {
	reply, _, err := cc.exchange(ctx, "get "+param)
	if err != nil {
		return "", err
	}
	// "Return: <Parameter> <value>"; the parameter is echoed in RHX's
	// capitalisation, and some replies ("Return: -1") have none.
	v, ok := strings.CutPrefix(reply, "Return: ")
	if !ok {
		return "", &RHXError{Peer: cc.peer, Commands: "get " + param, Reply: reply}
	}
	name, value, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(name, param) {
		return "", &RHXError{Peer: cc.peer, Commands: "get " + param, Reply: reply}
	}
	return value, nil
}

// do sends commands that answer nothing when they work, in batches that
// fit one segment; any reply is an error naming the command (found by
// sending the batch's commands again one by one, which sets nothing
// twice that matters: the commands are idempotent).
func (cc *commandConn) do(ctx context.Context, cmds ...string) error {
	for len(cmds) > 0 {
		n, size := 0, 0
		for n < len(cmds) && (n == 0 || size+len(cmds[n])+1 < maxBatch) {
			size += len(cmds[n]) + 1
			n++
		}
		batch := cmds[:n]
		cmds = cmds[n:]
		reply, _, err := cc.exchange(ctx, batch...)
		if err != nil {
			return err
		}
		if strings.TrimFunc(reply, unicode.IsSpace) == "" {
			continue
		}
		if len(batch) > 1 {
			for _, c := range batch {
				if err := cc.do(ctx, c); err != nil {
					return err
				}
			}
		}
		return &RHXError{Peer: cc.peer, Commands: strings.Join(batch, ";"), Reply: reply}
	}
	return nil
}

// runMode asks for the run mode.
func (cc *commandConn) runMode(ctx context.Context) (string, error) {
	_, mode, err := cc.exchange(ctx)
	return mode, err
}

// setRunMode sends "set runmode mode" alone (RHX runs the acquisition
// loop from inside that command, so nothing after it in the same batch
// would be read until it stops) and waits until RHX reports the mode.
func (cc *commandConn) setRunMode(ctx context.Context, mode string) error {
	cc.c.SetWriteDeadline(time.Now().Add(cc.timeout))
	_, err := cc.c.Write([]byte("set runmode " + strings.ToLower(mode)))
	cc.c.SetWriteDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("intan: RHX command port %s: %w", cc.peer, err)
	}
	deadline := time.Now().Add(cc.timeout)
	for {
		// Give RHX time to read the command alone before the query.
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		reply, got, err := cc.exchange(ctx)
		if err != nil {
			return err
		}
		if strings.TrimSpace(reply) != "" {
			return &RHXError{Peer: cc.peer, Commands: "set runmode " + strings.ToLower(mode), Reply: reply}
		}
		if strings.EqualFold(got, mode) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("intan: RHX at %s: still in RunMode %s %v after \"set runmode %s\"", cc.peer, got, cc.timeout, strings.ToLower(mode))
		}
	}
}

func (cc *commandConn) close() error { return cc.c.Close() }
