package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// checkOutDir makes sure that writing a command's outputs into dir cannot
// overwrite anything the user did not ask to replace: dir must not exist
// yet, or be an empty directory, or (force) one whose entries named in
// replace the command will replace (removeOutputs, once its results are
// ready). Run it before any work starts; outputs are then created with
// device.CreateFile, which refuses symbolic links.
func checkOutDir(flag, dir string, force bool, replace []string) error {
	fi, err := os.Stat(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return usageErrorf("%s: %v", flag, err)
	}
	if !fi.IsDir() {
		return usageErrorf("%s %s: not a directory", flag, dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return usageErrorf("%s: %v", flag, err)
	}
	if len(ents) == 0 || force {
		return nil
	}
	names := make([]string, 0, min(len(ents), 4))
	for _, e := range ents[:min(len(ents), 4)] {
		names = append(names, e.Name())
	}
	more := ""
	if len(ents) > len(names) {
		more = fmt.Sprintf(", … (%d entries)", len(ents))
	}
	return usageErrorf("%s %s is not empty (%s%s): choose a new directory, or add --force to replace %s in it",
		flag, dir, strings.Join(names, ", "), more, strings.Join(replace, ", "))
}

// removeOutputs removes the entries of dir named in names, if present:
// os.RemoveAll removes a symbolic link, never what it points to, so the
// files written next are all new. Other files in dir are left alone.
func removeOutputs(dir string, names []string) error {
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("replacing %s: %w", filepath.Join(dir, n), err)
		}
	}
	return nil
}
