package device

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files spikeline writes are created without following symbolic links: a
// link planted where an output goes (by mistake, or by another user of a
// shared directory) is refused or replaced, never written through, so
// writing an output can only ever change the file it names.

// ErrSymlink is wrapped by the error of CreateFile when the path is a
// symbolic link.
var ErrSymlink = errors.New("is a symbolic link: refusing to write through it")

// CreateFile creates or truncates the file path for writing, as os.Create
// does, except that it refuses a path that is a symbolic link (wrapping
// ErrSymlink) instead of following it, and anything but a regular file
// (a pipe, a device, a directory).
func CreateFile(path string) (*os.File, error) {
	f, err := createNoFollow(path)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s %w", path, ErrSymlink)
		} else if lerr == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %s, not a regular file", path, FileKind(fi.Mode()))
		}
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s: %s, not a regular file", path, FileKind(fi.Mode()))
		}
		return nil, err
	}
	return f, nil
}

// WriteFile writes data to path through CreateFile (never through a
// symbolic link).
func WriteFile(path string, data []byte) error {
	f, err := CreateFile(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFileAtomic replaces path with data through a temporary file,
// fsync and rename: a reader sees the old or the new content, never a
// mixture, even after a crash or a power loss. The temporary file has a
// fresh random name and is created exclusively (O_EXCL), so nothing
// planted beside path is ever opened; the rename replaces a symbolic link
// at path rather than writing through it. Every fsync error is returned.
func WriteFileAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("fsync %s: %w", tmp, err)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the entries of dir (a file created, renamed or removed in
// it) durable. File systems that cannot sync a directory are not an
// error; any other failure is.
func SyncDir(dir string) error {
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
