package stream

import (
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/stream/schema"
)

// The server's log lines for refused clients (nats-server v2.15) are
// recognised; others are not.
func TestParseRefusal(t *testing.T) {
	for _, c := range []struct {
		line           string
		kind, subject  string
		clientContains string
	}{
		{`127.0.0.1:5555 - cid:9 - "v1.55.0:go:tap" - "SPIKELINE/nkey:UABC" - Publish Violation - Subject "spikeline.rig0.ctl.command"`,
			RefusedPublish, "spikeline.rig0.ctl.command", `cid:9 - "v1.55.0:go:tap"`},
		{`127.0.0.1:5555 - cid:9 - Subscription Violation - Subject "spikeline.rig0.ctl.>", SID 3`,
			RefusedSubscribe, "spikeline.rig0.ctl.>", "cid:9"},
		{`127.0.0.1:5555 - cid:9 - Publish Violation - Reply "_INBOX.x"`, RefusedPublish, "_INBOX.x", "cid:9"},
		{`127.0.0.1:5555 - cid:12 - authentication error - User "UXYZ"`, RefusedAuthentication, "", "cid:12"},
	} {
		r, ok := parseRefusal(c.line)
		if !ok || r.Kind != c.kind || r.Subject != c.subject || !strings.Contains(r.Client, c.clientContains) || r.Line != c.line {
			t.Errorf("parseRefusal(%q) = %+v, %v", c.line, r, ok)
		}
	}
	if _, ok := parseRefusal(`Error listening on port: 4222`); ok {
		t.Error("an ordinary error taken for a refusal")
	}
}

// The server's description of a refused client becomes the record's
// caller.
func TestCallerFromClient(t *testing.T) {
	roles := map[string]string{"UREADER": RoleReader}
	c := callerFromClient(`127.0.0.1:34784 - cid:10 - "v1.55.0:go:mallory" - "SPIKELINE/nkey:UREADER"`, roles)
	want := schema.Caller{Verified: true, Account: "SPIKELINE", User: "UREADER", Role: RoleReader, Name: "mallory", Host: "127.0.0.1", ID: 10}
	if c != want {
		t.Errorf("caller %+v, want %+v", c, want)
	}
	c = callerFromClient(`[::1]:5555 - cid:3 - "SPIKELINE_CONTROL/alice"`, roles)
	if c.Host != "::1" || c.User != "alice" || c.Account != "SPIKELINE_CONTROL" || c.ID != 3 {
		t.Errorf("caller %+v", c)
	}
	if c := callerFromClient(`127.0.0.1:5555 - cid:12`, roles); c.Verified || c.ID != 12 || c.Host != "127.0.0.1" {
		t.Errorf("caller before CONNECT %+v", c)
	}
}

// Alike refusals make one record per RefusalEvery, with the count.
func TestRefusalLimiter(t *testing.T) {
	var l refusalLimiter
	t0 := time.Unix(100, 0)
	r := Refusal{Kind: RefusedPublish, Subject: "spikeline.r.spikes", Client: "cid:1"}
	if ok, n := l.admit(r, t0); !ok || n != 1 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for i := 1; i < 100; i++ {
		if ok, _ := l.admit(r, t0.Add(time.Duration(i)*50*time.Millisecond)); ok {
			t.Fatalf("refusal %d let through within the interval", i)
		}
	}
	other := r
	other.Client = "cid:2"
	if ok, _ := l.admit(other, t0.Add(time.Second)); !ok {
		t.Fatal("another client's refusal held back")
	}
	if ok, n := l.admit(r, t0.Add(RefusalEvery)); !ok || n != 100 {
		t.Fatalf("after the interval: %v %d, want the 100 refusals since the first", ok, n)
	}
}

// A control record survives the events message both ways.
func TestControlRecordEvent(t *testing.T) {
	rec := schema.ControlRecord{Time: time.Unix(5, 0).UTC(), Endpoint: EndpointCommand, Op: "stimulate",
		Request: `{"op":"stimulate"}`, Caller: schema.Caller{Verified: true, Account: AccountControl, User: "UOP", Role: RoleOperator},
		Code: "403", Reason: "not armed"}
	e := rec.Event(1234, 3)
	if e.Kind != schema.EventControlRefused || e.Sample != 1234 || e.Channel != 3 {
		t.Fatalf("event %+v", e)
	}
	b := &schema.EventBatch{Header: schema.Header{Sample: 1234, Rate: 30000}, Events: []schema.Event{e}}
	data, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back schema.EventBatch
	if err := back.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	got, err := schema.ParseControlRecord(back.Events[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.V != schema.ControlRecordVersion || got.Caller != rec.Caller || got.Reason != "not armed" || got.Op != "stimulate" {
		t.Errorf("record back %+v", got)
	}
	if back.Events[0].Kind.String() != "control_refused" {
		t.Errorf("kind name %q", back.Events[0].Kind)
	}
	rec.Accepted, rec.Code, rec.Reason = true, "", ""
	if k := rec.Event(0, -1).Kind; k != schema.EventControl {
		t.Errorf("accepted call: %v", k)
	}
	if k := RefusalRecord(Refusal{Kind: RefusedAuthentication}, time.Now(), nil).Event(0, -1).Kind; k != schema.EventAccessRefused {
		t.Errorf("server refusal: %v", k)
	}
	if _, err := schema.ParseControlRecord(schema.Event{Kind: schema.EventThreshold}); err == nil {
		t.Error("a gap event parsed as a control record")
	}
	long := quoteRequest([]byte(strings.Repeat("é", 2000)))
	if len(long) > maxRecordRequest+len("…") || !strings.HasSuffix(long, "…") {
		t.Errorf("long request quoted as %d bytes", len(long))
	}
}
