package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// The latency benchmark and the soak (issue 6) run `spikeline run` on the
// in-process simulator paced at real time, as the live pipeline runs, and
// watch it from a NATS client. `make latency` and `make soak` run them;
// docs/performance.md has the results.

// latencyWarmup is the device time before latencies count: templates
// are learned from the first --learn 2 s and installed a few seconds later
// (the learning pass runs beside the stream).
const latencyWarmup = 10

// BenchmarkRunLatency measures, at 256 and 1,024 channels of 30 kHz, the
// time from a device block's arrival (device.Block.Received) to the
// arrival at a NATS subscriber of the spike batch that block completed.
//
// The pipeline runs as live, with templates learned after --learn 2 s;
// latencies count from latencyWarmup seconds of device time on, when the
// sorter matches templates, and each op is one second of device time of
// that window (use -benchtime=Nx). The decoder calibrates throughout
// (--calibrate 600, the most it takes) but is not fitted: the live Wiener
// fit is a one-off background job of seconds to minutes of CPU (units ×
// lags, and the machine's load; the soak covers it), and the benchmark
// measures the steady state, not that job. Reported: p50, p99 and max of the latency
// (ms), the block duration (ms), the sorter's lag (ms: how long after a
// spike its batch can close, a property of the algorithm, not of the
// host), the batches measured, and the 1-minute load average at the end.
//
// Two devices:
//
//   - NNNch: the in-process simulator (--device sim) paced at real time.
//     The simulator stamps a block's Received when it generates it, just
//     before the pacer holds it until its last sample is due, so this
//     latency includes up to one block duration of pacing wait.
//   - pty-256ch: the simulator behind a pseudo-terminal (--device
//     sim:pty), read through the serial source, which stamps Received when
//     the frame has been read and decoded: the host-side latency of a real
//     headstage, the pty's transfer included. Not at 1,024 channels: 61 MB/s
//     through a pty in 4 KiB writes costs the emulator and the reader about
//     1.6 CPU-seconds per second here, most of this 2-core machine.
func BenchmarkRunLatency(b *testing.B) {
	for _, ch := range []int{256, 1024} {
		b.Run(fmt.Sprintf("%dch", ch), func(b *testing.B) { benchRunLatency(b, "sim", ch, 30) })
	}
	b.Run("pty-256ch", func(b *testing.B) { benchRunLatency(b, "sim:pty", 256, 32) })
}

// benchRunLatency runs BenchmarkRunLatency on one device whose blocks
// have blockSamples samples per channel.
func benchRunLatency(b *testing.B, dev string, channels, blockSamples int) {
	benchLatency(b, []string{"--device", dev, "--channels", fmt.Sprint(channels), "--rate", "30000", "--seed", "1", "--pace", "1"}, channels, blockSamples)
}

