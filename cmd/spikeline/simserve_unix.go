//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spikeline/spikeline/sim"
)

// faultSignals makes SIGUSR1 unplug and SIGUSR2 reset the emulated
// device until the returned function is called.
func faultSignals(em *sim.Emulator) (stop func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				if s == syscall.SIGUSR1 {
					em.Unplug(0)
				} else {
					em.Reset()
				}
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
