package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

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
	Stats() Status
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
// JSON; errors come back as NATS service errors (headers
// Nats-Service-Error and Nats-Service-Error-Code: 400 for a bad request,
// 500 when the controller fails). Stop the returned service to remove it.
func StartService(nc *nats.Conn, rig string, c Controller, opt ServiceOptions) (micro.Service, error) {
	subj, err := NewSubjects(rig)
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
	errs := []error{
		add(EndpointInfo, "pipeline description (Info)", func(r micro.Request) {
			r.RespondJSON(c.Info())
		}),
		add(EndpointStats, "latest status (as on the status subject, JSON)", func(r micro.Request) {
			st := c.Stats()
			r.RespondJSON(&st)
		}),
		add(EndpointRefit, `refit a decoder: {"model":"name"} or empty for all`, func(r micro.Request) {
			var req RefitRequest
			if len(strings.TrimSpace(string(r.Data()))) > 0 {
				if err := json.Unmarshal(r.Data(), &req); err != nil {
					r.Error("400", "refit: request: "+err.Error(), nil)
					return
				}
			}
			if req.Model != "" {
				if err := ValidToken(req.Model); err != nil {
					r.Error("400", "refit: model: "+err.Error(), nil)
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), opt.RefitTimeout)
			defer cancel()
			if err := c.Refit(ctx, req.Model); err != nil {
				r.Error("500", "refit: "+err.Error(), nil)
				return
			}
			r.RespondJSON(OK{true})
		}),
		add(EndpointThreshold, `set the detection threshold in noise SDs: {"sigma":4.5} or 4.5`, func(r micro.Request) {
			sigma, err := parseThreshold(r.Data())
			if err != nil {
				r.Error("400", "threshold: "+err.Error(), nil)
				return
			}
			if err := c.SetThreshold(sigma); err != nil {
				r.Error("500", "threshold: "+err.Error(), nil)
				return
			}
			r.RespondJSON(OK{true})
		}),
		add(EndpointCommand, `headstage command: {"op":"start|stop|stimulate|...","args":{...}}`, func(r micro.Request) {
			var req CommandRequest
			if err := json.Unmarshal(r.Data(), &req); err != nil {
				r.Error("400", "command: request: "+err.Error(), nil)
				return
			}
			if err := ValidToken(req.Op); err != nil {
				r.Error("400", "command: op: "+err.Error(), nil)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), opt.CommandTimeout)
			defer cancel()
			res, err := c.DeviceCommand(ctx, req.Op, req.Args)
			if err != nil {
				r.Error("500", "command "+req.Op+": "+err.Error(), nil)
				return
			}
			if res == nil {
				res = OK{true}
			}
			if err := r.RespondJSON(res); err != nil {
				r.Error("500", "command "+req.Op+": result: "+err.Error(), nil)
			}
		}),
	}
	if err := errors.Join(errs...); err != nil {
		svc.Stop()
		return nil, fmt.Errorf("stream: control service: %w", err)
	}
	return svc, nil
}

func parseThreshold(b []byte) (float64, error) {
	s := strings.TrimSpace(string(b))
	var sigma float64
	if strings.HasPrefix(s, "{") {
		var req ThresholdRequest
		if err := json.Unmarshal(b, &req); err != nil {
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

// Call sends req (JSON-encoded; nil sends an empty body; []byte is sent as
// is) to endpoint of rig's control service and decodes the JSON reply into
// resp (if not nil). An error reply becomes a *ServiceError.
func Call(ctx context.Context, nc *nats.Conn, rig, endpoint string, req, resp any) error {
	subj, err := NewSubjects(rig)
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
	msg, err := nc.RequestWithContext(ctx, subj.Control()+"."+endpoint, body)
	if err != nil {
		return fmt.Errorf("stream: %s: %w", endpoint, err)
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
