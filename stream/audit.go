package stream

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ControlRecordVersion is the version of ControlRecord written ("v").
const ControlRecordVersion = 1

// maxRecordRequest bounds the request quoted in a ControlRecord, in bytes.
const maxRecordRequest = 1024

// Caller is who made a control request. With Verified set, the NATS
// server vouches for it: it stamped the request with the caller's account,
// user and connection (the Nats-Request-Info header, which the server
// writes when a request crosses from the caller's account into the
// pipeline's through a service import, replacing anything the client
// sent). Without it, the request came from inside the pipeline's own
// account and the fields are empty.
type Caller struct {
	Verified bool   `json:"verified"`
	Account  string `json:"account,omitempty"`
	User     string `json:"user,omitempty"` // user name or NKey public key
	Role     string `json:"role,omitempty"` // RoleOperator etc., when User is a key spikeline made
	Name     string `json:"name,omitempty"` // the connection name the client gave
	Host     string `json:"host,omitempty"` // the client's IP address
	ID       uint64 `json:"cid,omitempty"`  // the server's client id
}

func (c Caller) String() string {
	if !c.Verified {
		return "unverified caller (no identity from the NATS server)"
	}
	s := c.Account + "/" + c.User
	if c.Role != "" {
		s = c.Role + " " + s
	}
	if c.Name != "" {
		s += fmt.Sprintf(" %q", c.Name)
	}
	if c.Host != "" {
		s += " from " + c.Host
	}
	return s
}

// requestInfo is the part of nats-server's ClientInfo header we use.
type requestInfo struct {
	Account string `json:"acc"`
	User    string `json:"user"`
	Name    string `json:"name"`
	Host    string `json:"host"`
	ID      uint64 `json:"id"`
}

// RequestInfoHeader is the header nats-server stamps requests with when
// they cross accounts through a service import with share: true.
const RequestInfoHeader = "Nats-Request-Info"

// callerFrom reads the caller of a request from its headers.
func callerFrom(h map[string][]string, roles map[string]string) Caller {
	v := h[RequestInfoHeader]
	if len(v) == 0 {
		return Caller{}
	}
	var ri requestInfo
	if json.Unmarshal([]byte(v[0]), &ri) != nil || ri.Account == "" {
		return Caller{}
	}
	return Caller{Verified: true, Account: ri.Account, User: ri.User, Role: roles[ri.User], Name: ri.Name, Host: ri.Host, ID: ri.ID}
}

// ControlRecord is the audit record of one control call (or one client the
// NATS server refused): who, what, whether it was carried out, and why
// not. It rides as JSON in the Detail of a control, control_refused or
// access_refused event, and in the log.
type ControlRecord struct {
	V        int       `json:"v"`
	Time     time.Time `json:"time"`
	Endpoint string    `json:"endpoint,omitempty"` // refit, threshold, command ("" for a server refusal)
	Op       string    `json:"op,omitempty"`       // the device command
	Request  string    `json:"request,omitempty"`  // the request as sent (at most 1 KiB, then "…")
	Caller   Caller    `json:"caller"`
	Accepted bool      `json:"accepted"`
	Code     string    `json:"code,omitempty"`   // the service error code of a refusal (400, 403, 500), or the server's: permissions, authentication
	Reason   string    `json:"reason,omitempty"` // why it was refused, in words
	// Server refusals only: the subject, the server's description of the
	// client, and how many refusals alike (same kind, client and subject)
	// this record stands for: at most one record per RefusalEvery is
	// published for them.
	Subject string `json:"subject,omitempty"`
	Client  string `json:"client,omitempty"`
	Count   int    `json:"count,omitempty"`
}

// RefusalEvery is the shortest interval between two records of alike
// server refusals: a client retrying in a loop makes one record per
// interval, with the count, not one per attempt.
const RefusalEvery = 10 * time.Second

// refusalLimiter folds alike refusals into one record per RefusalEvery.
type refusalLimiter struct {
	mu   sync.Mutex
	seen map[string]*refusalState
}

type refusalState struct {
	last   time.Time // when a record was last let through
	folded int       // refusals since, not yet reported
}

