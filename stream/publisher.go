package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

// ErrClosed is returned by operations on a closed Publisher.
var ErrClosed = errors.New("stream: publisher closed")

// maxKeptBuffer is the largest message buffer the publisher keeps for
// reuse; bigger ones (large raw blocks) are let go after publishing, so
// the queue's memory stays near QueueLen × typical message size.
const maxKeptBuffer = 64 << 10

type outMsg struct {
	subject string
	data    []byte
	home    chan *outMsg // the free list it returns to
}

// Publisher publishes a rig's messages on NATS without ever blocking its
// caller. Each Publish method encodes the message into a recycled buffer
// and hands it to a bounded queue drained by one goroutine; if the queue
// is full (NATS slow or away) the message is dropped and counted, and the
// count goes out on the status subject. While disconnected, nats.go keeps
// up to ReconnectBufSize bytes and sends them on reconnect.
//
// The Publish methods are safe for concurrent use; each returns false if
// the message was dropped.
type Publisher struct {
	cfg   Config
	subj  schema.Subjects
	nc    *nats.Conn
	srv   *Server
	queue chan *outMsg // spikes, estimates, status, events, templates
	free  chan *outMsg
	bulk  chan *outMsg // raw blocks: their own queue, so a flood of raw
	bulkF chan *outMsg // data never crowds spikes out
	done  chan struct{}
	ended chan struct{}

	creds     *Credentials // the embedded server's (nil: external)
	anonymous bool         // the embedded server lets clients without credentials read
	limiter   refusalLimiter

	lastEnd  atomic.Uint64 // end of the last spike batch: the device sample the rig has reached
	lastRate atomic.Uint64 // its rate (float64 bits)

	closed  atomic.Bool
	sent    atomic.Uint64 // messages handed to NATS
	bytes   atomic.Uint64
	dropped atomic.Uint64 // queue full or closed
	errs    atomic.Uint64 // NATS refused

	mu       sync.Mutex
	subjects map[string]string // "decode/<model>", "raw/<group>" -> subject
}

// NewPublisher connects to NATS as cfg says, starting an embedded server
// first when cfg.URLs is empty (its URL is logged and returned by
// ServerURL), creates or updates the JetStream stream when cfg.JetStream
// is set, and starts the publishing goroutine. Close it to drain and
// disconnect.
func NewPublisher(ctx context.Context, cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rig == "" {
		cfg.Rig = DefaultRig
	}
	subj, err := schema.NewSubjects(cfg.Rig)
	if err != nil {
		return nil, err
	}
	p := &Publisher{cfg: cfg, subj: subj, subjects: map[string]string{}}
	log := cfg.logger()
	n := cfg.QueueLen
	if n == 0 {
		n = DefaultQueueLen
	}
	p.queue, p.free = newQueue(n)
	p.bulk, p.bulkF = newQueue(max(16, n/16))
	wait := cfg.ConnectTimeout
	if cfg.Embedded() {
		if err := p.startServer(); err != nil {
			return nil, err
		}
		log.Info("embedded NATS server listening", "url", p.srv.ClientURL(), "jetstream", cfg.JetStream,
			"anonymous_read", p.anonymous)
		wait = DefaultConnectTimeout
	} else if wait == 0 {
		wait = DefaultConnectTimeout
	}
	p.nc, err = connect(ctx, p.cfg, "", wait)
	if err != nil {
		p.shutdownServer()
		return nil, err
	}
	if cfg.JetStream {
		if err := EnsureStream(ctx, p.nc, p.cfg); err != nil {
			p.nc.Close()
			p.shutdownServer()
			return nil, err
		}
	}
	p.done = make(chan struct{})
	p.ended = make(chan struct{})
	go p.loop()
	return p, nil
}

