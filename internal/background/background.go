// Package background runs the live pipeline's background work — template
// learning — so that it does not delay the hot path
// (device → sorter → publisher) that shares the machine's cores with it.
//
// [Go] runs a function on a goroutine of its own, locked to an OS thread
// whose scheduling priority is lowered (Linux: the SCHED_IDLE policy, and
// nice [Nice], for that thread alone), and gives the Go scheduler one
// more P while it runs. The
// hot path thus keeps as many Ps as it had, and when the cores are short
// the kernel runs the hot path's threads first: the background work gets
// what they leave, which on a machine the pipeline does not fill is most
// of a core, so it still finishes in bounded time.
//
// Without it (a plain go statement), a learning pass and a decoder fit
// running together hold both Ps of a 2-core machine for up to the Go
// scheduler's 10 ms time slice at a time, and the sorter waits for them
// (docs/performance.md, "Background work").
package background

import (
	"runtime"
	"sync"
)

// Nice is the scheduling priority background threads run at, on Linux
// (19 is the lowest; the hot path runs at the process's own, normally 0).
const Nice = 19

var (
	mu      sync.Mutex
	running int // background functions running
	base    int // GOMAXPROCS before the first of them started
	// idle is done when running drops to 0 and GOMAXPROCS is back to
	// base (tests wait for it).
	idle sync.WaitGroup
)

// Go runs f in the background: on a new goroutine locked to an OS thread
// of low priority, with GOMAXPROCS raised by one while f runs. The thread
// exits with f (it is never handed back to other goroutines). Goroutines
// f starts run at the normal priority.
//
// Calling runtime.GOMAXPROCS turns off the runtime's own updates of it
// (Go 1.25's container-aware default): the value in force when the first
// background function starts is put back when the last one ends.
func Go(f func()) {
	mu.Lock()
	if running == 0 {
		base = runtime.GOMAXPROCS(0)
		idle.Add(1)
	}
	running++
	runtime.GOMAXPROCS(base + running)
	mu.Unlock()
	go func() {
		// Never unlocked: when f returns the goroutine exits and takes the
		// low-priority thread with it.
		runtime.LockOSThread()
		lowerPriority()
		defer func() {
			mu.Lock()
			running--
			runtime.GOMAXPROCS(base + running)
			if running == 0 {
				idle.Done()
			}
			mu.Unlock()
		}()
		f()
	}()
}
