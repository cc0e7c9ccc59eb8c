package sim

import (
	"os"
	"syscall"
)

// directAlign is the alignment of file offsets, lengths and memory that
// direct I/O needs: 4096 satisfies every Linux file system and block
// device (most need 512).
const directAlign = 4096

// setDirect turns direct I/O (O_DIRECT: from the caller's memory to the
// device, bypassing the page cache) on or off for f and reports whether
// the file is now in that mode. File systems without direct I/O refuse
// to turn it on.
func setDirect(f *os.File, on bool) bool {
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	sc.Control(func(fd uintptr) {
		fl, err := fcntl(fd, syscall.F_GETFL, 0)
		if err != nil {
			return
		}
		if on {
			fl |= syscall.O_DIRECT
		} else {
			fl &^= syscall.O_DIRECT
		}
		_, err = fcntl(fd, syscall.F_SETFL, fl)
		ok = err == nil
	})
	return ok
}

func fcntl(fd uintptr, cmd, arg int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, uintptr(cmd), uintptr(arg))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