// benchLatency measures the latency of a pipeline run with the device
// flags dev (30 kHz, channels channels, blocks of blockSamples).
func benchLatency(b *testing.B, dev []string, channels, blockSamples int) {
	const rate = 30000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The rig calls Config.OnBatch from its sorter loop right after
	// handing a batch to the publisher; the subscriber notes when the
	// batch arrives. They are paired by the batch's end sample.
	var (
		mu       sync.Mutex
		handed   = map[uint64]time.Time{} // batch end -> its block's arrival
		arrived  = map[uint64]time.Time{} // batch end -> its arrival on NATS
		holes    int
		next     uint64
		from     = uint64(latencyWarmup * rate)
		to       = from + uint64(b.N)*rate
		doneMeas = make(chan struct{})
	)
	onBatch := func(c *rig.Config) {
		c.OnBatch = func(end uint64, received time.Time) {
			mu.Lock()
			handed[end] = received
			mu.Unlock()
		}
	}

	// No --duration: the run ends when the measured window has arrived.
	args := append(dev, "--http", "off", "--nats-port", "-1", "--rig", "bench", "--learn", "2", "--calibrate", "600")
	b.ResetTimer()
	rp := startRig(b, ctx, args, onBatch)
	cl, err := stream.Dial(ctx, stream.Config{URLs: []string{rp.url}, Name: "latency-bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var last schema.Status
	sub, err := cl.Subscribe("bench", stream.Handler{
		Spikes: func(_ string, m *schema.SpikeBatch) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			arrived[m.End] = now
			if next != 0 && m.First() != next {
				holes++
			}
			next = m.End
			if m.End >= to && doneMeas != nil {
				close(doneMeas)
				doneMeas = nil
			}
		},
		Status: func(_ string, m *schema.Status) {
			mu.Lock()
			last = *m
			mu.Unlock()
		},
	}, stream.SubscribeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	mu.Lock()
	measured := doneMeas
	mu.Unlock()
	select {
	case <-measured:
	case err := <-rp.exited:
		b.Fatalf("run ended before the measured window: %v\n%s\n%s", err, rp.stdout.String(), rp.stderr.String())
	case <-time.After(5 * time.Minute):
		b.Fatalf("the measured window did not arrive within 5 minutes\n%s\n%s", rp.stdout.String(), rp.stderr.String())
	}
	cancel()
	if err := <-rp.exited; err != nil {
		b.Fatalf("run: %v\n%s\n%s", err, rp.stdout.String(), rp.stderr.String())
	}
	b.StopTimer()
	sub.Stop()

	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	missing := 0
	for end, recv := range handed {
		if end < from || end >= to {
			continue
		}
		at, ok := arrived[end]
		if !ok {
			missing++
			continue
		}
		lat = append(lat, at.Sub(recv))
	}
	if len(lat) == 0 {
		b.Fatalf("no spike batch measured\n%s", rp.stdout.String())
	}
	// Batches the subscriber missed would bias the figures (and mean
	// messages were lost).
	if missing > 0 || holes > 0 || last.PublishDropped > 0 {
		b.Errorf("%d batches never arrived, %d holes, %d messages dropped by the publisher", missing, holes, last.PublishDropped)
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	s, err := sort.New(sort.Config{}, channels, rate, 0.195)
	if err != nil {
		b.Fatal(err)
	}
	lag := float64(s.Lag()) / rate * 1e3
	s.Close()
	b.ReportMetric(0, "ns/op") // an op is a second of device time, paced
	b.ReportMetric(ms(q(0.5)), "p50-ms")
	b.ReportMetric(ms(q(0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(1000*float64(blockSamples)/rate, "block-ms")
	b.ReportMetric(lag, "sorter-lag-ms")
	b.ReportMetric(float64(len(lat)), "batches")
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		var l1 float64
		fmt.Sscan(string(load), &l1)
		b.ReportMetric(l1, "load1")
	}
	b.Logf("measured [%.0f s, %.0f s) of device time:\n%s", float64(from)/rate, float64(to)/rate, rp.stdout.String())
}

// soakSample is one row of the soak's memory table.
type soakSample struct {
	wall       time.Duration // since the start
	device     float64       // device seconds sorted (last status)
	behind     time.Duration // wall time since start - device time
	heapLive   uint64        // bytes live after the last GC
	heapObj    uint64        // bytes in heap objects now
	total      uint64        // bytes mapped by the Go runtime
	goroutines int
	p99        time.Duration // block -> spikes handed over, last status window
	throughput float64       // samples/s per channel, last status window
}

// statusWindow is one status message's latency figures.
type statusWindow struct {
	device        float64 // device seconds at the end of the window
	p50, p99, max time.Duration
}

// latencyWindows describes the status windows' latency p99 against
// limit: how many exceed it, the worst, and those windows (issue 16's
// target is p99 ≤ 2 ms beyond the block in every window).
func latencyWindows(ws []statusWindow, limit time.Duration) string {
	var b strings.Builder
	over := 0
	var worst time.Duration
	p99 := make([]time.Duration, 0, len(ws))
	for _, w := range ws {
		p99 = append(p99, w.p99)
		worst = max(worst, w.p99)
		if w.p99 > limit {
			over++
			fmt.Fprintf(&b, "  window ending %7.1f s: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", w.device,
				float64(w.p50)/1e6, float64(w.p99)/1e6, float64(w.max)/1e6)
		}
	}
	slices.Sort(p99)
	var med time.Duration
	if len(p99) > 0 {
		med = p99[len(p99)/2]
	}
	return fmt.Sprintf("status windows: %d, %d with latency p99 > %v; p99 median %.2f ms, worst %.2f ms\n%s",
		len(ws), over, limit, float64(med)/1e6, float64(worst)/1e6, b.String())
}

var soakMetrics = []metrics.Sample{
	{Name: "/gc/heap/live:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/total:bytes"},
	{Name: "/sched/goroutines:goroutines"},
}

// TestRunSoak runs `spikeline run` on 1,024 simulated channels at 30 kHz
// ($SPIKELINE_SOAK_CHANNELS to change), paced at real time, for
// $SPIKELINE_SOAK (a Go duration, e.g. 10m; the test is skipped without
// it) with the live decoder on, and fails on
//
//   - a dropped or lost sample: a hole between spike batches, link
//     samples lost, messages the publisher dropped or NATS refused, or
//     the pipeline falling more than a second behind the device clock at
//     any status (a real headstage buffers about that much before its
//     FIFO overflows; the emulator's MaxLag is 1 s);
//   - a missing decoder bin once the decoder runs;
//   - memory growth: after warm-up (the first third of the run, at least
//     2 minutes: template learning, decoder calibration, the first
//     re-learning pass; or $SPIKELINE_SOAK_WARMUP), the mean live heap of
//     the last third of the 30-second samples exceeds the first third's by
//     more than 10 % and 4 MiB.
//
// It logs the table of the samples, and every status window whose
// latency p99 exceeds 2 ms (logged, not failed: on a shared machine that
// is as much the load as the pipeline). The decoder's calibrator keeps the
// last 600–750 s of spikes for refits (decode.CalibratorConfig.MaxSeconds),
// so at 1,024 channels the heap grows by design for the first 12.5
// minutes or so before it levels off: a 10-minute soak sees that growth
// (docs/performance.md); judge a longer one with SPIKELINE_SOAK_WARMUP=13m.
func TestRunSoak(t *testing.T) {
	env := os.Getenv("SPIKELINE_SOAK")
	if env == "" {
		t.Skip("set SPIKELINE_SOAK=10m (or any Go duration) to run the soak; make soak does")
	}
	dur, err := time.ParseDuration(env)
	if err != nil || dur < time.Minute {
		t.Fatalf("SPIKELINE_SOAK=%q: want a Go duration of at least 1m", env)
	}
	const rate = 30000
	channels := 1024
	if c := os.Getenv("SPIKELINE_SOAK_CHANNELS"); c != "" {
		if channels, err = strconv.Atoi(c); err != nil || channels < 1 {
			t.Fatalf("SPIKELINE_SOAK_CHANNELS=%q: want a channel count", c)
		}
	}
	every := 30 * time.Second
	if dur < 5*time.Minute {
		every = dur / 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	args := []string{"--device", "sim", "--channels", fmt.Sprint(channels), "--rate", fmt.Sprint(rate), "--seed", "1",
		"--pace", "1", "--http", "off", "--nats-port", "-1", "--rig", "soak",
		"--duration", dur.String(), "--status-every", "1s"}
	runtime.GC()
	rp := startPipeline(t, ctx, args)
	cl, err := stream.Dial(ctx, stream.Config{URLs: []string{rp.url}, Name: "soak"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	width := decode.BinSamples(decode.DefaultBinSeconds, rate)
	var (
		mu                sync.Mutex
		problems          []string
		batches, spikes   int
		next, first       uint64
		estimates, missed int
		lastEst           uint64
		last              schema.Status
		statuses          int
		windows           []statusWindow // every status window's latency
		maxBehind         time.Duration
		minBehind         = time.Duration(math.MaxInt64)
	)
	problem := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	sub, err := cl.Subscribe("soak", stream.Handler{
		Spikes: func(_ string, m *schema.SpikeBatch) {
			mu.Lock()
			defer mu.Unlock()
			if batches == 0 {
				first = m.First()
			} else if m.First() != next {
				problem("spike batch [%d, %d) after one ending at %d", m.First(), m.End, next)
			}
			next = m.End
			batches++
			spikes += len(m.Spikes)
		},
		Estimate: func(_ string, m *schema.EstimateMsg) {
			if m.Model == rig.BehaviourModel {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if estimates > 0 && m.Sample != lastEst+width {
				missed++
				problem("decoder estimate ends at %d after one ending at %d: want +%d", m.Sample, lastEst, width)
			}
			if m.Degraded() {
				problem("degraded decoder estimate at %d", m.Sample)
			}
			lastEst = m.Sample
			estimates++
		},
		Status: func(_ string, m *schema.Status) {
			mu.Lock()
			defer mu.Unlock()
			m.NoiseUV, m.RateHz = nil, nil
			last = *m
			statuses++
			windows = append(windows, statusWindow{device: float64(m.Sample) / rate, p50: m.LatencyP50, p99: m.LatencyP99, max: m.LatencyMax})
			behind := m.Uptime - time.Duration(float64(m.Sample)/rate*float64(time.Second))
			minBehind = min(minBehind, behind)
			maxBehind = max(maxBehind, behind)
			if behind-minBehind > time.Second {
				problem("at device time %.1f s the pipeline is %v behind the device clock (at best %v)", float64(m.Sample)/rate, behind.Round(time.Millisecond), minBehind.Round(time.Millisecond))
			}
			if l := m.Link; l.LostSamples != 0 || l.Gaps != 0 {
				problem("status at %d: link lost %d samples in %d gaps", m.Sample, l.LostSamples, l.Gaps)
			}
			if m.PublishDropped != 0 || m.PublishErrors != 0 {
				problem("status at %d: %d messages dropped by the publisher, %d refused by NATS", m.Sample, m.PublishDropped, m.PublishErrors)
			}
		},
		Error: func(subject string, err error) {
			mu.Lock()
			problem("undecodable message on %s: %v", subject, err)
			mu.Unlock()
		},
	}, stream.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var samples []soakSample
	take := func() {
		metrics.Read(soakMetrics)
		mu.Lock()
		st := last
		mu.Unlock()
		dev := float64(st.Sample) / rate
		samples = append(samples, soakSample{
			wall: time.Since(rp.started), device: dev,
			behind:     st.Uptime - time.Duration(dev*float64(time.Second)),
			heapLive:   soakMetrics[0].Value.Uint64(),
			heapObj:    soakMetrics[1].Value.Uint64(),
			total:      soakMetrics[2].Value.Uint64(),
			goroutines: int(soakMetrics[3].Value.Uint64()),
			p99:        st.LatencyP99, throughput: st.SampleRate,
		})
	}
	tick := time.NewTicker(every)
	var runErr error
wait:
	for {
		select {
		case <-tick.C:
			take()
		case runErr = <-rp.exited:
			break wait
		}
	}
	tick.Stop()
	wall := time.Since(rp.started)
	sub.Stop()
	if runErr != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", runErr, rp.stdout.String(), rp.stderr.String())
	}

	var tab strings.Builder
	fmt.Fprintf(&tab, "%8s %9s %8s %10s %10s %10s %5s %8s %10s\n", "wall_s", "device_s", "behind", "live_MiB", "heap_MiB", "total_MiB", "gor", "p99_ms", "samples/s")
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	for _, s := range samples {
		fmt.Fprintf(&tab, "%8.0f %9.1f %8s %10.1f %10.1f %10.1f %5d %8.2f %10.0f\n", s.wall.Seconds(), s.device,
			s.behind.Round(time.Millisecond), mib(s.heapLive), mib(s.heapObj), mib(s.total), s.goroutines,
			float64(s.p99)/1e6, s.throughput)
	}
	t.Logf("soak: %v of device time on %d channels at %d Hz in %v of wall time\n%s\n%s",
		dur, channels, rate, wall.Round(time.Millisecond), rp.stdout.String(), tab.String())

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d spike batches [%d, %d), %d spikes; %d decoder estimates, %d bins missed; %d status messages; behind the device clock: %v to %v",
		batches, first, next, spikes, estimates, missed, statuses, minBehind.Round(time.Millisecond), maxBehind.Round(time.Millisecond))
	t.Log(latencyWindows(windows, 2*time.Millisecond))
	total := uint64(dur.Seconds() * rate)
	if next != total || first > rate {
		t.Errorf("spike batches cover [%d, %d), want to end at %d (%v of device time) and start within the first second", first, next, total, dur)
	}
	if !strings.Contains(rp.stdout.String(), fmt.Sprintf("%.1f s of device time on %d channels", dur.Seconds(), channels)) ||
		!strings.Contains(rp.stdout.String(), " 0 dropped, 0 refused") {
		t.Errorf("summary: want %v of device time and no message dropped or refused:\n%s", dur, rp.stdout.String())
	}
	if estimates == 0 {
		t.Errorf("no decoder estimates in %v", dur)
	}
	if wall > dur+dur/20+15*time.Second {
		t.Errorf("%v of device time took %v of wall time: the pipeline did not keep up", dur, wall)
	}

	// Flat memory after warm-up.
	warm := max(2*time.Minute, dur/3)
	if w := os.Getenv("SPIKELINE_SOAK_WARMUP"); w != "" {
		if warm, err = time.ParseDuration(w); err != nil {
			t.Fatalf("SPIKELINE_SOAK_WARMUP=%q: %v", w, err)
		}
	}
	var steady []soakSample
	for _, s := range samples {
		if s.wall >= warm {
			steady = append(steady, s)
		}
	}
	if len(steady) < 3 {
		t.Fatalf("%d memory samples after the %v warm-up: too few to judge", len(steady), warm)
	}
	third := len(steady) / 3
	mean := func(ss []soakSample) float64 {
		var sum float64
		for _, s := range ss {
			sum += float64(s.heapLive)
		}
		return sum / float64(len(ss))
	}
	a, z := mean(steady[:third]), mean(steady[len(steady)-third:])
	growth := z - a
	t.Logf("live heap after the %v warm-up: first third %.1f MiB, last third %.1f MiB (%+.1f MiB, %+.1f %%)", warm, a/(1<<20), z/(1<<20), growth/(1<<20), 100*growth/a)
	if growth > 0.10*a && growth > 4<<20 {
		t.Errorf("memory grows: live heap %.1f MiB → %.1f MiB after warm-up, want within 10 %% or 4 MiB", a/(1<<20), z/(1<<20))
	}
}
