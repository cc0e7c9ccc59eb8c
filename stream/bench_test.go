package stream

import (
	"context"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/streamtest"
)

func benchSpikes(n int) []sort.Spike {
	s := make([]sort.Spike, n)
	for i := range s {
		s[i] = sort.Spike{Sample: uint64(1000 + i*7), Channel: int32(i % 384), Unit: int32(i % 50), Amplitude: -60 - float32(i%40)}
	}
	return s
}

var batchSizes = []struct {
	name string
	n    int
}{{"8", 8}, {"64", 64}, {"512", 512}}

// BenchmarkAppendSpikes: encoding a batch into a reused buffer must not
// allocate.
func BenchmarkAppendSpikes(b *testing.B) {
	for _, bs := range batchSizes {
		b.Run("spikes="+bs.name, func(b *testing.B) {
			spikes := benchSpikes(bs.n)
			buf := make([]byte, 0, (schema.HeaderSize+16)+schema.SpikeRecordSize*bs.n)
			b.ReportAllocs()
			b.SetBytes(int64((schema.HeaderSize + 16) + schema.SpikeRecordSize*bs.n))
			for b.Loop() {
				buf = schema.AppendSpikes(buf[:0], 1000, 1600, 30000, 0, spikes)
			}
			b.ReportMetric(float64(bs.n)*float64(b.N)/b.Elapsed().Seconds(), "spikes/s")
		})
	}
}

// BenchmarkDecodeSpikes: decoding into a reused batch does not allocate.
func BenchmarkDecodeSpikes(b *testing.B) {
	for _, bs := range batchSizes {
		b.Run("spikes="+bs.name, func(b *testing.B) {
			data := schema.AppendSpikes(nil, 1000, 1600, 30000, 0, benchSpikes(bs.n))
			var m schema.SpikeBatch
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := m.UnmarshalBinary(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bs.n)*float64(b.N)/b.Elapsed().Seconds(), "spikes/s")
		})
	}
}

// BenchmarkPublishSpikesCall is the cost the sorter pays per batch: the
// PublishSpikes call alone (encode into a recycled buffer, enqueue).
func BenchmarkPublishSpikesCall(b *testing.B) {
	s := streamtest.RunServer(b, nil)
	p, err := NewPublisher(context.Background(), Config{URLs: []string{s.ClientURL()}, QueueLen: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	spikes := benchSpikes(64)
	// Warm up: every queue buffer grows to a batch's size once.
	for range 4096 {
		p.PublishSpikes(1000, 1600, 30000, spikes)
	}
	for p.Stats().Queued > 0 {
		time.Sleep(time.Millisecond)
	}
	// saturated: called in a tight loop, the queue is full almost always,
	// so this is mostly the cost of a counted drop.
	b.Run("saturated", func(b *testing.B) {
		d0 := p.Stats().Dropped
		b.ReportAllocs()
		for b.Loop() {
			p.PublishSpikes(1000, 1600, 30000, spikes)
		}
		b.ReportMetric(float64(p.Stats().Dropped-d0)/float64(b.N), "dropped/op")
	})
	// accepted: one call at a time with the queue empty (the timer is
	// stopped while the publisher goroutine sends it), so this is the
	// cost of an accepted batch: encode, enqueue, wake the publisher.
	b.Run("accepted", func(b *testing.B) {
		d0 := p.Stats().Dropped
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p.PublishSpikes(1000, 1600, 30000, spikes)
			b.StopTimer()
			for p.Stats().Queued > 0 {
				runtime.Gosched()
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(p.Stats().Dropped-d0)/float64(b.N), "dropped/op")
	})
}

// BenchmarkPublishThroughput publishes batches through a real nats-server
// to a subscriber and reports delivered spikes per second. The publisher
// is fed as fast as its queue accepts; the benchmark ends when the
// subscriber has every batch.
func BenchmarkPublishThroughput(b *testing.B) {
	for _, bs := range batchSizes {
		b.Run("spikes="+bs.name, func(b *testing.B) {
			s := streamtest.RunServer(b, nil)
			p, err := NewPublisher(context.Background(), Config{URLs: []string{s.ClientURL()}, QueueLen: 8192})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			sub, _ := nats.Connect(s.ClientURL())
			defer sub.Close()
			var got atomic.Int64
			var spikesGot atomic.Int64
			var m schema.SpikeBatch
			ns, _ := sub.Subscribe(p.Subjects().Spikes(), func(msg *nats.Msg) {
				if m.UnmarshalBinary(msg.Data) == nil {
					spikesGot.Add(int64(len(m.Spikes)))
				}
				got.Add(1)
			})
			ns.SetPendingLimits(-1, -1)
			sub.Flush()
			spikes := benchSpikes(bs.n)
			b.SetBytes(int64((schema.HeaderSize + 16) + schema.SpikeRecordSize*bs.n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for !p.PublishSpikes(uint64(i)*600, uint64(i+1)*600, 30000, spikes) {
					runtime.Gosched()
				}
			}
			deadline := time.Now().Add(60 * time.Second)
			for got.Load() < int64(b.N) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			if got.Load() < int64(b.N) {
				b.Fatalf("subscriber got %d of %d batches", got.Load(), b.N)
			}
			b.ReportMetric(float64(spikesGot.Load())/b.Elapsed().Seconds(), "spikes/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
		})
	}
}

// BenchmarkPublishLatency measures the transport latency of one spike
// batch at a time: PublishSpikes called → batch decoded by a subscriber,
// through a real nats-server on loopback. It reports the median and 99th
// percentile in µs (the publisher's queue hop, NATS, and decoding).
func BenchmarkPublishLatency(b *testing.B) {
	s := streamtest.RunServer(b, nil)
	p, err := NewPublisher(context.Background(), Config{URLs: []string{s.ClientURL()}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	publishLatency(b, p, s.ClientURL())
}

// BenchmarkPublishLatencyAuthorized is BenchmarkPublishLatency through the
// embedded server with its authorization (the pipeline's key, permission
// checks on every publish, an anonymous reader): compare the two in one
// run for the cost of the permissions.
func BenchmarkPublishLatencyAuthorized(b *testing.B) {
	p, err := NewPublisher(context.Background(), Config{Port: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	publishLatency(b, p, p.ServerURL())
}

func publishLatency(b *testing.B, p *Publisher, url string) {
	sub, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	recv := make(chan time.Time, 1)
	var m schema.SpikeBatch
	sub.Subscribe(p.Subjects().Spikes(), func(msg *nats.Msg) {
		if m.UnmarshalBinary(msg.Data) == nil {
			recv <- time.Now()
		}
	})
	sub.Flush()
	spikes := benchSpikes(16)
	lat := make([]time.Duration, 0, b.N)
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		p.PublishSpikes(uint64(i)*600, uint64(i+1)*600, 30000, spikes)
		select {
		case t1 := <-recv:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(5 * time.Second):
			b.Fatal("batch not received")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
