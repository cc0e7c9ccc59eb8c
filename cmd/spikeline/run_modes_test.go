package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
)

// TestRunModes runs the pipeline on the simulated headstage commanded
// into each mode of protocol version 2: the host calibrates the device's
// thresholds on raw samples, then in spike mode sorts the events from
// their snippets and decodes the units; in feature mode it publishes no
// spikes and decodes the features. Spike batches tile the device clock
// in both; the decoder publishes estimates in both.
func TestRunModes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline for a minute of device time")
	}
	for _, mode := range []string{"spikes", "features"} {
		t.Run(mode, func(t *testing.T) {
			srv := streamtest.RunServer(t, nil)
			cl := stream.NewClient(streamtest.Connect(t, srv))
			var (
				mu                 sync.Mutex
				next               uint64
				batches, n, sorted int
				estimates          int
				bad                []string
			)
			_, err := cl.Subscribe("modes", stream.Handler{
				Spikes: func(_ string, m *schema.SpikeBatch) {
					mu.Lock()
					defer mu.Unlock()
					if batches > 0 && m.First() != next && len(bad) < 5 {
						bad = append(bad, "batch starts at "+itoa(m.First())+", want "+itoa(next))
					}
					batches++
					next = m.End
					for _, s := range m.Spikes {
						n++
						if s.Unit != 0 {
							sorted++
						}
					}
				},
				Estimate: func(name string, m *schema.EstimateMsg) {
					mu.Lock()
					defer mu.Unlock()
					if name != rig.BehaviourModel {
						estimates++
					}
				},
			}, stream.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := realMain([]string{"run", "--nats", streamtest.URL(srv), "--rig", "modes", "--http", "off",
				"--channels", "8", "--units", "1-3", "--seed", "7", "--pace", "30", "--duration", "60s",
				"--mode", mode, "--mode-calibrate", "3s", "--learn", "5", "--calibrate", "20", "--status-every", "100ms"}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			time.Sleep(300 * time.Millisecond) // let the subscriber drain
			mu.Lock()
			defer mu.Unlock()
			for _, b := range bad {
				t.Error(b)
			}
			t.Logf("%s: %d batches, %d spikes (%d sorted), %d estimates\n%s", mode, batches, n, sorted, estimates, stdout.String())
			if batches < 100 || estimates < 100 {
				t.Errorf("%d spike batches, %d estimates", batches, estimates)
			}
			switch mode {
			case "spikes":
				if n < 1000 || sorted < n/2 {
					t.Errorf("%d spikes, %d sorted", n, sorted)
				}
				if !strings.Contains(stderr.String(), "sorting from their snippets") {
					t.Errorf("the log does not say the events are sorted from snippets:\n%s", stderr.String())
				}
			case "features":
				if n != 0 {
					t.Errorf("%d spikes published in feature mode", n)
				}
			}
		})
	}
}
