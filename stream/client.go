package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Handler receives a rig's messages, decoded. Set the callbacks you want;
// a Client subscribes only to the subjects whose callback is set. rig is
// the rig the message came from (useful when subscribing to all rigs).
// Callbacks of one subscription are called one at a time, in arrival
// order, on a NATS goroutine: return quickly or hand off. The messages
// are the callback's to keep.
type Handler struct {
	Spikes    func(rig string, m *schema.SpikeBatch)
	Estimate  func(rig string, m *schema.EstimateMsg) // m.Model names the decoder
	Status    func(rig string, m *schema.Status)
	Events    func(rig string, m *schema.EventBatch)
	Templates func(rig string, m *schema.TemplateBatch)
	Raw       func(rig, group string, m *schema.RawBlock)
	// Error receives messages that could not be decoded; nil ignores them.
	Error func(subject string, err error)
}

// topics returns the subject suffixes (after "spikeline.<rig>.") of the
// set callbacks.
func (h *Handler) topics() []string {
	var t []string
	if h.Spikes != nil {
		t = append(t, "spikes")
	}
	if h.Estimate != nil {
		t = append(t, "decode.*")
	}
	if h.Status != nil {
		t = append(t, "status")
	}
	if h.Events != nil {
		t = append(t, "events")
	}
	if h.Templates != nil {
		t = append(t, "templates")
	}
	if h.Raw != nil {
		t = append(t, "raw.*")
	}
	return t
}

// topicType is the message type each topic carries.
var topicType = map[schema.Topic]schema.Type{schema.TopicSpikes: schema.TypeSpikes, schema.TopicDecode: schema.TypeEstimate, schema.TopicStatus: schema.TypeStatus,
	schema.TopicEvents: schema.TypeEvents, schema.TopicTemplates: schema.TypeTemplates, schema.TopicRaw: schema.TypeRaw}

// dispatch decodes one message and calls its callback.
func (h *Handler) dispatch(subject string, data []byte) {
	si, err := schema.ParseSubject(subject)
	if err == nil {
		var m schema.Message
		if m, err = schema.DecodeSubject(subject, data); err == nil {
			if want := topicType[si.Topic]; m.Head().Type != want {
				err = fmt.Errorf("stream: subject %s carries a %s message, want %s", subject, m.Head().Type, want)
			} else {
				h.call(si, m)
			}
		}
	}
	if err != nil && h.Error != nil {
		h.Error(subject, err)
	}
}

func (h *Handler) call(si schema.SubjectInfo, m schema.Message) {
	switch m := m.(type) {
	case *schema.SpikeBatch:
		if h.Spikes != nil {
			h.Spikes(si.Rig, m)
		}
	case *schema.EstimateMsg:
		if h.Estimate != nil {
			if m.Model == "" {
				m.Model = si.Name
			}
			h.Estimate(si.Rig, m)
		}
	case *schema.Status:
		if h.Status != nil {
			h.Status(si.Rig, m)
		}
	case *schema.EventBatch:
		if h.Events != nil {
			h.Events(si.Rig, m)
		}
	case *schema.TemplateBatch:
		if h.Templates != nil {
			h.Templates(si.Rig, m)
		}
	case *schema.RawBlock:
		if h.Raw != nil {
			h.Raw(si.Rig, si.Name, m)
		}
	}
}

// Client subscribes to rigs' messages, for downstream decoders and
// displays.
type Client struct {
	nc  *nats.Conn
	own bool
}

// Dial connects to NATS as cfg says (cfg.URLs, or nats.DefaultURL when
// empty; never starts a server).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	nc, err := Connect(ctx, cfg, cfg.Name)
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, own: true}, nil
}

// NewClient uses an existing connection; Close leaves it open.
func NewClient(nc *nats.Conn) *Client { return &Client{nc: nc} }

// Conn returns the client's connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Close drains the client's own connection (subscriptions finish their
// pending messages).
func (c *Client) Close() error {
	if c.own {
		return c.nc.Drain()
	}
	return nil
}

// SubscribeOptions tune Subscribe.
type SubscribeOptions struct {
	// JSON subscribes to the ".json" twins instead of the binary subjects
	// (the publisher must have JSON on).
	JSON bool
}

// Subscription is a live subscription; Stop ends it.
type Subscription struct {
	subs []*nats.Subscription
	cc   jetstream.ConsumeContext
}

