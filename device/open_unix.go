//go:build unix

package device

import (
	"errors"
	"os"
	"syscall"
)

// openNoBlock opens path for reading without blocking on a named pipe
// that has no writer. Regular files behave as usual (the runtime puts
// them back in blocking mode: they cannot be polled).
func openNoBlock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// createNoFollow creates or truncates path for writing, failing (ELOOP)
// if path is a symbolic link, and (ENXIO) instead of blocking if it is a
// named pipe nobody reads.
func createNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
}

// syncDir fsyncs a directory; EINVAL (a file system that does not
// support it) is not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}
