//go:build linux

package sim_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spikeline/spikeline/sim"
)

// TestEmulatorPTYUnplugBlocked unplugs, on demand, a device whose host is
// not reading (its writes block on a full pseudo-terminal): the link must
// go at once and come back after the unplug time.
func TestEmulatorPTYUnplugBlocked(t *testing.T) {
	link := filepath.Join(t.TempDir(), "headstage")
	em := sim.NewEmulator(&sim.TestPattern{Channels: 64, Rate: 30000}, sim.EmulatorConfig{FrameSamples: 30})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 4)
	done := make(chan error, 1)
	go func() {
		done <- em.ServePTY(ctx, link, func(tty string) { ready <- tty })
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("ServePTY: %v", err)
		}
		if _, err := os.Lstat(link); err == nil {
			t.Error("the link outlived ServePTY")
		}
	}()
	<-ready
	time.Sleep(200 * time.Millisecond) // nobody reads: the pty fills up
	sent := em.Stats().FramesSent
	em.Unplug(300 * time.Millisecond)
	gone := false
	for start := time.Now(); time.Since(start) < 2*time.Second; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Lstat(link); err != nil {
			gone = true
			break
		}
	}
	if !gone {
		t.Fatalf("the link is still there after an unplug (%d frames sent before)", sent)
	}
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("the device did not come back")
	}
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("after the replug: %v", err)
	}
	if st := em.Stats(); st.Unplugs != 1 || st.SamplesIdle == 0 {
		t.Fatalf("stats %+v", st)
	}
}
