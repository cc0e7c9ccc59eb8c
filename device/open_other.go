//go:build !unix

package device

import "os"

// openNoBlock opens path for reading.
func openNoBlock(path string) (*os.File, error) { return os.Open(path) }

// createNoFollow creates or truncates path for writing unless it is a
// symbolic link (checked before opening: this system has no O_NOFOLLOW).
func createNoFollow(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, os.ErrExist
	}
	return os.Create(path)
}

// syncDir does nothing: directories cannot be synced here.
func syncDir(string) error { return nil }