// startServer starts the embedded server with the rig's authorization:
// fresh credentials unless cfg.Credentials, anonymous clients reading only
// on a loopback address, and every client the server refuses published
// as an access_refused event.
func (p *Publisher) startServer() error {
	cfg := &p.cfg
	creds := cfg.Credentials
	if creds == nil {
		var err error
		if creds, err = NewCredentials(cfg.BehaviourSubject != ""); err != nil {
			return err
		}
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	anonymous := !cfg.ReadersNeedCredentials && (host == "localhost" || (ip != nil && ip.IsLoopback()))
	authz, err := creds.Layout(cfg.rig(), cfg.BehaviourSubject, anonymous, cfg.JetStream).ServerConfig()
	if err != nil {
		return err
	}
	// Set before the server starts: its refusals read them.
	p.creds, p.anonymous = creds, anonymous
	p.srv, err = StartServer(ServerConfig{Host: cfg.Host, Port: cfg.Port, JetStream: cfg.JetStream,
		StoreDir: cfg.StoreDir, Logger: cfg.Logger, Authorization: authz,
		Refused: p.refused})
	if err != nil {
		return err
	}
	// From here on the publisher is a client of that server, with the
	// pipeline's key.
	cfg.URLs = []string{p.srv.ClientURL()}
	cfg.keyPair, cfg.Credentials, cfg.ReadersNeedCredentials = creds.Pipeline, nil, false
	return nil
}

// refused logs and publishes a client the embedded server refused, at most
// one record per RefusalEvery for alike refusals.
func (p *Publisher) refused(r Refusal) {
	now := time.Now()
	ok, n := p.limiter.admit(r, now)
	if !ok {
		return
	}
	var roles map[string]string
	if p.creds != nil {
		roles = p.creds.Roles()
	}
	rec := RefusalRecord(r, now.UTC(), roles)
	rec.Count = n
	p.cfg.logger().Warn("NATS server refused a client", "kind", r.Kind, "subject", r.Subject, "client", r.Client, "count", n)
	p.PublishControl(rec, -1)
}

// Credentials returns the embedded server's credentials (nil when
// publishing to external servers): Save them for the user's tools.
func (p *Publisher) Credentials() *Credentials { return p.creds }

// PublishControl publishes an audit record on spikeline.<rig>.events (a
// control, control_refused or access_refused event) at the device sample
// the rig has reached (the end of the last spike batch). channel is the
// electrode concerned, -1 for none.
func (p *Publisher) PublishControl(r schema.ControlRecord, channel int32) bool {
	at := p.lastEnd.Load()
	return p.PublishEvents(at, math.Float64frombits(p.lastRate.Load()), []schema.Event{r.Event(at, channel)})
}

// Subjects returns the subjects the publisher uses.
func (p *Publisher) Subjects() schema.Subjects { return p.subj }

// Conn returns the NATS connection, to share with a Client or the control
// service.
func (p *Publisher) Conn() *nats.Conn { return p.nc }

// URL returns the server URL(s) the publisher connects to, comma-separated
// (the embedded server's, or the configured ones). It may hold
// credentials: pass it through RedactURL before printing.
func (p *Publisher) URL() string { return strings.Join(p.cfg.URLs, ",") }

// ServerURL returns the URL of the embedded server, or "" when publishing
// to external servers (see URL).
func (p *Publisher) ServerURL() string {
	if p.srv == nil {
		return ""
	}
	return p.srv.ClientURL()
}

// PublisherStats counts what a Publisher did.
type PublisherStats struct {
	Sent       uint64 // messages handed to NATS (JSON twins not counted)
	Bytes      uint64 // bytes of those messages
	Dropped    uint64 // messages dropped because the queue was full (or the publisher closed)
	Errors     uint64 // messages NATS refused (reconnect buffer full, connection closed)
	Queued     int    // messages waiting in the queue now
	Reconnects uint64 // NATS reconnects
	Connected  bool
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		Sent: p.sent.Load(), Bytes: p.bytes.Load(), Dropped: p.dropped.Load(), Errors: p.errs.Load(),
		Queued: len(p.queue) + len(p.bulk), Reconnects: p.nc.Stats().Reconnects, Connected: p.nc.IsConnected(),
	}
}

// newQueue returns a queue of n messages and its free list, full.
func newQueue(n int) (queue, free chan *outMsg) {
	queue, free = make(chan *outMsg, n), make(chan *outMsg, n)
	for range n {
		free <- &outMsg{home: free}
	}
	return queue, free
}

// get takes a free message buffer, or counts a drop.
func (p *Publisher) get() *outMsg { return p.take(p.free) }

func (p *Publisher) take(free chan *outMsg) *outMsg {
	if p.closed.Load() {
		p.dropped.Add(1)
		return nil
	}
	select {
	case m := <-free:
		return m
	default:
		p.dropped.Add(1)
		return nil
	}
}

// put enqueues m on the queue of its free list. A queue never holds more
// than its capacity because messages are conserved between a free list
// and its queue, so this never blocks.
func (p *Publisher) put(m *outMsg) bool {
	if m.home == p.bulkF {
		p.bulk <- m
	} else {
		p.queue <- m
	}
	return true
}

func (p *Publisher) release(m *outMsg) {
	if cap(m.data) > maxKeptBuffer {
		m.data = nil
	}
	m.data = m.data[:0]
	m.home <- m
}

