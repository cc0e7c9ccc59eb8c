package sort

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
	"github.com/spikeline/spikeline/probe"
)

// benchData is a recording of many channels tiled from a small synthetic
// one (each copy shifted in time so channels are not identical), with
// templates learned on it.
type benchData struct {
	channels int
	rate     float64
	gain     float64
	samples  []int16 // time-major
	warm     []Template
}

var (
	benchMu    sync.Mutex
	benchCache = map[int]*benchData{}
)

func getBenchData(b *testing.B, channels int) *benchData {
	benchMu.Lock()
	defer benchMu.Unlock()
	if d := benchCache[channels]; d != nil {
		return d
	}
	const base = 16
	src := newSynth(synthConfig{channels: base, seconds: 12, unitsPerChan: []int{1, 2, 3, 2},
		noiseUV: 10, ampMin: 70, ampMax: 180, lfp: 300, hum: 40, dc: 2000, seed: 99})
	n := min(len(src.samples)/base, int(2*src.rate))
	d := &benchData{channels: channels, rate: src.rate, gain: src.gain, samples: make([]int16, n*channels)}
	for c := range channels {
		sc := c % base
		shift := (c / base) * 7919 % n
		for t := range n {
			d.samples[t*channels+c] = src.samples[((t+shift)%n)*base+sc]
		}
	}
	// Learn templates on the small recording and tile them.
	_, so := runSorter(b, src, Config{Deterministic: true, LearnSeconds: 8}, 3000)
	ts := so.Templates()
	id := int32(1)
	for c := range channels {
		for _, t := range ts {
			if int(t.Channel) == c%base {
				t.Channel = int32(c)
				t.Unit = id
				id++
				d.warm = append(d.warm, t)
			}
		}
	}
	benchCache[channels] = d
	return d
}

// cpuTime returns the CPU time (user + system) used by this process so
// far. Samples per CPU-second does not depend on what else the shared
// machine runs; samples per wall second does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// blocks returns the recording as blocks of n samples (at most 2 s).
func (d *benchData) blocks(n int) []device.Block {
	var out []device.Block
	total := len(d.samples) / d.channels
	total = min(total, int(2*d.rate))
	for off := 0; off+n <= total; off += n {
		out = append(out, device.Block{First: uint64(off), Rate: d.rate, Channels: d.channels, Gain: d.gain,
			Samples: d.samples[off*d.channels : (off+n)*d.channels]})
	}
	return out
}

// warmSorter returns a sorter seeded with learned templates that has
// already run over the recording once (noise known, buffers grown), with
// re-learning off.
func warmSorter(b *testing.B, d *benchData, cfg Config, block int) (*Sorter, []device.Block) {
	cfg.Templates = d.warm
	cfg.Deterministic = true
	// The hot path only: re-learning passes (every 2·LearnSeconds … 120 s
	// of stream) allocate their working memory and would show up here
	// as allocations amortised over blocks.
	cfg.RelearnEvery = -1
	so, err := New(cfg, d.channels, d.rate, d.gain)
	if err != nil {
		b.Fatal(err)
	}
	blocks := d.blocks(block)
	var out []Spike
	for _, blk := range blocks {
		out, _ = so.Process(blk, out[:0])
	}
	return so, blocks
}

var benchChannels = []int{384, 1024}

// BenchmarkSorter times the whole sorter (filter, noise, detection,
// alignment, matching, template subtraction and tracking) with templates
// learned, over 10 ms blocks on all cores.
func BenchmarkSorter(b *testing.B) {
	for _, ch := range benchChannels {
		for _, ref := range []Reference{RefNone, RefMedian} {
			b.Run(fmt.Sprintf("ch=%d/ref=%v", ch, ref), func(b *testing.B) {
				d := getBenchData(b, ch)
				so, blocks := warmSorter(b, d, Config{Reference: ref}, 300)
				defer so.Close()
				first := blocks[len(blocks)-1].End()
				out := make([]Spike, 0, 4096)
				var samples, spikes int
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				for i := 0; i < b.N; i++ {
					blk := blocks[i%len(blocks)]
					blk.First = first
					first = blk.End()
					var err error
					out, err = so.Process(blk, out[:0])
					if err != nil {
						b.Fatal(err)
					}
					samples += len(blk.Samples)
					spikes += len(out)
				}
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
				b.ReportMetric(float64(samples)/cpu.Seconds(), "samples/cpu-s")
				b.ReportMetric(float64(spikes)/float64(b.N), "spikes/op")
			})
		}
	}
}

