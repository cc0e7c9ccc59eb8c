package shard

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spikeline/spikeline/sort"
)

// The scale-out benchmarks (docs/scale-out.md): 256 channels of a
// simulated recording (12 s: learning passes at 2.3 s and 6.3 s, template
// matching between and after; benchSort), sorted by one sorter in this
// process on every core (the single-process reference) and remotely by 1
// to 4 shard processes over a real 3-node nats-server cluster of separate
// processes (the rig on node 0, shards alternately on nodes 1 and 2).
// Throughput is closed-loop: the rig sends as fast as the merged stream
// follows, at most benchWindow of device time ahead of it. Reported:
// x_realtime (device seconds sorted per wall second), the CPU time per
// channel-sample of the shard processes, the nats-servers and the rig
// (or, local, of the one process), the raw payload per second of 1,024
// channels at 30 kHz, the time shards spend in Process per channel-sample
// (wall), and the end-to-end latency p50/p99 (block received → its spikes
// merged; at saturation here, at real time in BenchmarkScaleOutLatency).
//
//	go test -run '^$' -bench 'ScaleOut$' -benchtime 3x ./shard/

const benchChannels, benchSeconds, benchGroup = 256, 12, 32

// benchSort is the sorter configuration of the benchmarks: templates
// learned from the first 2 s, learned again 4 s later (as a session
// starts), template matching the rest of the time. Learning runs inside
// Process (Deterministic), so local and remote sorting do the same work
// and give the same spikes: in real-time mode the whole stream's sorter,
// learning beside Process, would not finish its first pass within a run
// many times faster than real time and would sort nothing.
var benchSort = sort.Config{LearnSeconds: 2, Deterministic: true}

// benchWindow is how far, in device seconds, the rig may send ahead of
// the merged stream in the throughput benchmark.
const benchWindow = 2.0

func BenchmarkScaleOut(b *testing.B) {
	blocks := recording(b, benchChannels, benchSeconds, 3)
	secs := float64(blocks[len(blocks)-1].End()-blocks[0].First) / blocks[0].Rate
	b.Run("local", func(b *testing.B) {
		var spikes []sort.Spike
		cpu0 := selfCPU()
		for range b.N {
			s, err := sort.New(benchSort, benchChannels, blocks[0].Rate, blocks[0].Gain)
			if err != nil {
				b.Fatal(err)
			}
			for _, bl := range blocks {
				if spikes, err = s.Process(bl, spikes[:0]); err != nil {
					b.Fatal(err)
				}
			}
			// The shards flush too (which learns from what was collected).
			spikes = s.Flush(spikes[:0])
			s.Close()
		}
		b.ReportMetric(secs*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
		b.ReportMetric(float64(selfCPU()-cpu0)/(secs*blocks[0].Rate*benchChannels*float64(b.N)), "cpu_ns/ch-sample")
		b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "cores")
	})
	cl := startCluster(b, 3)
	for n := 1; n <= 4; n++ {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			rig := fmt.Sprintf("bench%d", n)
			var pids []int
			for i := range n {
				p := startShard(b, fmt.Sprintf("s%d", i), rig, cl.from(1+i%2))
				pids = append(pids, p.cmd.Process.Pid)
			}
			var natsPIDs []int
			for _, p := range cl.procs {
				natsPIDs = append(natsPIDs, p.Process.Pid)
			}
			nc := rigConn(cl, 0)
			waitShards(b, nc, rig, n)
			var st Stats
			var lat []time.Duration
			b.ResetTimer()
			shard0, nats0, self0 := procsCPU(b, pids), procsCPU(b, natsPIDs), selfCPU()
			for range b.N {
				c := &collector{}
				r, err := Start(context.Background(), Options{Conn: nc, Rig: rig, GroupChannels: benchGroup, MinShards: n, Sort: benchSort,
					Deadline: time.Minute, StallTimeout: time.Minute}, &blocks[0])
				if err != nil {
					b.Fatal(err)
				}
				collect(r, blocks[0].First, c)
				send(b, r, c, blocks, 0, uint64(benchWindow*blocks[0].Rate))
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if err := r.Close(ctx); err != nil {
					b.Fatal(err)
				}
				cancel()
				<-c.done
				st = r.Stats()
				if st.Lost != 0 || st.Failures != 0 {
					b.Fatalf("lost %d, failures %d", st.Lost, st.Failures)
				}
				lat = append(lat, c.lat...)
			}
			b.StopTimer()
			chSamples := secs * blocks[0].Rate * benchChannels * float64(b.N)
			b.ReportMetric(float64(procsCPU(b, pids)-shard0)/chSamples, "shards_cpu_ns/ch-sample")
			b.ReportMetric(float64(procsCPU(b, natsPIDs)-nats0)/chSamples, "nats_cpu_ns/ch-sample")
			b.ReportMetric(float64(selfCPU()-self0)/chSamples, "rig_cpu_ns/ch-sample")
			reportRemote(b, st, secs)
			p50, p99 := percentiles(lat)
			b.ReportMetric(p50, "p50_ms")
			b.ReportMetric(p99, "p99_ms")
			b.ReportMetric(secs*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
		})
	}
}