// PublishSpikes publishes the spikes sorted from the block [first, end)
// on spikeline.<rig>.spikes (an empty batch too: it says "no spikes
// here"). It copies spikes; it does not allocate once the queue's buffers
// have grown.
func (p *Publisher) PublishSpikes(first, end uint64, rate float64, spikes []sort.Spike) bool {
	m := p.get()
	if m == nil {
		return false
	}
	m.subject = p.subj.Spikes()
	m.data = schema.AppendSpikes(m.data[:0], first, end, rate, 0, spikes)
	p.lastEnd.Store(end)
	p.lastRate.Store(math.Float64bits(rate))
	return p.put(m)
}

func (p *Publisher) subject(kind, name string, build func(string) (string, error)) (string, error) {
	key := kind + "/" + name
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.subjects[key]; ok {
		return s, nil
	}
	s, err := build(name)
	if err != nil {
		return "", err
	}
	p.subjects[key] = s
	return s, nil
}

// PublishEstimate publishes one decoder output on
// spikeline.<rig>.decode.<model>. It returns an error for an invalid model
// name or estimate, and false if the message was dropped.
func (p *Publisher) PublishEstimate(model string, e decode.Estimate) (bool, error) {
	subj, err := p.subject("decode", model, p.subj.Decode)
	if err != nil {
		return false, err
	}
	msg := schema.EstimateMsg{Header: schema.Header{Sample: e.End, Rate: e.Rate}, Model: model, Names: e.Names, Values: e.Values}
	if e.Degraded {
		msg.Flags |= schema.FlagDegraded
	}
	return p.publishMsg(subj, &msg)
}

func (p *Publisher) publishMsg(subject string, msg interface {
	AppendBinary([]byte) ([]byte, error)
}) (bool, error) {
	m := p.get()
	if m == nil {
		return false, nil
	}
	var err error
	m.data, err = msg.AppendBinary(m.data[:0])
	if err != nil {
		p.release(m)
		return false, err
	}
	m.subject = subject
	return p.put(m), nil
}

// PublishStatus publishes s on spikeline.<rig>.status after filling in the
// publisher's own counters (Sent, PublishDropped, PublishErrors,
// Reconnects).
func (p *Publisher) PublishStatus(s *schema.Status) (bool, error) {
	st := p.Stats()
	s.Sent, s.PublishDropped, s.PublishErrors, s.Reconnects = st.Sent, st.Dropped, st.Errors, st.Reconnects
	return p.publishMsg(p.subj.Status(), s)
}

// PublishEvents publishes events on spikeline.<rig>.events. sample is the
// last device sample seen when they were raised.
func (p *Publisher) PublishEvents(sample uint64, rate float64, events []schema.Event) bool {
	if len(events) == 0 {
		return true
	}
	ok, _ := p.publishMsg(p.subj.Events(), &schema.EventBatch{Header: schema.Header{Sample: sample, Rate: rate}, Events: events})
	return ok
}

// PublishLinkEvents publishes the link events a block carries (gaps, CRC
// errors, reconnects...). It does nothing for a block without events.
func (p *Publisher) PublishLinkEvents(b *device.Block) bool {
	if len(b.Events) == 0 {
		return true
	}
	var buf [8]schema.Event
	ev := buf[:0]
	for _, e := range b.Events {
		ev = append(ev, LinkEvent(e))
	}
	return p.PublishEvents(b.First, b.Rate, ev)
}

// LinkEvent converts a device link event into an event message's.
func LinkEvent(e device.Event) schema.Event {
	return schema.Event{Kind: schema.EventKind(e.Kind), Sample: e.Sample, Count: e.Count, Offset: e.Offset,
		Unit: -1, Channel: -1, Detail: e.Detail}
}

// PublishTemplates publishes templates on spikeline.<rig>.templates; full
// says they are every current template (a snapshot) rather than the new
// and changed ones.
func (p *Publisher) PublishTemplates(sample uint64, rate float64, templates []sort.Template, full bool) (bool, error) {
	var flags uint16
	if full {
		flags = schema.FlagFullSnapshot
	}
	return p.PublishTemplateBatch(&schema.TemplateBatch{Header: schema.Header{Flags: flags, Sample: sample, Rate: rate}, Templates: templates})
}

// PublishTemplateBatch publishes m on spikeline.<rig>.templates: templates
// with, when m.Quality is set, their units' quality metrics.
func (p *Publisher) PublishTemplateBatch(m *schema.TemplateBatch) (bool, error) {
	return p.publishMsg(p.subj.Templates(), m)
}

