package rig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

// describeLimits says in one line what a guard lets through.
func describeLimits(l device.StimLimits) string {
	s := fmt.Sprintf("≤ %g µA, ≤ %d µs per phase, ≤ %g nC per phase, ", l.MaxAmplitudeUA, l.MaxPhaseUs, l.MaxChargeNC)
	if l.AllowMonophasic {
		s += "monophasic allowed, "
	} else {
		s += "biphasic charge-balanced only, "
	}
	s += fmt.Sprintf("≤ %g Hz, ≤ %d pulses, trains ≤ %g ms, duty ≤ %g per electrode and ≤ %g in total over %g s",
		l.MaxRateHz, l.MaxPulses, l.MaxTrainMs, l.MaxChannelDuty, l.MaxTotalDuty, l.DutyWindowS)
	if l.ElectrodeAreaUm2 > 0 {
		s += fmt.Sprintf(", Shannon k ≤ %g on %g µm²", l.ShannonK, l.ElectrodeAreaUm2)
	}
	if len(l.Channels) > 0 {
		s += fmt.Sprintf(", electrodes %v only", l.Channels)
	}
	return s
}

// armStimulation gives the source its guard once the device's channel
// count is known, or refuses a device that takes no commands.
func (p *Rig) armStimulation(channels int) error {
	limits, file := p.cfg.StimLimits, p.cfg.StimLimitsFile
	if limits == nil {
		return nil
	}
	if _, ok := p.src.Source.(device.Commander); !ok {
		return fmt.Errorf("--allow-stimulation: device %s takes no commands (stimulation needs serial:, usb:, tcp:, sim:pty or sim:tcp)", p.src.name)
	}
	g, err := device.NewStimGuard(*limits, channels, nil)
	if err != nil {
		return fmt.Errorf("--stim-limits %s: %w", file, err)
	}
	p.src.stim = g
	fmt.Fprintf(p.stdout, "spikeline: stimulation ARMED (%s): %s\n", file, describeLimits(g.Limits()))
	if loose := limits.Loosened(); len(loose) > 0 {
		p.log.Warn("stimulation limits looser than the defaults", "file", file, "limits", strings.Join(loose, "; "))
	}
	return nil
}

// stimulate carries out a stimulate command: refused unless armed,
// decoded strictly, checked against the limits, then sent.
func (s *openSource) stimulate(ctx context.Context, args json.RawMessage) (any, error) {
	if s.stim == nil {
		return nil, stream.Refused(errors.New("stimulation is not armed: start spikeline run with --allow-stimulation and --stim-limits FILE"))
	}
	st, r, err := s.stim.Stimulate(ctx, s.Source.(device.Commander), args)
	var se *device.StimError
	if errors.As(err, &se) {
		// The service says "command: stimulate: "; the field and reason
		// are what the caller needs.
		short := errors.New(strings.TrimPrefix(se.Error(), "device: stimulate: "))
		if errors.Is(err, device.ErrStimRequest) {
			return nil, stream.BadRequest(short)
		}
		return nil, stream.Refused(short)
	}
	if err != nil {
		return nil, err
	}
	if s.onStim != nil {
		s.onStim(st, r.Counter)
	}
	return map[string]any{"ok": true, "stim": st, "device_counter": r.Counter}, nil
}

// checkCommandArgs refuses arguments to a device command that takes none:
// a field that would be ignored is refused, never dropped.
func checkCommandArgs(op string, args json.RawMessage) error {
	switch op {
	case "start", "stop", "info", "ping":
		if a := strings.TrimSpace(string(args)); a != "" && a != "null" && a != "{}" {
			return stream.BadRequest(fmt.Errorf("%s takes no arguments, got %.100s", op, a))
		}
	}
	return nil
}

// strictArgs decodes a device command's arguments, refusing unknown
// fields and trailing data.
func strictArgs(args json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the arguments")
	}
	return nil
}

// audit logs a control call and publishes it on the events subject.
func (p *Rig) audit(rec schema.ControlRecord) {
	channel := int32(-1)
	if rec.Op == "stimulate" {
		var req stream.CommandRequest
		if json.Unmarshal([]byte(rec.Request), &req) == nil {
			if st, err := device.ParseStim(req.Args); err == nil {
				channel = int32(st.Channel)
			}
		}
	}
	args := []any{"endpoint", rec.Endpoint, "op", rec.Op, "caller", rec.Caller.String(), "request", rec.Request}
	if rec.Accepted {
		p.log.Info("control call carried out", args...)
	} else {
		p.log.Warn("control call refused", append(args, "code", rec.Code, "reason", rec.Reason)...)
	}
	p.pub.PublishControl(rec, channel)
}

// saveCredentials writes the embedded server's credentials for the user's
// tools (printAccess says where). The returned function removes them at
// the end of the run.
func (p *Rig) saveCredentials() (func(), error) {
	creds := p.pub.Credentials()
	if creds == nil {
		return func() {}, nil
	}
	rig := p.pub.Subjects().Rig()
	dir, err := stream.CredentialsDir(rig)
	if err != nil {
		return nil, err
	}
	if old, err := stream.ReadRunFile(dir); err == nil && old.PID != os.Getpid() && old.Alive() {
		return nil, fmt.Errorf("rig %s is already run by process %d (%s): stop it or give another --rig", rig, old.PID, filepath.Join(dir, stream.RunFileName))
	}
	rf, err := creds.Save(dir, stream.RunFile{Rig: rig, URL: p.pub.ServerURL(), PID: os.Getpid(), Started: time.Now().UTC(),
		AnonymousRead: !p.cfg.NoAnonymous})
	if err != nil {
		return nil, err
	}
	p.runFile, p.credDir = rf, dir
	return func() {
		if err := stream.RemoveCredentials(dir, rf); err != nil {
			p.log.Warn("removing the NATS credentials", "dir", dir, "err", err)
		}
	}, nil
}

// printAccess says who may do what on NATS, and where the credentials
// are (never the secrets).
func (p *Rig) printAccess() {
	rf := p.runFile
	if rf.Reader == "" {
		return
	}
	fmt.Fprintf(p.stdout, "spikeline: credentials (0600) in %s: operator %s, reader %s", p.credDir, filepath.Base(rf.Operator), filepath.Base(rf.Reader))
	if rf.Behaviour != "" {
		fmt.Fprintf(p.stdout, ", behaviour publisher %s", filepath.Base(rf.Behaviour))
	}
	if rf.Shard != "" {
		fmt.Fprintf(p.stdout, ", sorting shards %s", filepath.Base(rf.Shard))
	}
	fmt.Fprintln(p.stdout)
	if p.cfg.NoAnonymous {
		fmt.Fprintln(p.stdout, "spikeline: readers need the reader credential (--nats-no-anonymous); control needs the operator's")
	} else {
		fmt.Fprintln(p.stdout, "spikeline: clients without credentials may read (loopback only); control needs the operator credential")
	}
}

// warnOpenControl warns when an external server gives the pipeline no
// credentials: then nothing but the server's own configuration stands
// between any client and the control service.
func (p *Rig) warnOpenControl() {
	c := p.cfg.NATS
	if c.Embedded() {
		return
	}
	anon := c.User == "" && c.Token == "" && c.CredsFile == "" && c.NKeyFile == ""
	for _, u := range c.URLs {
		if pu, err := url.Parse(u); err == nil && pu.User != nil {
			anon = false
		}
	}
	if anon {
		p.log.Warn("NATS server used without credentials: any client it lets publish on the control subjects can command the headstage; see docs/run.md, Security",
			"control", schema.Prefix+"."+c.Rig+".ctl.>")
	}
}
