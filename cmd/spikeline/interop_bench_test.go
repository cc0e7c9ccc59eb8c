package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/sim"
)

// The Intan RHX path measured (issue 17, docs/intan.md): the simulator
// behind the RHX emulator on loopback, read by 'spikeline run --device
// rhx:'. `make rhx-latency` and `make rhx-soak` run these.

// startRHXSim serves the simulator (channels at 30 kHz, seed 1) behind
// the RHX emulator, paced at real time, and returns its command address
// and the emulator.
func startRHXSim(tb testing.TB, ctx context.Context, channels int) (string, *sim.RHXEmulator, <-chan error) {
	tb.Helper()
	s, err := sim.New(sim.Config{Channels: channels, Rate: 30000, Seed: 1})
	if err != nil {
		tb.Fatal(err)
	}
	em, err := sim.NewRHX(ctx, s, sim.RHXConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	cmd, wave, err := listenRHX("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- em.Serve(ctx, cmd, wave) }()
	return cmd.Addr().String(), em, done
}

// BenchmarkRHXLatency measures, as BenchmarkRunLatency does, the time
// from the arrival of an RHX data block (the source stamps Received when
// it has read and parsed it) to the arrival at a NATS subscriber of the
// spike batch it completed, at 64 and 512 channels of 30 kHz and
// TCPNumberDataBlocksPerWrite 1 and 10 (4.3 and 42.7 ms of samples per
// write). A batch's latency counts from the arrival of the write that
// completed it, so with 10 blocks per write the first blocks of a write
// wait for the whole write inside RHX: block-ms is the write's duration.
func BenchmarkRHXLatency(b *testing.B) {
	for _, ch := range []int{64, 512} {
		for _, bpw := range []int{1, 10} {
			b.Run(fmt.Sprintf("%dch-bpw%d", ch, bpw), func(b *testing.B) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				addr, _, done := startRHXSim(b, ctx, ch)
				benchLatency(b, []string{"--device", "rhx:" + addr, "--rhx-blocks-per-write", strconv.Itoa(bpw)}, ch, 128*bpw)
				cancel()
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					b.Error(err)
				}
			})
		}
	}
}

// TestRHXSoak runs 'spikeline run --device rhx:' on the simulator behind
// the RHX emulator, paced at real time, for $SPIKELINE_RHX_SOAK (a Go
// duration, e.g. 10m; skipped without it) at each channel count of
// $SPIKELINE_RHX_CHANNELS (default 64,512), and fails on any sample lost
// (link gaps), any data block the emulator could not send, the emulator
// falling a second behind the device clock (RHX's FIFO would overflow:
// the pipeline did not keep up), or messages dropped on the way to NATS.
func TestRHXSoak(t *testing.T) {
	env := os.Getenv("SPIKELINE_RHX_SOAK")
	if env == "" {
		t.Skip("set SPIKELINE_RHX_SOAK=10m (any Go duration) to run the RHX soak; make rhx-soak does")
	}
	dur, err := time.ParseDuration(env)
	if err != nil || dur < 10*time.Second {
		t.Fatalf("SPIKELINE_RHX_SOAK=%q: want a Go duration of at least 10s", env)
	}
	counts := os.Getenv("SPIKELINE_RHX_CHANNELS")
	if counts == "" {
		counts = "64,512"
	}
	for _, c := range strings.Split(counts, ",") {
		ch, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || ch < 1 {
			t.Fatalf("SPIKELINE_RHX_CHANNELS=%q", counts)
		}
		t.Run(fmt.Sprintf("%dch", ch), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
			defer cancel()
			addr, em, done := startRHXSim(t, ctx, ch)
			load0, _ := os.ReadFile("/proc/loadavg")
			start := time.Now()
			out := mustRun(t, "run", "--device", "rhx:"+addr, "--duration", dur.String(), "--http", "off", "--nats-port", "-1", "--rig", "rhxsoak")
			wall := time.Since(start)
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				t.Error(err)
			}
			load1, _ := os.ReadFile("/proc/loadavg")
			st := em.Stats()
			t.Logf("%d channels, %v of device time in %v of wall time; emulator: %d blocks sent, %d discarded, %d writes, latest write %v after its samples; load %s → %s\n%s",
				ch, dur, wall.Round(time.Millisecond), st.BlocksSent, st.BlocksDropped, st.Writes, st.MaxLate.Round(time.Microsecond),
				strings.Fields(string(load0))[0], strings.Fields(string(load1))[0], out)
			if !strings.Contains(out, " 0 gaps (0 samples lost)") || !strings.Contains(out, "0 dropped, 0 refused") {
				t.Errorf("samples or messages lost:\n%s", out)
			}
			if st.BlocksDropped > 0 || st.MaxLate > time.Second {
				t.Errorf("the emulator discarded %d data blocks and fell %v behind the device clock", st.BlocksDropped, st.MaxLate)
			}
		})
	}
}