// BenchmarkScaleOutLatency: the end-to-end latency of remote sorting at
// real time (the rig paced by the device clock), 2 shard processes on the
// 3-node cluster, 256 channels for 12 s per iteration; p50/p99 from block
// received to its spikes merged (after the first second, the shards'
// start), and the raw hop (rig publishes → shard
// receives) the shards measure.
//
//	go test -run '^$' -bench ScaleOutLatency -benchtime 1x ./shard/
func BenchmarkScaleOutLatency(b *testing.B) {
	blocks := recording(b, benchChannels, benchSeconds, 4)
	secs := float64(blocks[len(blocks)-1].End()-blocks[0].First) / blocks[0].Rate
	cl := startCluster(b, 3)
	const rig = "latency"
	// As a live rig sorts: learning beside Process.
	realTime := benchSort
	realTime.Deterministic = false
	startShard(b, "s0", rig, cl.from(1))
	startShard(b, "s1", rig, cl.from(2))
	nc := rigConn(cl, 0)
	waitShards(b, nc, rig, 2)
	var lat []time.Duration
	var st Stats
	b.ResetTimer()
	for range b.N {
		c := &collector{}
		r, err := Start(context.Background(), Options{Conn: nc, Rig: rig, GroupChannels: benchGroup, MinShards: 2, Sort: realTime}, &blocks[0])
		if err != nil {
			b.Fatal(err)
		}
		collect(r, blocks[0].First, c)
		send(b, r, c, blocks, 1, 0)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := r.Close(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		<-c.done
		st = r.Stats()
		// The first second is the shards' start (noise estimate).
		lat = append(lat, c.lat[min(len(c.lat), 100):]...)
	}
	b.StopTimer()
	reportRemote(b, st, secs)
	p50, p99 := percentiles(lat)
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
	b.ReportMetric(float64(st.HopP50.Microseconds()), "hop_p50_us")
	b.ReportMetric(float64(st.HopP99.Microseconds()), "hop_p99_us")
	b.ReportMetric(float64(st.Lost), "lost")
}

// reportRemote reports the wire bytes per 1,024 channels and the shards'
// cost from a run's Stats.
func reportRemote(b *testing.B, st Stats, secs float64) {
	b.ReportMetric(float64(st.RawBytes)/secs/benchChannels*1024/1e6, "MB/s_per_1024ch")
	if st.ShardWork > 0 {
		// ShardWork counts samples per channel of each group.
		b.ReportMetric(float64(st.ShardBusy)/float64(st.ShardWork*benchGroup), "shard_ns/ch-sample")
	}
}

// percentiles returns the p50 and p99 of d in milliseconds.
func percentiles(d []time.Duration) (p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))]) / 1e6 }
	return at(0.5), at(0.99)
}

// selfCPU returns the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procsCPU returns the CPU time (user + system) processes pids have used,
// from /proc/<pid>/stat (Linux; clock ticks of 10 ms).
func procsCPU(b *testing.B, pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			b.Skipf("process CPU times: %v", err)
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return total
}
