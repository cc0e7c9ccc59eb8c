package schema

import (
	"encoding/json"
	"fmt"
	"time"
)

// ControlRecordVersion is the version of ControlRecord written ("v").
const ControlRecordVersion = 1

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
