//go:build !unix

package main

import "github.com/spikeline/spikeline/sim"

// faultSignals does nothing where SIGUSR1/SIGUSR2 do not exist.
func faultSignals(em *sim.Emulator) (stop func()) { return func() {} }
