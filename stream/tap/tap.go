package tap

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// Printer writes one line per message, text or JSON (docs/cli.md,
// spikeline tap); NATS calls Handle from one goroutine per
// subscription, so it serialises them.
type Printer struct {
	w         io.Writer
	json      bool
	maxSpikes int
	limit     int

	mu      sync.Mutex
	n       int
	err     error
	stopped bool
	done    chan struct{}
	lastEnd map[string]uint64 // spikes subject -> End of the previous batch
}

// NewPrinter returns a Printer writing to w, in JSON lines when asJSON,
// with at most maxSpikes spikes of a batch spelled out; it stops after
// limit messages (0: never).
func NewPrinter(w io.Writer, asJSON bool, maxSpikes, limit int) *Printer {
	return &Printer{w: w, json: asJSON, maxSpikes: maxSpikes, limit: limit, done: make(chan struct{})}
}

// Done is closed once limit messages are printed or writing failed.
func (p *Printer) Done() <-chan struct{} { return p.done }

// Stop stops printing and returns the error writing met, if any.
func (p *Printer) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	return p.err
}

// Handle prints a message a subscription delivered (nats.MsgHandler).
func (p *Printer) Handle(m *nats.Msg) { p.Print(m.Subject, m.Data) }

// Print writes one message's line and reports whether it did (false once
// the count is reached or tap is stopping).
func (p *Printer) Print(subject string, data []byte) bool {
	now := time.Now()
	msg, derr := schema.DecodeSubject(subject, data)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || (p.limit > 0 && p.n >= p.limit) || p.err != nil {
		return false
	}
	var line []byte
	if p.json {
		rec := struct {
			Subject    string          `json:"subject"`
			ReceivedNS int64           `json:"received_ns"`
			Message    json.RawMessage `json:"message,omitempty"`
			Error      string          `json:"error,omitempty"`
		}{Subject: subject, ReceivedNS: now.UnixNano()}
		if derr != nil {
			rec.Error = derr.Error()
		} else if b, err := json.Marshal(msg); err != nil {
			rec.Error = err.Error()
		} else {
			rec.Message = b
		}
		line, _ = json.Marshal(rec)
		line = append(line, '\n')
	} else {
		var sb strings.Builder
		sb.WriteString(now.Format("15:04:05.000"))
		sb.WriteByte(' ')
		sb.WriteString(subject)
		sb.WriteByte(' ')
		if derr != nil {
			fmt.Fprintf(&sb, "undecodable (%d bytes): %v", len(data), derr)
		} else {
			Format(&sb, msg, p.maxSpikes)
			if b, ok := msg.(*schema.SpikeBatch); ok {
				p.checkContinuity(&sb, subject, b)
			}
			if h := msg.Head(); h.Published > 0 {
				fmt.Fprintf(&sb, " | lat %s", fmtDur(now.Sub(h.PublishTime())))
			}
		}
		sb.WriteByte('\n')
		line = []byte(sb.String())
	}
	if _, err := p.w.Write(line); err != nil {
		p.err = err
		close(p.done)
		return false
	}
	p.n++
	if p.limit > 0 && p.n == p.limit {
		close(p.done)
	}
	return true
}

