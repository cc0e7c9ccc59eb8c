package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/sort"
)

// crashCapture writes a wire-protocol capture of seconds of channels at
// rate, in frames of n samples, with a gap every few frames, and returns
// its path, the samples by device index and the gaps.
func crashCapture(t *testing.T, dir string, channels int, rate uint32, n int, seconds float64, seed uint64) (string, map[uint64][]int16, []device.MetaGap) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	var buf []byte
	want := map[uint64][]int16{}
	var gaps []device.MetaGap
	counter := uint64(1000)
	end := counter + uint64(seconds*float64(rate))
	for counter < end {
		if rng.IntN(40) == 0 {
			g := uint64(1 + rng.IntN(3000))
			gaps = append(gaps, device.MetaGap{Sample: counter, Count: g})
			counter += g
		}
		s := make([]int16, channels*n)
		for i := range s {
			s[i] = int16(rng.IntN(2000) - 1000)
		}
		buf = device.AppendData(buf, counter, rate, 0.195, channels, s, 0)
		for i := range n {
			want[counter+uint64(i)] = s[i*channels : (i+1)*channels]
		}
		counter += uint64(n)
	}
	path := filepath.Join(dir, "cap.spkw")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, want, gaps
}

// TestRecordCrash kills 'spikeline run --record' with SIGKILL at random
// moments (20 times; 5 with -short) while it records a capture with gaps,
// and checks that every recording replays, as it is and after 'spikeline
// recover': the samples synced are the device's, at most the last second
// written before the kill is missing, and the sidecar lists every gap of
// what it holds.
func TestRecordCrash(t *testing.T) {
	if os.Getenv("SPIKELINE_CHILD") != "" {
		os.Exit(realMain(strings.Split(os.Getenv("SPIKELINE_CHILD"), " "), os.Stdout, os.Stderr))
	}
	const (
		channels = 8
		rate     = 30000
		frame    = 128
	)
	runs := 20
	if testing.Short() {
		runs = 5
	}
	capture, want, gaps := crashCapture(t, t.TempDir(), channels, rate, frame, 60, 1)
	rng := rand.New(rand.NewPCG(20, 26))
	var worst uint64
	for run := range runs {
		rec := filepath.Join(t.TempDir(), "rec")
		cmd := exec.Command(os.Args[0], "-test.run=^TestRecordCrash$")
		cmd.Env = append(os.Environ(), "SPIKELINE_CHILD=run --device file:"+capture+" --pace 10 --record "+rec+" --http off --nats-port -1")
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; !strings.Contains(out.String(), "recording raw data"); i++ {
			if i > 1500 {
				cmd.Process.Kill()
				t.Fatalf("run %d: the child did not start:\n%s", run, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(100+rng.IntN(1100)) * time.Millisecond)
		cmd.Process.Kill() // SIGKILL: no clean shutdown
		cmd.Wait()

		fi, err := os.Stat(filepath.Join(rec, device.RecordingData))
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
		written := uint64(fi.Size()) / (2 * channels) // on disk at the kill
		m, err := device.ReadMeta(filepath.Join(rec, device.RecordingMeta))
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		// The device's samples (not gap zeros) written after the last sync
		// are what a replay misses: at most a second and a frame.
		var unsynced uint64
		for i := m.First + m.Synced; i < m.First+written; i++ {
			if _, ok := want[i]; ok {
				unsynced++
			}
		}
		if !m.InProgress || m.Synced > written || unsynced > rate+frame {
			t.Errorf("run %d: sidecar in_progress %v, synced %d of %d samples written: %d device samples unsynced, more than a second",
				run, m.InProgress, m.Synced, written, unsynced)
		}
		worst = max(worst, unsynced)
		check := func(stage string) {
			t.Helper()
			src, m, err := device.OpenRecording(rec, device.RawConfig{BlockSamples: 1000})
			if err != nil {
				t.Fatalf("run %d, %s: %v", run, stage, err)
			}
			defer src.Close()
			// Every gap of the capture within the recording, and no other.
			var wantGaps []device.MetaGap
			for _, g := range gaps {
				if g.Sample > m.First && g.Sample < m.First+src.Samples() {
					wantGaps = append(wantGaps, g)
				}
			}
			if !slices.Equal(m.Gaps, wantGaps) {
				t.Errorf("run %d, %s: gaps %v, want %v", run, stage, m.Gaps, wantGaps)
			}
			var got uint64
			for {
				b, err := src.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("run %d, %s: %v", run, stage, err)
				}
				for i := range b.Len() {
					w, ok := want[b.First+uint64(i)]
					if !ok || !slices.Equal(w, b.Samples[i*channels:(i+1)*channels]) {
						t.Fatalf("run %d, %s: sample %d differs from the device's", run, stage, b.First+uint64(i))
					}
				}
				got += uint64(b.Len())
			}
			var gapped uint64
			for _, g := range m.Gaps {
				gapped += g.Count
			}
			if got+gapped != src.Samples() {
				t.Errorf("run %d, %s: %d samples + %d in gaps, the file holds %d", run, stage, got, gapped, src.Samples())
			}
		}
		check("as left")
		var stdout, stderr bytes.Buffer
		if code := realMain([]string{"recover", rec}, &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: recover: exit %d: %s", run, code, stderr.String())
		}
		check("recovered")
		if m, err := device.ReadMeta(filepath.Join(rec, device.RecordingMeta)); err != nil || m.InProgress || m.Samples == 0 && written > rate+frame {
			t.Errorf("run %d: recovered sidecar %+v, %v", run, m, err)
		}
		f, err := os.Open(filepath.Join(rec, rig.SpikesFile))
		if err != nil {
			t.Fatal(err)
		}
		_, err = sort.ReadSpikesCSV(f, "spikes.csv")
		f.Close()
		if err != nil {
			t.Errorf("run %d: recovered spikes.csv: %v", run, err)
		}
	}
	t.Logf("%d SIGKILLs: at most %d device samples (%.2f s) written after the last sync were not replayed", runs, worst, float64(worst)/rate)
}