// Stop unsubscribes, letting messages already received finish.
func (s *Subscription) Stop() error {
	var errs []error
	for _, sub := range s.subs {
		errs = append(errs, sub.Drain())
	}
	if s.cc != nil {
		s.cc.Drain()
		select {
		case <-s.cc.Closed():
		case <-time.After(5 * time.Second):
			s.cc.Stop()
		}
	}
	return errors.Join(errs...)
}

func rigPrefix(rig string) (string, error) {
	if rig != "*" {
		if err := schema.ValidToken(rig); err != nil {
			return "", fmt.Errorf("stream: rig: %w", err)
		}
	}
	return schema.Prefix + "." + rig + ".", nil
}

// Subscribe delivers rig's messages (core NATS, live only) to h. rig "*"
// subscribes to every rig.
func (c *Client) Subscribe(rig string, h Handler, opt SubscribeOptions) (*Subscription, error) {
	base, err := rigPrefix(rig)
	if err != nil {
		return nil, err
	}
	topics := h.topics()
	if len(topics) == 0 {
		return nil, errors.New("stream: subscribe: handler has no callbacks")
	}
	s := &Subscription{}
	for _, t := range topics {
		subj := base + t
		if opt.JSON {
			subj = schema.JSON(subj)
		}
		sub, err := c.nc.Subscribe(subj, func(m *nats.Msg) { h.dispatch(m.Subject, m.Data) })
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("stream: subscribe %s: %w", subj, err)
		}
		sub.SetPendingLimits(65536, 256<<20)
		s.subs = append(s.subs, sub)
	}
	if err := c.nc.Flush(); err != nil && c.nc.IsConnected() {
		s.Stop()
		return nil, fmt.Errorf("stream: subscribe: %w", err)
	}
	return s, nil
}

// DurableOptions tune SubscribeDurable.
type DurableOptions struct {
	// AckWait is how long the server waits for an acknowledgement before
	// redelivering; default 30 s.
	AckWait time.Duration
	// DeliverNew starts a new consumer at new messages rather than at the
	// start of the stream. A consumer that already exists resumes where it
	// was either way.
	DeliverNew bool
}

// SubscribeDurable delivers rig's captured spikes, estimates, events and
// templates from the rig's JetStream stream (see EnsureStream) through the
// durable consumer named durable. Each message is acknowledged after its
// callback returns, so a subscriber that stops and later subscribes again
// with the same durable name resumes after the last message it handled,
// without loss (a message whose acknowledgement was in flight may come
// twice; the sample indices tell). Status and raw callbacks are not
// served (those subjects are not captured).
func (c *Client) SubscribeDurable(ctx context.Context, rig, durable string, h Handler, opt DurableOptions) (*Subscription, error) {
	base, err := rigPrefix(rig)
	if err != nil {
		return nil, err
	}
	if rig == "*" {
		return nil, errors.New("stream: durable subscription needs one rig, not *")
	}
	if err := schema.ValidToken(durable); err != nil {
		return nil, fmt.Errorf("stream: durable name: %w", err)
	}
	var filters []string
	for _, t := range h.topics() {
		if t == "status" || strings.HasPrefix(t, "raw") {
			continue
		}
		filters = append(filters, base+t)
	}
	if len(filters) == 0 {
		return nil, errors.New("stream: durable subscription: set Spikes, Estimate, Events or Templates")
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, fmt.Errorf("stream: JetStream: %w", err)
	}
	ackWait := opt.AckWait
	if ackWait == 0 {
		ackWait = 30 * time.Second
	}
	deliver := jetstream.DeliverAllPolicy
	if opt.DeliverNew {
		deliver = jetstream.DeliverNewPolicy
	}
	cc := jetstream.ConsumerConfig{
		Durable:        durable,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		DeliverPolicy:  deliver,
		FilterSubjects: filters,
		MaxAckPending:  10000,
	}
	if len(filters) == 1 {
		cc.FilterSubject, cc.FilterSubjects = filters[0], nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	stream := StreamName(strings.TrimSuffix(strings.TrimPrefix(base, schema.Prefix+"."), "."))
	cons, err := js.Consumer(ctx, stream, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateConsumer(ctx, stream, cc)
	}
	if err != nil {
		return nil, fmt.Errorf("stream: durable consumer %s on %s: %w", durable, stream, err)
	}
	consume, err := cons.Consume(func(m jetstream.Msg) {
		h.dispatch(m.Subject(), m.Data())
		m.Ack()
	})
	if err != nil {
		return nil, fmt.Errorf("stream: consume %s: %w", durable, err)
	}
	return &Subscription{cc: consume}, nil
}
