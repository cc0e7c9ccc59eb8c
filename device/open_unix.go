//go:build unix

package device

import (
	"os"
	"syscall"
)

// openNoBlock opens path for reading without blocking on a named pipe
// that has no writer. Regular files behave as usual (the runtime puts
// them back in blocking mode: they cannot be polled).
func openNoBlock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}