// checkContinuity notes where consecutive spike batches of one subject do
// not tile the device clock: batches dropped by a publisher, lost in
// transit, or a device reset.
func (p *Printer) checkContinuity(sb *strings.Builder, subject string, b *schema.SpikeBatch) {
	if p.lastEnd == nil {
		p.lastEnd = map[string]uint64{}
	}
	last, seen := p.lastEnd[subject]
	p.lastEnd[subject] = b.End
	switch {
	case !seen || b.First() == last:
	case b.First() > last:
		fmt.Fprintf(sb, " | MISSING [%d,%d) %d samples (batches dropped or lost)", last, b.First(), b.First()-last)
	default:
		fmt.Fprintf(sb, " | BACKWARDS from %d (device reset or publisher restart)", last)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtDur(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return d.Round(time.Millisecond).String()
}

// secs renders a sample index as seconds on the device clock.
func secs(sample uint64, rate float64) string {
	if rate <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.3fs", float64(sample)/rate)
}

// Format writes the human-readable body of one message, at most
// maxSpikes spikes or templates of it.
func Format(sb *strings.Builder, m schema.Message, maxSpikes int) {
	switch m := m.(type) {
	case *schema.SpikeBatch:
		fmt.Fprintf(sb, "[%d,%d) %s @%gHz %d spikes", m.Sample, m.End, secs(m.Sample, m.Rate), m.Rate, len(m.Spikes))
		for i, s := range m.Spikes {
			if i == maxSpikes {
				fmt.Fprintf(sb, " …+%d", len(m.Spikes)-i)
				break
			}
			sep := ","
			if i == 0 {
				sep = ":"
			}
			fmt.Fprintf(sb, "%s ch%d u%d @%d %.1fµV", sep, s.Channel, s.Unit, s.Sample, s.Amplitude)
		}
	case *schema.EstimateMsg:
		fmt.Fprintf(sb, "model %s end %d %s", m.Model, m.Sample, secs(m.Sample, m.Rate))
		for i, v := range m.Values {
			name := fmt.Sprintf("y%d", i)
			if i < len(m.Names) && m.Names[i] != "" {
				name = m.Names[i]
			}
			fmt.Fprintf(sb, " %s=%.4g", name, v)
		}
	case *schema.Status:
		l := m.Link
		fmt.Fprintf(sb, "sample %d %s up %s | %.0f S/s %.1f spk/s thr %.3gσ | lat p50 %s p99 %s max %s | drops pipeline %d publish %d nats %d reconnects %d",
			m.Sample, secs(m.Sample, m.Rate), m.Uptime.Round(time.Second), m.SampleRate, m.SpikeRate, m.Threshold,
			fmtDur(m.LatencyP50), fmtDur(m.LatencyP99), fmtDur(m.LatencyMax),
			m.PipelineDrops, m.PublishDropped, m.PublishErrors, m.Reconnects)
		fmt.Fprintf(sb, " | link frames %d crc %d bad %d resync %dB gaps %d lost %d resets %d disc %d",
			l.Frames, l.CRCErrors, l.BadFrames, l.SkippedBytes, l.Gaps, l.LostSamples, l.Resets, l.Disconnects)
		if n := len(m.NoiseUV); n > 0 {
			noise := slices.Clone(m.NoiseUV)
			slices.Sort(noise)
			var rate float64
			for _, r := range m.RateHz {
				rate += float64(r)
			}
			fmt.Fprintf(sb, " | %d ch noise median %.1fµV [%.1f–%.1f] rate mean %.2fHz",
				n, noise[n/2], noise[0], noise[n-1], rate/math.Max(1, float64(len(m.RateHz))))
		}
	case *schema.EventBatch:
		fmt.Fprintf(sb, "sample %d %s %d events", m.Sample, secs(m.Sample, m.Rate), len(m.Events))
		for i, e := range m.Events {
			sep := ";"
			if i == 0 {
				sep = ":"
			}
			fmt.Fprintf(sb, "%s %s", sep, e)
		}
	case *schema.TemplateBatch:
		kind := "changed"
		if m.Full() {
			kind = "snapshot"
		}
		fmt.Fprintf(sb, "sample %d %s %s %d templates", m.Sample, secs(m.Sample, m.Rate), kind, len(m.Templates))
		for i, t := range m.Templates {
			if i == maxSpikes {
				fmt.Fprintf(sb, " …+%d", len(m.Templates)-i)
				break
			}
			sep := ","
			if i == 0 {
				sep = ":"
			}
			fmt.Fprintf(sb, "%s u%d ch%d %.1fµV (%d samples, %d spikes)", sep, t.Unit, t.Channel, t.PeakUV, len(t.Waveform), t.Count)
			if i < len(m.Quality) {
				q := m.Quality[i]
				fmt.Fprintf(sb, " %s %d spikes %.2fHz snr %.1f isi %.3g rp %.3g presence %.2f cutoff %.3g median %.1fµV",
					q.Label, q.NumSpikes, q.FiringRate, q.SNR, q.ISIViolationsRatio, q.RPContamination, q.PresenceRatio, q.AmplitudeCutoff, q.AmplitudeMedian)
			}
		}
	case *schema.RawBlock:
		kind := "raw"
		if m.Filtered() {
			kind = "filtered"
		}
		fmt.Fprintf(sb, "%s [%d,%d) %s @%gHz ch %d-%d × %d samples, %gµV/count",
			kind, m.Sample, m.Sample+uint64(m.Len()), secs(m.Sample, m.Rate), m.Rate,
			m.FirstChannel, m.FirstChannel+m.Channels-1, m.Len(), m.Gain)
	default:
		fmt.Fprintf(sb, "%T", m)
	}
}

// Durable consumes subjects from rig's JetStream stream through the
// durable consumer name, one message at a time, acknowledging each once
// printed (and confirmed by the server), so that the next run with the
// same name starts exactly after the last line printed. The returned
// function stops it.
func Durable(ctx context.Context, nc *nats.Conn, rig, name string, subjects []string, p *Printer) (func(), error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg := jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: subjects}
	if len(subjects) == 1 {
		cfg.FilterSubject, cfg.FilterSubjects = subjects[0], nil
	}
	cons, err := js.CreateOrUpdateConsumer(cctx, stream.StreamName(rig), cfg)
	if err != nil {
		return nil, fmt.Errorf("durable consumer %s on %s (is the pipeline running with --jetstream?): %w", name, stream.StreamName(rig), err)
	}
	lctx, stop := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for lctx.Err() == nil {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond))
			if err != nil {
				if lctx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			for m := range batch.Messages() {
				if !p.Print(m.Subject(), m.Data()) {
					m.Nak()
					return
				}
				actx, cancel := context.WithTimeout(lctx, 5*time.Second)
				m.DoubleAck(actx)
				cancel()
			}
		}
	}()
	return func() {
		stop()
		<-finished
		nc.Flush()
	}, nil
}
