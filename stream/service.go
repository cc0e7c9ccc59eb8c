package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ServiceName is the name the control service registers under; find every
// rig's service with "nats micro ls" or a request to $SRV.PING.spikeline.
const ServiceName = "spikeline"

// Control endpoints, under spikeline.<rig>.ctl.
const (
	EndpointInfo      = "info"
	EndpointStats     = "stats"
	EndpointRefit     = "refit"
	EndpointThreshold = "threshold"
	EndpointCommand   = "command"
)

// Info describes a running pipeline (the info endpoint's reply).
type Info struct {
	Rig       string         `json:"rig"`
	Version   string         `json:"version"`
	Device    string         `json:"device"`          // e.g. "serial:/dev/ttyACM0", "sim", "file:rec.bin"
	Channels  int            `json:"channels"`        // probe channels
	Rate      float64        `json:"sample_rate"`     // Hz
	Gain      float64        `json:"gain_uv_per_bit"` // µV per count
	Threshold float64        `json:"threshold"`       // detection threshold in noise SDs
	Models    []string       `json:"models"`          // decoder models publishing on decode.<model>
	Started   time.Time      `json:"started"`         // host time the pipeline started
	Extra     map[string]any `json:"extra,omitempty"` // anything else worth showing
}

// Controller is what the control service asks of the pipeline. The
// pipeline (spikeline run) implements it; methods are called from NATS
// goroutines, possibly concurrently with each other.
type Controller interface {
	// Info describes the pipeline.
	Info() Info
	// Stats returns the latest status, as published on the status subject.
	Stats() schema.Status
	// Refit refits the named decoder model ("" = all) on recent data.
	Refit(ctx context.Context, model string) error
	// SetThreshold changes the detection threshold, in noise SDs.
	SetThreshold(sigma float64) error
	// DeviceCommand sends a command (start, stop, stimulate, ...) to the
	// headstage; args are the command's JSON arguments (may be empty). The
	// result is returned to the caller as JSON.
	DeviceCommand(ctx context.Context, op string, args json.RawMessage) (any, error)
}

// ServiceOptions tune StartService.
type ServiceOptions struct {
	Version        string        // semantic version of spikeline; default "0.0.0"
	RefitTimeout   time.Duration // default 2 min
	CommandTimeout time.Duration // default 10 s
	// Audit receives the record of every control call (refit, threshold,
	// command), carried out or refused, after it is answered; info and
	// stats are reads and are not recorded. It runs on a NATS goroutine.
	Audit func(schema.ControlRecord)
	// Roles names the roles of known users (NKey public key → role), for
	// the records.
	Roles map[string]string
	// RequireVerified refuses (403) control calls whose caller the NATS
	// server does not identify (no Nats-Request-Info: the request did not
	// come through the control account's service import). The embedded
	// server's layout always identifies operators.
	RequireVerified bool
}

// MaxRequest is the largest control request accepted, in bytes.
const MaxRequest = 64 << 10

// ControlError is a Controller's error that says how the service answers
// it: Code "400" for a bad request, "403" for a refusal (not allowed,
// outside the stimulation limits). Other errors answer "500".
type ControlError struct {
	Code string
	Err  error
}

func (e *ControlError) Error() string { return e.Err.Error() }
func (e *ControlError) Unwrap() error { return e.Err }

// BadRequest marks err as the caller's mistake (400).
func BadRequest(err error) error { return &ControlError{Code: "400", Err: err} }

// Refused marks err as a refusal (403).
func Refused(err error) error { return &ControlError{Code: "403", Err: err} }

// strictJSON decodes data into v, refusing unknown fields and trailing
// data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the request")
	}
	return nil
}

// ThresholdRequest is the threshold endpoint's request; a bare number
// ("4.5") is accepted too.
type ThresholdRequest struct {
	Sigma float64 `json:"sigma"`
}

// RefitRequest is the refit endpoint's request; an empty body refits all
// models.
type RefitRequest struct {
	Model string `json:"model,omitempty"`
}

// CommandRequest is the command endpoint's request.
type CommandRequest struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// OK is the reply of refit and threshold on success.
type OK struct {
	OK bool `json:"ok"`
}

// MaxThreshold is the largest detection threshold accepted, in noise SDs.
const MaxThreshold = 100