// PublishRaw publishes channels [firstChannel, firstChannel+n) of b on
// spikeline.<rig>.raw.<group>, n = channels of the group; pass
// firstChannel 0 and n = b.Channels for the whole block. filtered marks
// band-passed samples.
func (p *Publisher) PublishRaw(group string, b *device.Block, firstChannel, n int, filtered bool) (bool, error) {
	subj, err := p.subject("raw", group, p.subj.Raw)
	if err != nil {
		return false, err
	}
	if firstChannel < 0 || n <= 0 || firstChannel+n > b.Channels {
		return false, fmt.Errorf("stream: raw group %s: channels [%d, %d) outside the block's %d", group, firstChannel, firstChannel+n, b.Channels)
	}
	m := p.take(p.bulkF)
	if m == nil {
		return false, nil
	}
	var flags uint16
	if filtered {
		flags = schema.FlagFiltered
	}
	m.subject = subj
	m.data = schema.AppendRaw(m.data[:0], flags, b.First, b.Rate, b.Gain, b.Samples[:b.Len()*b.Channels], b.Channels, firstChannel, n)
	return p.put(m), nil
}

func (p *Publisher) loop() {
	defer close(p.ended)
	for {
		// Spikes and the rest go before raw blocks.
		select {
		case m := <-p.queue:
			p.send(m)
			continue
		default:
		}
		select {
		case m := <-p.queue:
			p.send(m)
		case m := <-p.bulk:
			p.send(m)
		case <-p.done:
			for {
				select {
				case m := <-p.queue:
					p.send(m)
				case m := <-p.bulk:
					p.send(m)
				default:
					return
				}
			}
		}
	}
}

func (p *Publisher) send(m *outMsg) {
	schema.StampPublished(m.data, time.Now().UnixNano())
	if err := p.nc.Publish(m.subject, m.data); err != nil {
		p.errs.Add(1)
	} else {
		p.sent.Add(1)
		p.bytes.Add(uint64(len(m.data)))
		if p.cfg.JSON {
			p.sendJSON(m)
		}
	}
	p.release(m)
}

func (p *Publisher) sendJSON(m *outMsg) {
	msg, err := schema.Decode(m.data)
	if err != nil {
		return
	}
	j, err := json.Marshal(msg)
	if err != nil {
		return
	}
	if p.nc.Publish(schema.JSON(m.subject), j) != nil {
		p.errs.Add(1)
	}
}

// Close stops accepting messages, publishes what is queued, flushes NATS
// (waiting at most until ctx ends) and disconnects; it shuts down the
// embedded server if the publisher started one. Messages still in
// nats.go's reconnect buffer when ctx ends are lost.
func (p *Publisher) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(p.done)
	var err error
	select {
	case <-p.ended:
	case <-ctx.Done():
		err = fmt.Errorf("stream: close: queue not drained: %w", ctx.Err())
	}
	fctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if p.nc.IsConnected() {
		// Drain: subscriptions sharing the connection (control service,
		// behaviour input) finish what they hold, then everything
		// buffered is flushed and the connection closes.
		closed := make(chan struct{})
		p.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if derr := p.nc.Drain(); derr == nil {
			select {
			case <-closed:
			case <-fctx.Done():
				if err == nil {
					err = fmt.Errorf("stream: close: drain: %w", fctx.Err())
				}
			}
		} else if ferr := p.nc.FlushWithContext(fctx); ferr != nil && err == nil {
			err = fmt.Errorf("stream: close: flush: %w", ferr)
		}
	} else if n, berr := p.nc.Buffered(); berr == nil && n > 0 {
		p.cfg.logger().Warn("NATS disconnected at close: buffered messages not sent", "bytes", n)
	}
	p.nc.Close()
	p.shutdownServer()
	return err
}

func (p *Publisher) shutdownServer() {
	if p.srv != nil {
		p.srv.Shutdown()
	}
}

// StreamName is the JetStream stream that captures a rig's spikes,
// decoder output, events and templates.
func StreamName(rig string) string { return "SPIKELINE_" + rig }

// EnsureStream creates or updates the JetStream stream of cfg's rig:
// file storage, subjects spikeline.<rig>.{spikes,decode.*,events,templates}
// (binary only), limited by cfg.StreamMaxAge and StreamMaxBytes.
func EnsureStream(ctx context.Context, nc *nats.Conn, cfg Config) error {
	rig := cfg.rig()
	s, err := schema.NewSubjects(rig)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("stream: JetStream: %w", err)
	}
	age := cfg.StreamMaxAge
	if age == 0 {
		age = DefaultStreamMaxAge
	}
	maxBytes := cfg.StreamMaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	dec, _ := s.Decode("x")
	sc := jetstream.StreamConfig{
		Name:        StreamName(rig),
		Description: "spikeline capture of rig " + rig,
		Subjects:    []string{s.Spikes(), dec[:len(dec)-1] + "*", s.Events(), s.Templates()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      age,
		MaxBytes:    maxBytes,
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("stream: JetStream stream %s: %s", sc.Name, cfg.Redact(err.Error()))
	}
	return nil
}
