//go:build linux

package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ptyPort is one pseudo-terminal: the emulator holds the master and keeps
// the slave open (so the master never sees a hang-up while no host has the
// port open); hosts open the slave by its path.
type ptyPort struct {
	master *os.File // pollable: Close unblocks pending reads and writes
	slave  *os.File
}

// openPTY opens a pseudo-terminal in raw mode: no echo, no line
// discipline, 8-bit clean, so wire-protocol bytes pass through untouched
// in both directions.
func openPTY() (*ptyPort, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("sim: opening a pseudo-terminal: %w", err)
	}
	// pty.Open leaves the master in blocking mode, where Close does not
	// interrupt a pending Read. Re-wrap a non-blocking duplicate so the
	// Go runtime polls it.
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sim: pseudo-terminal master: %w", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := makeRaw(s); err != nil {
		master.Close()
		s.Close()
		return nil, fmt.Errorf("sim: raw mode on %s: %w", s.Name(), err)
	}
	return &ptyPort{master: master, slave: s}, nil
}

// makeRaw puts the terminal f in raw mode, as cfmakeraw(3) does.
func makeRaw(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	err = sc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			terr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		terr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	return terr
}

func (p *ptyPort) close() {
	p.master.Close()
	p.slave.Close()
}

// relink points the symbolic link at link to target, atomically (a new
// link renamed over the old one), so a host never sees a half-made path.
func relink(link, target string) error {
	tmp := fmt.Sprintf("%s.%d.tmp", link, os.Getpid())
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// ServePTY serves the device on a pseudo-terminal published at the stable
// path link, a symbolic link to the current pseudo-terminal (e.g.
// /dev/pts/3). Open link with any serial library, at any baud rate.
//
// An unplug closes the pseudo-terminal and removes link, as when a USB
// device disappears; after the unplug time a new pseudo-terminal is
// linked at the same path. ready, if not nil, is called each time link
// points to a new pseudo-terminal, with its path. ServePTY runs until ctx
// ends (returning ctx's error), the Source ends (nil) or an error; it
// removes link before returning.
//
// If link is empty, a link named "headstage" is made in a new temporary
// directory, removed at the end.
func (e *Emulator) ServePTY(ctx context.Context, link string, ready func(tty string)) error {
	if link == "" {
		dir, err := os.MkdirTemp("", "spikeline-pty-")
		if err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		defer os.RemoveAll(dir)
		link = filepath.Join(dir, "headstage")
	}
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("sim: %s exists and is not a symbolic link; refusing to replace it", link)
	}
	defer os.Remove(link)
	for {
		p, err := openPTY()
		if err != nil {
			return err
		}
		if err := relink(link, p.slave.Name()); err != nil {
			p.close()
			return err
		}
		if ready != nil {
			ready(p.slave.Name())
		}
		err = e.Serve(ctx, p.master)
		// Unplugged or done: the port disappears.
		os.Remove(link)
		p.close()
		var u *UnplugError
		switch {
		case errors.As(err, &u):
			if err := e.Idle(ctx, u.For); err != nil {
				return err
			}
		case errors.Is(err, io.EOF):
			return nil
		case IsHostClosed(err):
			// A pseudo-terminal master does not see hosts come and go;
			// reaching here means the master itself failed.
			return fmt.Errorf("sim: pseudo-terminal %s: %w", p.slave.Name(), err)
		default:
			return err
		}
	}
}