// admit returns whether a record of r should go out now and how many
// refusals it stands for.
func (l *refusalLimiter) admit(r Refusal, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]*refusalState{}
	}
	key := r.Kind + "\x00" + r.Subject + "\x00" + r.Client
	st := l.seen[key]
	if st == nil {
		if len(l.seen) > 4096 { // forget old clients rather than grow
			for k, v := range l.seen {
				if now.Sub(v.last) >= RefusalEvery {
					delete(l.seen, k)
				}
			}
		}
		l.seen[key] = &refusalState{last: now}
		return true, 1
	}
	st.folded++
	if now.Sub(st.last) < RefusalEvery {
		return false, 0
	}
	n := st.folded
	st.last, st.folded = now, 0
	return true, n
}

// quoteRequest returns data as it goes into a record: valid UTF-8, at
// most maxRecordRequest bytes.
func quoteRequest(data []byte) string {
	s := strings.ToValidUTF8(string(data), "\uFFFD")
	if len(s) > maxRecordRequest {
		cut := maxRecordRequest
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// Event returns r as an event at sample: control, control_refused, or
// access_refused for a server refusal. channel is the electrode concerned
// (-1: none).
func (r ControlRecord) Event(sample uint64, channel int32) Event {
	kind := EventControl
	switch {
	case r.Endpoint == "" && !r.Accepted:
		kind = EventAccessRefused
	case !r.Accepted:
		kind = EventControlRefused
	}
	if r.V == 0 {
		r.V = ControlRecordVersion
	}
	d, _ := json.Marshal(r)
	return Event{Kind: kind, Sample: sample, Unit: -1, Channel: channel, Detail: string(d)}
}

// ParseControlRecord decodes the Detail of a control, control_refused or
// access_refused event.
func ParseControlRecord(e Event) (ControlRecord, error) {
	var r ControlRecord
	switch e.Kind {
	case EventControl, EventControlRefused, EventAccessRefused:
	default:
		return r, fmt.Errorf("stream: a %s event carries no control record", e.Kind)
	}
	if err := json.Unmarshal([]byte(e.Detail), &r); err != nil {
		return r, fmt.Errorf("stream: %s event: control record: %w", e.Kind, err)
	}
	if r.V < 1 {
		return r, fmt.Errorf("stream: %s event: control record version %d", e.Kind, r.V)
	}
	return r, nil
}

// callerFromClient reads the caller out of nats-server's description of
// a client in its log lines, `127.0.0.1:5555 - cid:9 - "v1.55.0:go:name" -
// "ACCOUNT/nkey:U…"` (the quoted parts once the client has sent CONNECT,
// either of them may be missing). The server vouches for it: it
// authenticated the connection.
func callerFromClient(client string, roles map[string]string) Caller {
	var c Caller
	parts := strings.Split(client, " - ")
	if len(parts) < 2 || !strings.HasPrefix(parts[1], "cid:") {
		return c
	}
	if host, _, err := net.SplitHostPort(parts[0]); err == nil {
		c.Host = host
	}
	c.ID, _ = strconv.ParseUint(strings.TrimPrefix(parts[1], "cid:"), 10, 64)
	for _, q := range parts[2:] {
		q, err := strconv.Unquote(q)
		if err != nil {
			continue
		}
		if acc, user, ok := strings.Cut(q, "/"); ok && !strings.Contains(acc, ":") {
			c.Account, c.User = acc, strings.TrimPrefix(user, "nkey:")
			c.Role, c.Verified = roles[c.User], true
		} else if f := strings.SplitN(q, ":", 3); len(f) == 3 {
			c.Name = f[2]
		} else {
			c.Name = q
		}
	}
	return c
}

// RefusalRecord is the record of a client the server refused; roles
// names the roles of known users.
func RefusalRecord(r Refusal, at time.Time, roles map[string]string) ControlRecord {
	code := "permissions"
	reason := "the server refused a " + r.Kind + " on " + r.Subject + ": the client's role does not allow it"
	if r.Kind == RefusedAuthentication {
		code, reason = "authentication", "the server refused the client's credentials"
	}
	return ControlRecord{V: ControlRecordVersion, Time: at, Code: code, Reason: reason, Subject: r.Subject, Client: r.Client,
		Caller: callerFromClient(r.Client, roles)}
}
