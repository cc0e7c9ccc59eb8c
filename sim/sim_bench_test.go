package sim

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGenerate times the full generator (noise, hum, LFP, mains,
// artifacts, drift, tuned spiking with bursts, ground truth drained) at
// 30 kHz, one internal chunk per Next. x_realtime is seconds of signal per
// second of wall time (target >= 20 for 1,024 channels on 2 cores).
// Because the machine is shared, it also reports samples/cpu_s and its
// inverse cpu_ns/sample (CPU time of all goroutines per channel-sample)
// and x_realtime_2cpu, the real-time
// factor two otherwise idle cores would give at that CPU cost.
func BenchmarkGenerate(b *testing.B) {
	for _, channels := range []int{32, 1024} {
		b.Run(itoa(channels)+"ch", func(b *testing.B) {
			s, err := New(Config{Channels: channels, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			s.cfg.BlockSamples = s.n
			ctx := context.Background()
			var samples uint64
			var spikes []sortSpike
			var beh []BehaviourSample
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				blk, err := s.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				samples += uint64(blk.Len())
				spikes = s.TakeSpikes(spikes[:0])
				beh = s.TakeBehaviour(beh[:0])
			}
			cpu := (cpuTime() - cpu0).Seconds()
			sec := b.Elapsed().Seconds()
			total := float64(samples) * float64(channels)
			b.ReportMetric(total/cpu, "samples/cpu_s")
			b.ReportMetric(total/sec, "samples/s")
			b.ReportMetric(float64(samples)/s.Rate()/sec, "x_realtime")
			b.ReportMetric(cpu/total*1e9, "cpu_ns/sample")
			b.ReportMetric(float64(samples)/s.Rate()/(cpu/2), "x_realtime_2cpu")
		})
	}
}

// BenchmarkMix times the hot loop alone for one channel-chunk.
func BenchmarkMix(b *testing.B) {
	const n = 1050
	dst := make([]int16, n)
	a, bb := make([]int16, n), make([]int16, n)
	slow := make([]int32, n)
	for b.Loop() {
		mix(dst, a, bb, slow, 8)
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkMix4 times the fused four-channel mix over one chunk of 1,024
// channels (the hot loop alone, one goroutine), as work runs it: with the
// assembly kernel where there is one, eight samples of all the channels
// at a time.
func BenchmarkMix4(b *testing.B) {
	s, err := New(Config{Channels: 1024, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	s.generate()
	n, C := s.n, 1024
	var quad [4]mixInput
	var quads []kernelQuad
	for b.Loop() {
		quads = quads[:0]
		for cb := 0; cb < C; cb += 4 {
			for k := range quad {
				st := &s.chans[cb+k]
				quad[k] = mixInput{a: st.a[st.oa : st.oa+n], b: st.b[st.ob : st.ob+n], slow: s.slow[st.group*n : (st.group+1)*n], dc: st.dc}
			}
			if haveMix4x8 {
				quads = append(quads, newKernelQuad(cb, &quad))
			} else {
				mix4(s.out, C, cb, &quad, false)
			}
		}
		mixBlocks(s.out, C, n, quads, s.tail[0])
	}
	b.ReportMetric(float64(b.N)*float64(n*C)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(b.Elapsed().Seconds()*1e9/(float64(b.N)*float64(n*C)), "ns/sample")
}
