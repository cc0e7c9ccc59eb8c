package device

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOutputNoFollow: outputs never write through a symbolic link.
func TestOutputNoFollow(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious"), 0o644)
	link := filepath.Join(dir, "out.csv")
	if err := os.Symlink(victim, link); err != nil {
		t.Skip(err)
	}
	if _, err := CreateFile(link); !errors.Is(err, ErrSymlink) {
		t.Errorf("CreateFile(symlink) = %v, want ErrSymlink", err)
	}
	// WriteFileAtomic replaces the link itself, through a fresh temporary
	// file: a link planted at the old fixed temporary name is not touched.
	tmpLink := filepath.Join(dir, "meta.json.tmp")
	os.Symlink(victim, tmpLink)
	if err := WriteFileAtomic(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("victim overwritten: %q", b)
	}
	if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s: %v, %v: want a regular file", link, fi, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 { // victim, out.csv, meta.json.tmp
		t.Errorf("left behind: %v", ents)
	}
	// A regular file is replaced; a directory refused.
	f, err := CreateFile(link)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := CreateFile(dir); err == nil {
		t.Error("CreateFile(directory) succeeded")
	}
	if fifo := filepath.Join(dir, "fifo"); mkfifo(fifo) == nil {
		if _, err := CreateFile(fifo); err == nil {
			t.Error("CreateFile(fifo) succeeded")
		}
	}
}
