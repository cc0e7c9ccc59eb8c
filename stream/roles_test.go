package stream

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// asUser connects to url as the NKey user kp (nil: no credentials).
func asUser(t *testing.T, url string, kp nkeys.KeyPair, name string) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.Name(name), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	if kp != nil {
		pub, _ := kp.PublicKey()
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// auditLog collects a service's audit records.
type auditLog struct {
	mu   sync.Mutex
	recs []schema.ControlRecord
}

func (a *auditLog) add(r schema.ControlRecord) {
	a.mu.Lock()
	a.recs = append(a.recs, r)
	a.mu.Unlock()
}

func (a *auditLog) all() []schema.ControlRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]schema.ControlRecord(nil), a.recs...)
}

// eventLog collects the control-plane events of a rig.
type eventLog struct {
	mu  sync.Mutex
	evs []schema.Event
}

func (l *eventLog) handler() Handler {
	return Handler{Events: func(_ string, b *schema.EventBatch) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range b.Events {
			if e.Kind >= schema.EventControl {
				l.evs = append(l.evs, e)
			}
		}
	}}
}

func (l *eventLog) find(kind schema.EventKind, match func(schema.ControlRecord) bool) (schema.ControlRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e.Kind != kind {
			continue
		}
		r, err := schema.ParseControlRecord(e)
		if err == nil && match(r) {
			return r, true
		}
	}
	return schema.ControlRecord{}, false
}

// rolesRig is an embedded publisher with its control service, as
// spikeline run sets them up.
type rolesRig struct {
	pub   *Publisher
	creds *Credentials
	ctl   *fakeController
	audit *auditLog
	url   string
}