// BenchmarkFilter times the band-pass filter alone (int16 in, float32
// out, 3 biquads) on one core.
func BenchmarkFilter(b *testing.B) {
	for _, ch := range benchChannels {
		b.Run(fmt.Sprintf("ch=%d", ch), func(b *testing.B) {
			d := getBenchData(b, ch)
			secs, _ := dsp.Butterworth(3, 300, 6000, d.rate)
			f := NewFilter(secs, ch)
			rows := 300
			in := d.samples[:rows*ch]
			out := make([]float32, len(in))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				f.ProcessInt16(in, float32(d.gain), out)
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(len(in))*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(len(in))*float64(b.N)/cpu.Seconds(), "samples/cpu-s")
		})
	}
}

// BenchmarkDetectMatch times detection, alignment, matching, subtraction
// and tracking alone (one shard, one core) on an already filtered ring.
func BenchmarkDetectMatch(b *testing.B) {
	for _, ch := range benchChannels {
		b.Run(fmt.Sprintf("ch=%d", ch), func(b *testing.B) {
			d := getBenchData(b, ch)
			so, _ := warmSorter(b, d, Config{Workers: 1}, 300)
			defer so.Close()
			sh := so.shards[0]
			saved := slices.Clone(sh.ring)
			from := so.scan - uint64(so.chunk) // rows still in the ring
			to := so.scan
			rows := int(to - from)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				copy(sh.ring, saved) // undo last pass's subtractions (counted; a memcpy)
				sh.detect(to, to, from, to, nil)
				sh.out, sh.outTau = sh.out[:0], sh.outTau[:0]
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(rows*ch)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(rows*ch)*float64(b.N)/cpu.Seconds(), "samples/cpu-s")
		})
	}
}

// BenchmarkLatency reports the wall time from a 1 ms block entering
// Process to its spikes leaving (p50, p99), at 1,024 channels, and the
// heap in use.
func BenchmarkLatency(b *testing.B) {
	const ch = 1024
	d := getBenchData(b, ch)
	block := int(d.rate / 1000)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	so, blocks := warmSorter(b, d, Config{}, block)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	defer so.Close()
	first := blocks[len(blocks)-1].End()
	out := make([]Spike, 0, 4096)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		blk := blocks[i%len(blocks)]
		blk.First = first
		first = blk.End()
		t0 := time.Now()
		out, _ = so.Process(blk, out[:0])
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(1000*float64(so.Lag())/d.rate, "lag-ms")
	// The sorter's own heap: after minus before creating and warming it.
	b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/(1<<20), "sorter-heap-MiB")
}

// geoBench is a 384-channel recording on a Neuropixels 1.0 layout (bank
// 0) where every spike shows on the channels around its own, with
// templates learned on it with and without the layout.
type geoBench struct {
	*benchData
	probe  *probe.Probe
	src    *synth
	radius float64
}

var geoBenchCache = map[string]*geoBench{}

