package background

import (
	"syscall"
	"testing"
)

// TestGoLowersThreadPriority checks that f runs on a thread of nice Nice
// and that the test's own thread keeps its priority.
func TestGoLowersThreadPriority(t *testing.T) {
	// getpriority(2) returns 20 - nice (the raw syscall, as Go's does).
	nice := func() int {
		p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		if err != nil {
			t.Fatalf("getpriority: %v", err)
		}
		return 20 - p
	}
	before := nice()
	got := make(chan int)
	Go(func() { got <- nice() })
	if n := <-got; n != max(before, Nice) {
		t.Errorf("background thread at nice %d, want %d", n, Nice)
	}
	idle.Wait()
	// This goroutine may have moved to another thread meanwhile, but never
	// to the background one (it exited with f): the others keep theirs.
	if n := nice(); n != before {
		t.Errorf("test thread at nice %d after, want %d", n, before)
	}
}