func startRolesRig(t *testing.T, cfg Config) *rolesRig {
	t.Helper()
	creds, err := NewCredentials(cfg.BehaviourSubject != "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials, cfg.Port = creds, -1
	if cfg.Rig == "" {
		cfg.Rig = "ctl1"
	}
	p := newTestPublisher(t, cfg)
	r := &rolesRig{pub: p, creds: creds, ctl: &fakeController{}, audit: &auditLog{}, url: p.ServerURL()}
	svc, err := StartService(p.Conn(), cfg.Rig, r.ctl, ServiceOptions{Roles: creds.Roles(), RequireVerified: true,
		Audit: func(rec schema.ControlRecord) { r.audit.add(rec); p.PublishControl(rec, -1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	return r
}

// The embedded server's roles, each tried against the real server: readers
// (anonymous, or with the reader key) read and publish nothing; nobody but
// the operator changes the threshold, refits or commands the headstage;
// every refusal is a clear error to the caller and an event; the operator's
// calls carry the identity the server vouches for.
func TestRolesEmbedded(t *testing.T) {
	r := startRolesRig(t, Config{})
	ctx := context.Background()
	events := &eventLog{}
	watcher := asUser(t, r.url, nil, "watcher")
	if _, err := NewClient(watcher).Subscribe("ctl1", events.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	spikes := newCollector()
	if _, err := NewClient(watcher).Subscribe("ctl1", spikes.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	forged := make(chan *nats.Msg, 16)
	if _, err := watcher.ChanSubscribe("spikeline.ctl1.decode.*", forged); err != nil {
		t.Fatal(err)
	}
	watcher.Flush()

	// Readers read.
	waitFor(t, 5*time.Second, "spikes to an anonymous reader", func() bool {
		r.pub.PublishSpikes(0, 100, 30000, nil)
		return spikes.nSpikes() > 0
	})

	for _, c := range []struct {
		name string
		kp   nkeys.KeyPair
	}{{"anonymous", nil}, {"reader", r.creds.Reader}} {
		nc := asUser(t, r.url, c.kp, c.name)
		// Info and stats: allowed reads.
		var info Info
		if err := Call(ctx, nc, "ctl1", EndpointInfo, nil, &info); err != nil || info.Channels != 32 {
			t.Errorf("%s: info: %v %+v", c.name, err, info)
		}
		// Control: refused by the server, at once.
		for _, ep := range []struct {
			endpoint string
			req      any
		}{
			{EndpointThreshold, ThresholdRequest{Sigma: 100}},
			{EndpointRefit, nil},
			{EndpointCommand, CommandRequest{Op: "stop"}},
			{EndpointCommand, []byte(`{"op":"stimulate","args":{"channel":0,"pulses":500,"phase_us":200,"period_us":1000,"amplitude_ua":1000,"biphasic":true,"cathodic_first":true}}`)},
		} {
			start := time.Now()
			err := Call(ctx, nc, "ctl1", ep.endpoint, ep.req, nil)
			if !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), "operator") {
				t.Errorf("%s: %s: %v, want ErrNotPermitted", c.name, ep.endpoint, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s: %s: refusal took %v", c.name, ep.endpoint, d)
			}
		}
		// Forging an estimate: refused by the server, never delivered.
		nc.Publish("spikeline.ctl1.decode.wiener", []byte("vx=999"))
		nc.Publish("spikeline.ctl1.spikes", []byte("forged"))
		nc.Flush()
		if e := nc.LastError(); !errors.Is(e, nats.ErrPermissionViolation) {
			t.Errorf("%s: forged publish: last error %v, want a permissions violation", c.name, e)
		}
		// Listening in on the control requests: refused.
		sub, err := nc.SubscribeSync("spikeline.ctl1.ctl.>")
		if err == nil {
			nc.Flush()
			if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
				t.Errorf("%s: received a control request", c.name)
			}
		}
	}
	// Nothing reached the controller, and no forged estimate a subscriber.
	r.ctl.mu.Lock()
	if r.ctl.threshold != 0 || len(r.ctl.commands) != 0 || len(r.ctl.refits) != 0 {
		t.Errorf("the controller saw threshold %g, commands %q, refits %q", r.ctl.threshold, r.ctl.commands, r.ctl.refits)
	}
	r.ctl.mu.Unlock()
	select {
	case m := <-forged:
		t.Errorf("a subscriber received a forged %s: %q", m.Subject, m.Data)
	case <-time.After(100 * time.Millisecond):
	}
	// Each refusal is an access_refused event naming subject and client.
	for _, subj := range []string{"spikeline.ctl1.ctl.threshold", "spikeline.ctl1.ctl.command", "spikeline.ctl1.decode.wiener", "spikeline.ctl1.ctl.>"} {
		waitFor(t, 5*time.Second, "access_refused event for "+subj, func() bool {
			_, ok := events.find(schema.EventAccessRefused, func(rec schema.ControlRecord) bool {
				return rec.Subject == subj && rec.Code == "permissions" && rec.Caller.Role == RoleReader && rec.Caller.Verified && !rec.Accepted
			})
			return ok
		})
	}

	// The operator can: the call reaches the controller, the record names
	// the operator as the server vouches for it.
	op := asUser(t, r.url, r.creds.Operator, "alice at the rig")
	var ok OK
	if err := Call(ctx, op, "ctl1", EndpointThreshold, ThresholdRequest{Sigma: 5}, &ok); err != nil || !ok.OK {
		t.Fatalf("operator threshold: %v", err)
	}
	var res map[string]any
	if err := Call(ctx, op, "ctl1", EndpointCommand, CommandRequest{Op: "stop"}, &res); err != nil {
		t.Fatalf("operator stop: %v", err)
	}
	// A forged identity header is replaced by the server's.
	m := nats.NewMsg("spikeline.ctl1.ctl.refit")
	m.Header.Set(RequestInfoHeader, `{"acc":"SPIKELINE_CONTROL","user":"UMALLORY","name":"mallory"}`)
	if _, err := op.RequestMsg(m, 5*time.Second); err != nil {
		t.Fatalf("operator refit: %v", err)
	}
	// A refusal by the service: 400, and a control_refused event.
	var se *ServiceError
	if err := Call(ctx, op, "ctl1", EndpointThreshold, []byte(`{"sigma":4,"extra":1}`), nil); !errors.As(err, &se) || se.Code != "400" {
		t.Errorf("unknown field: %v, want 400", err)
	}
	opPub, _ := r.creds.Operator.PublicKey()
	recs := r.audit.all()
	if len(recs) != 4 {
		t.Fatalf("audit records: %+v, want 4", recs)
	}
	for _, rec := range recs {
		c := rec.Caller
		if !c.Verified || c.Role != RoleOperator || c.User != opPub || c.Account != AccountControl || c.Name != "alice at the rig" || c.Host == "" {
			t.Errorf("record %s: caller %+v, want the verified operator", rec.Endpoint, c)
		}
	}
	if !recs[0].Accepted || recs[0].Endpoint != EndpointThreshold || recs[0].Request != `{"sigma":5}` {
		t.Errorf("record 0 = %+v", recs[0])
	}
	if recs[1].Op != "stop" || !recs[1].Accepted {
		t.Errorf("record 1 = %+v", recs[1])
	}
	if recs[3].Accepted || recs[3].Code != "400" || !strings.Contains(recs[3].Reason, "extra") {
		t.Errorf("record 3 = %+v", recs[3])
	}
	waitFor(t, 5*time.Second, "control and control_refused events", func() bool {
		_, a := events.find(schema.EventControl, func(rec schema.ControlRecord) bool { return rec.Op == "stop" && rec.Caller.Role == RoleOperator })
		_, b := events.find(schema.EventControlRefused, func(rec schema.ControlRecord) bool { return rec.Code == "400" })
		return a && b
	})
	// The operator commands but does not publish data.
	op.Publish("spikeline.ctl1.decode.wiener", []byte("x"))
	op.Flush()
	if e := op.LastError(); !errors.Is(e, nats.ErrPermissionViolation) {
		t.Errorf("operator publishing an estimate: %v, want a permissions violation", e)
	}
	// Service discovery works for the operator.
	if _, err := op.Request("$SRV.PING."+ServiceName, nil, 5*time.Second); err != nil {
		t.Errorf("operator $SRV.PING: %v", err)
	}

	// A wrong key: refused at connect, and an access_refused event.
	stranger, _ := nkeys.CreateUser()
	spub, _ := stranger.PublicKey()
	if _, err := nats.Connect(r.url, nats.Nkey(spub, stranger.Sign)); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("unknown key: %v, want an authorization violation", err)
	}
	waitFor(t, 5*time.Second, "access_refused for the unknown key", func() bool {
		_, ok := events.find(schema.EventAccessRefused, func(rec schema.ControlRecord) bool { return rec.Code == "authentication" })
		return ok
	})
}

// With ReadersNeedCredentials, a client without credentials is refused;
// the reader's key still reads.
func TestRolesNoAnonymous(t *testing.T) {
	r := startRolesRig(t, Config{ReadersNeedCredentials: true})
	if _, err := nats.Connect(r.url); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous client: %v, want an authorization violation", err)
	}
	nc := asUser(t, r.url, r.creds.Reader, "reader")
	c := newCollector()
	if _, err := NewClient(nc).Subscribe("ctl1", c.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "spikes to the reader", func() bool {
		r.pub.PublishSpikes(0, 100, 30000, nil)
		return c.nSpikes() > 0
	})
}

// With JetStream, a reader consumes the capture through a durable
// consumer, and cannot delete it or its messages.
func TestRolesJetStreamReader(t *testing.T) {
	r := startRolesRig(t, Config{JetStream: true, StoreDir: t.TempDir()})
	for i := range 5 {
		r.pub.PublishSpikes(uint64(i)*100, uint64(i+1)*100, 30000, nil)
	}
	nc := asUser(t, r.url, r.creds.Reader, "reader")
	c := newCollector()
	sub, err := NewClient(nc).SubscribeDurable(context.Background(), "ctl1", "notebook", c.handler(), DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	waitFor(t, 5*time.Second, "captured spikes to a reader's durable consumer", func() bool { return c.nSpikes() >= 5 })
	// The server refuses the API requests (the client then times out).
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := js.DeleteStream(ctx, StreamName("ctl1")); err == nil {
		t.Error("a reader deleted the capture")
	}
	if e := nc.LastError(); !errors.Is(e, nats.ErrPermissionViolation) || !strings.Contains(e.Error(), "STREAM.DELETE") {
		t.Errorf("deleting the capture: %v, want a permissions violation", e)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := nc.RequestWithContext(ctx2, "$JS.API.STREAM.PURGE."+StreamName("ctl1"), nil); err == nil {
		t.Error("a reader purged the capture")
	}
	if e := nc.LastError(); !errors.Is(e, nats.ErrPermissionViolation) || !strings.Contains(e.Error(), "STREAM.PURGE") {
		t.Errorf("purging the capture: %v, want a permissions violation", e)
	}
}

// The behaviour publisher (and the operator) publish behaviour; readers
// cannot.
func TestRolesBehaviour(t *testing.T) {
	r := startRolesRig(t, Config{BehaviourSubject: "tracker.velocity"})
	got := make(chan *nats.Msg, 16)
	if _, err := r.pub.Conn().ChanSubscribe("tracker.velocity", got); err != nil {
		t.Fatal(err)
	}
	r.pub.Conn().Flush()
	for _, c := range []struct {
		name string
		kp   nkeys.KeyPair
		ok   bool
	}{{"behaviour", r.creds.Behaviour, true}, {"operator", r.creds.Operator, true}, {"anonymous", nil, false}, {"reader", r.creds.Reader, false}} {
		nc := asUser(t, r.url, c.kp, c.name)
		nc.Publish("tracker.velocity", []byte(c.name))
		nc.Flush()
		select {
		case m := <-got:
			if !c.ok || string(m.Data) != c.name {
				t.Errorf("%s: the pipeline got %q", c.name, m.Data)
			}
		case <-time.After(300 * time.Millisecond):
			if c.ok {
				t.Errorf("%s: behaviour not delivered", c.name)
			}
		}
	}
	// The behaviour key publishes nothing else.
	nc := asUser(t, r.url, r.creds.Behaviour, "tracker")
	nc.Publish("spikeline.ctl1.decode.behaviour", []byte("x"))
	nc.Flush()
	if e := nc.LastError(); !errors.Is(e, nats.ErrPermissionViolation) {
		t.Errorf("behaviour key publishing an estimate: %v", e)
	}
}