// StartService starts the control service of rig on nc with endpoints
// spikeline.<rig>.ctl.{info,stats,refit,threshold,command}, discoverable
// through $SRV.PING, $SRV.INFO and $SRV.STATS. Requests and replies are
// JSON (unknown fields are refused); errors come back as NATS service
// errors (headers Nats-Service-Error and Nats-Service-Error-Code: 400 for
// a bad request, 403 for a refusal, 500 when the controller fails). Every
// control call goes to opt.Audit. Stop the returned service to remove it.
func StartService(nc *nats.Conn, rig string, c Controller, opt ServiceOptions) (micro.Service, error) {
	subj, err := schema.NewSubjects(rig)
	if err != nil {
		return nil, err
	}
	if opt.Version == "" {
		opt.Version = "0.0.0"
	}
	if opt.RefitTimeout == 0 {
		opt.RefitTimeout = 2 * time.Minute
	}
	if opt.CommandTimeout == 0 {
		opt.CommandTimeout = 10 * time.Second
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     opt.Version,
		Description: "spikeline control and info for rig " + rig,
		Metadata:    map[string]string{"rig": rig},
	})
	if err != nil {
		return nil, fmt.Errorf("stream: control service: %w", err)
	}
	g := svc.AddGroup(subj.Control(), micro.WithGroupQueueGroupDisabled())
	add := func(name, desc string, h micro.HandlerFunc) error {
		return g.AddEndpoint(name, h, micro.WithEndpointMetadata(map[string]string{"description": desc}))
	}
	// control wraps the handler of an endpoint that changes something: it
	// checks the caller and the size, answers, and records the call.
	control := func(endpoint string, h func(data []byte, rec *schema.ControlRecord) (any, error)) micro.HandlerFunc {
		return func(r micro.Request) {
			rec := schema.ControlRecord{V: schema.ControlRecordVersion, Time: time.Now().UTC(), Endpoint: endpoint,
				Request: quoteRequest(r.Data()), Caller: callerFrom(r.Headers(), opt.Roles)}
			var res any
			var err error
			switch {
			case len(r.Data()) > MaxRequest:
				err = BadRequest(fmt.Errorf("request of %d bytes, at most %d", len(r.Data()), MaxRequest))
			case opt.RequireVerified && !rec.Caller.Verified:
				err = Refused(errors.New("the caller is not identified by the NATS server: control calls come through the control account (the operator credential)"))
			default:
				res, err = h(r.Data(), &rec)
			}
			code := "500"
			var ce *ControlError
			if errors.As(err, &ce) {
				code = ce.Code
			}
			// The record is audited before the caller hears back, so a
			// reply always has its audit record behind it.
			if err != nil {
				rec.Code, rec.Reason = code, err.Error()
			} else {
				rec.Accepted = true
			}
			if opt.Audit != nil {
				opt.Audit(rec)
			}
			if err != nil {
				r.Error(code, endpoint+": "+err.Error(), nil)
			} else {
				if res == nil {
					res = OK{true}
				}
				if rerr := r.RespondJSON(res); rerr != nil {
					r.Error("500", endpoint+": result: "+rerr.Error(), nil)
				}
			}
		}
	}
	errs := []error{
		add(EndpointInfo, "pipeline description (Info)", func(r micro.Request) {
			r.RespondJSON(c.Info())
		}),
		add(EndpointStats, "latest status (as on the status subject, JSON)", func(r micro.Request) {
			st := c.Stats()
			r.RespondJSON(&st)
		}),
		add(EndpointRefit, `refit a decoder: {"model":"name"} or empty for all`, control(EndpointRefit, func(data []byte, rec *schema.ControlRecord) (any, error) {
			var req RefitRequest
			if len(strings.TrimSpace(string(data))) > 0 {
				if err := strictJSON(data, &req); err != nil {
					return nil, BadRequest(fmt.Errorf("request: %v", err))
				}
			}
			if req.Model != "" {
				if err := schema.ValidToken(req.Model); err != nil {
					return nil, BadRequest(fmt.Errorf("model: %v", err))
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), opt.RefitTimeout)
			defer cancel()
			return nil, c.Refit(ctx, req.Model)
		})),
		add(EndpointThreshold, `set the detection threshold in noise SDs: {"sigma":4.5} or 4.5`, control(EndpointThreshold, func(data []byte, rec *schema.ControlRecord) (any, error) {
			sigma, err := parseThreshold(data)
			if err != nil {
				return nil, BadRequest(err)
			}
			return nil, c.SetThreshold(sigma)
		})),
		add(EndpointCommand, `headstage command: {"op":"start|stop|stimulate|...","args":{...}}`, control(EndpointCommand, func(data []byte, rec *schema.ControlRecord) (any, error) {
			var req CommandRequest
			if err := strictJSON(data, &req); err != nil {
				return nil, BadRequest(fmt.Errorf("request: %v", err))
			}
			if err := schema.ValidToken(req.Op); err != nil {
				return nil, BadRequest(fmt.Errorf("op: %v", err))
			}
			rec.Op = req.Op
			ctx, cancel := context.WithTimeout(context.Background(), opt.CommandTimeout)
			defer cancel()
			res, err := c.DeviceCommand(ctx, req.Op, req.Args)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", req.Op, err)
			}
			return res, nil
		})),
	}
	if err := errors.Join(errs...); err != nil {
		svc.Stop()
		return nil, fmt.Errorf("stream: control service: %w", err)
	}
	// The server knows the endpoints once their subscriptions are
	// flushed: then the service answers when StartService returns.
	if nc.IsConnected() {
		nc.Flush()
	}
	return svc, nil
}

