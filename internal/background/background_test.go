package background

import (
	"runtime"
	"testing"
)

// TestGo checks that f runs, with one more P per background function
// running, and that GOMAXPROCS is back where it was once they end.
func TestGo(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	started := make(chan int)
	release := make(chan struct{})
	for range 2 {
		Go(func() {
			started <- runtime.GOMAXPROCS(0)
			<-release
		})
	}
	a, b := <-started, <-started
	if a != base+2 || b != base+2 {
		t.Errorf("GOMAXPROCS %d and %d while two background functions run, want %d", a, b, base+2)
	}
	close(release)
	idle.Wait()
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Errorf("GOMAXPROCS %d after the background functions ended, want %d", got, base)
	}
	// And again from idle: the bookkeeping starts over.
	done := make(chan int)
	Go(func() { done <- runtime.GOMAXPROCS(0) })
	if got := <-done; got != base+1 {
		t.Errorf("GOMAXPROCS %d while one background function runs, want %d", got, base+1)
	}
	idle.Wait()
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Errorf("GOMAXPROCS %d at the end, want %d", got, base)
	}
}
