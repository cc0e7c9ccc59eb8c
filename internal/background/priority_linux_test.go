package background

import (
	"syscall"
	"testing"
)

// TestGoLowersThreadPriority checks that f runs on a thread of nice Nice
// in SCHED_IDLE and that the test's own thread keeps its priority.
func TestGoLowersThreadPriority(t *testing.T) {
	// getpriority(2) returns 20 - nice (the raw syscall, as Go's does).
	nice := func() int {
		p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		if err != nil {
			t.Fatalf("getpriority: %v", err)
		}
		return 20 - p
	}
	policy := func() int {
		p, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETSCHEDULER, uintptr(syscall.Gettid()), 0, 0)
		if errno != 0 {
			t.Fatalf("sched_getscheduler: %v", errno)
		}
		return int(p)
	}
	before, beforePolicy := nice(), policy()
	got := make(chan [2]int)
	Go(func() { got <- [2]int{nice(), policy()} })
	if g := <-got; g[0] != max(before, Nice) || g[1] != schedIdle {
		t.Errorf("background thread at nice %d, policy %d; want %d, SCHED_IDLE (%d)", g[0], g[1], Nice, schedIdle)
	}
	idle.Wait()
	// This goroutine may have moved to another thread meanwhile, but never
	// to the background one (it exited with f): the others keep theirs.
	// (Compared with before, not with SCHED_OTHER: the tests may run
	// under another policy, e.g. chrt --idle.)
	if n, p := nice(), policy(); n != before || p != beforePolicy {
		t.Errorf("test thread at nice %d, policy %d after; want %d, policy %d as before", n, p, before, beforePolicy)
	}
}