func parseThreshold(b []byte) (float64, error) {
	s := strings.TrimSpace(string(b))
	var sigma float64
	if strings.HasPrefix(s, "{") {
		var req ThresholdRequest
		if err := strictJSON(b, &req); err != nil {
			return 0, fmt.Errorf("request: %v", err)
		}
		sigma = req.Sigma
	} else {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf(`request %q: want {"sigma":N} or a number`, s)
		}
		sigma = v
	}
	if math.IsNaN(sigma) || sigma <= 0 || sigma > MaxThreshold {
		return 0, fmt.Errorf("sigma %g outside (0, %d]", sigma, MaxThreshold)
	}
	return sigma, nil
}

// ServiceError is an error reply from the control service.
type ServiceError struct {
	Endpoint    string
	Code        string
	Description string
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("stream: %s: service error %s: %s", e.Endpoint, e.Code, e.Description)
}

// ErrNotPermitted is wrapped by Call's error when the NATS server refused
// the request (a permissions violation): the connection's credential does
// not allow calling this endpoint.
var ErrNotPermitted = errors.New("not permitted by the NATS server")

// Call sends req (JSON-encoded; nil sends an empty body; []byte is sent as
// is) to endpoint of rig's control service and decodes the JSON reply into
// resp (if not nil). An error reply becomes a *ServiceError; a request the
// NATS server refuses (the credential's role does not allow it) an error
// wrapping ErrNotPermitted, at once rather than at the timeout.
func Call(ctx context.Context, nc *nats.Conn, rig, endpoint string, req, resp any) error {
	subj, err := schema.NewSubjects(rig)
	if err != nil {
		return err
	}
	var body []byte
	switch r := req.(type) {
	case nil:
	case []byte:
		body = r
	default:
		if body, err = json.Marshal(req); err != nil {
			return fmt.Errorf("stream: %s: request: %w", endpoint, err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	subject := subj.Control() + "." + endpoint
	before := nc.LastError()
	refused := func() error {
		if e := nc.LastError(); e != before && errors.Is(e, nats.ErrPermissionViolation) {
			before = e
			return fmt.Errorf("stream: %s: %w: %v (control calls need the operator credential)", endpoint, ErrNotPermitted, e)
		}
		return nil
	}
	sub, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		return fmt.Errorf("stream: %s: %w", endpoint, err)
	}
	defer sub.Unsubscribe()
	m := nats.NewMsg(subject)
	m.Reply, m.Data = sub.Subject, body
	if err := nc.PublishMsg(m); err != nil {
		return fmt.Errorf("stream: %s: %w", endpoint, err)
	}
	// The server answers a refused publish or subscription with an error
	// before the flush's PONG.
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("stream: %s: %w", endpoint, err)
	}
	if err := refused(); err != nil {
		return err
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		if perr := refused(); perr != nil {
			return perr
		}
		return fmt.Errorf("stream: %s: %w", endpoint, err)
	}
	if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
		return fmt.Errorf("stream: %s: %w (no control service for rig %s)", endpoint, nats.ErrNoResponders, rig)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &ServiceError{Endpoint: endpoint, Code: code, Description: msg.Header.Get(micro.ErrorHeader)}
	}
	if resp != nil {
		if err := json.Unmarshal(msg.Data, resp); err != nil {
			return fmt.Errorf("stream: %s: reply: %w", endpoint, err)
		}
	}
	return nil
}
