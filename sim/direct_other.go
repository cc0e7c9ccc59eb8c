//go:build !linux

package sim

import "os"

// directAlign is the alignment direct I/O would need; see setDirect.
const directAlign = 4096

// setDirect reports false: direct I/O is used on Linux only.
func setDirect(f *os.File, on bool) bool { return false }