// getGeoBench returns the dense benchmark recording and templates learned
// with radius µm (0: without the layout).
func getGeoBench(b *testing.B, radius float64) *geoBench {
	benchMu.Lock()
	defer benchMu.Unlock()
	key := fmt.Sprint(radius)
	if d := geoBenchCache[key]; d != nil {
		return d
	}
	const ch = 384
	p, err := probe.Builtin("neuropixels1", ch)
	if err != nil {
		b.Fatal(err)
	}
	var src *synth
	if d := geoBenchCache["src"]; d != nil {
		src = d.src
	} else {
		src = newSynth(synthConfig{channels: ch, seconds: 8, unitsPerChan: []int{1, 0}, noiseUV: 10, ampMin: 70, ampMax: 180,
			lfp: 300, hum: 40, dc: 2000, seed: 98, spread: []float64{0.7, 0.55, 0.4, 0.3, 0.2, 0.12, 0.06}})
		geoBenchCache["src"] = &geoBench{src: src}
	}
	cfg := Config{Deterministic: true, LearnSeconds: 6, RelearnEvery: -1}
	if radius > 0 {
		cfg.Probe, cfg.Radius = p, radius
	}
	_, so := runSorter(b, src, cfg, 3000)
	warm := so.Templates()
	so.Close()
	n := int(2 * src.rate)
	d := &geoBench{benchData: &benchData{channels: ch, rate: src.rate, gain: src.gain, samples: src.samples[:n*ch], warm: warm}, probe: p}
	if radius > 0 {
		d.radius = radius
	}
	d.src = src
	geoBenchCache[key] = d
	return d
}

// BenchmarkSorterGeometry times the whole sorter on a dense 384-channel
// probe (Neuropixels 1.0 layout) without the layout (every channel
// alone) and with it, at the default radius (50 µm: 8-channel
// neighbourhoods) and at 80 µm (16 channels, the most), over 10 ms blocks
// on all cores.
func BenchmarkSorterGeometry(b *testing.B) {
	for _, radius := range []float64{0, 50, 80} {
		name := "probe=none"
		if radius > 0 {
			name = fmt.Sprintf("radius=%v", radius)
		}
		b.Run(name, func(b *testing.B) {
			d := getGeoBench(b, radius)
			// The hot path only: channels no unit has its largest trough
			// on keep learning (as channels without templates do without
			// geometry); no learning pass within the timed blocks.
			cfg := Config{LearnSeconds: 1e6}
			if radius > 0 {
				cfg.Probe, cfg.Radius = d.probe, radius
			}
			so, blocks := warmSorter(b, d.benchData, cfg, 300)
			defer so.Close()
			var chans int
			for _, t := range d.warm {
				chans += max(1, len(t.Channels))
			}
			first := blocks[len(blocks)-1].End()
			out := make([]Spike, 0, 4096)
			var samples, spikes int
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				blk := blocks[i%len(blocks)]
				blk.First = first
				first = blk.End()
				var err error
				out, err = so.Process(blk, out[:0])
				if err != nil {
					b.Fatal(err)
				}
				samples += len(blk.Samples)
				spikes += len(out)
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(samples)/cpu.Seconds(), "samples/cpu-s")
			b.ReportMetric(float64(spikes)/float64(b.N), "spikes/op")
			b.ReportMetric(float64(len(d.warm)), "units")
			b.ReportMetric(float64(chans)/float64(max(1, len(d.warm))), "channels/template")
		})
	}
}

// BenchmarkLatencyGeometry is BenchmarkLatency (1 ms blocks) on the dense
// 384-channel probe, without and with its layout.
func BenchmarkLatencyGeometry(b *testing.B) {
	for _, radius := range []float64{0, 50} {
		name := "probe=none"
		if radius > 0 {
			name = fmt.Sprintf("radius=%v", radius)
		}
		b.Run(name, func(b *testing.B) {
			d := getGeoBench(b, radius)
			cfg := Config{LearnSeconds: 1e6}
			if radius > 0 {
				cfg.Probe, cfg.Radius = d.probe, radius
			}
			block := int(d.rate / 1000)
			so, blocks := warmSorter(b, d.benchData, cfg, block)
			defer so.Close()
			first := blocks[len(blocks)-1].End()
			out := make([]Spike, 0, 4096)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				blk := blocks[i%len(blocks)]
				blk.First = first
				first = blk.End()
				t0 := time.Now()
				out, _ = so.Process(blk, out[:0])
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(1000*float64(so.Lag())/d.rate, "lag-ms")
		})
	}
}
