package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/stream"
)

// securityOptions are the flags of 'spikeline run' that arm stimulation
// and open or close access (docs/run.md, "Security").
type securityOptions struct {
	allowStim   bool
	limitsFile  string
	limits      device.StimLimits // as read from limitsFile
	noAnonymous bool              // readers of the embedded server need the reader credential
	pprof       bool              // serve /debug/pprof on --http
	maxStreams  int               // live-page event streams at once
}

func registerSecurityFlags(fs *flag.FlagSet) func() (securityOptions, error) {
	var o securityOptions
	fs.BoolVar(&o.allowStim, "allow-stimulation", false, "arm stimulation: the control service's stimulate command is refused without it (needs --stim-limits)")
	fs.StringVar(&o.limitsFile, "stim-limits", "", "TOML or JSON file of stimulation limits checked on the host before any pulse is sent (keys in docs/run.md; left out: the conservative defaults)")
	fs.BoolVar(&o.noAnonymous, "nats-no-anonymous", false, "embedded server: clients without credentials are refused, readers use the reader credential (default: they read, on loopback only)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve the Go profiler under /debug/pprof/ on --http (off by default)")
	fs.IntVar(&o.maxStreams, "view-max-browsers", 64, "live-page event streams served at once; more get 503 (1-10000)")
	return func() (securityOptions, error) {
		switch {
		case o.allowStim && o.limitsFile == "":
			return o, usageErrorf("--allow-stimulation needs --stim-limits FILE: the limits every pulse is checked against")
		case !o.allowStim && o.limitsFile != "":
			return o, usageErrorf("--stim-limits without --allow-stimulation: stimulation stays off; give both to arm it")
		case o.maxStreams < 1 || o.maxStreams > 10000:
			return o, usageErrorf("--view-max-browsers %d: want 1 to 10000", o.maxStreams)
		}
		if o.limitsFile != "" {
			l, err := loadStimLimits(o.limitsFile)
			if err != nil {
				return o, usageErrorf("--stim-limits %s: %v", o.limitsFile, err)
			}
			o.limits = l
		}
		return o, nil
	}
}

// loadStimLimits reads a limits file: JSON if it ends in .json, else TOML.
// Unknown keys are refused, so that a misspelt limit is not a default.
func loadStimLimits(path string) (device.StimLimits, error) {
	var l device.StimLimits
	data, err := os.ReadFile(path)
	if err != nil {
		return l, err
	}
	if strings.EqualFold(filepath.Ext(path), ".json") {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return l, err
		}
		if _, err := dec.Token(); err != io.EOF {
			return l, errors.New("data after the limits object")
		}
	} else {
		md, err := toml.Decode(string(data), &l)
		if err != nil {
			var perr toml.ParseError
			if errors.As(err, &perr) {
				return l, fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
			}
			return l, err
		}
		if u := md.Undecoded(); len(u) > 0 {
			return l, fmt.Errorf("unknown limit %q", u[0].String())
		}
	}
	if err := l.Validate(); err != nil {
		return l, errors.New(strings.TrimPrefix(err.Error(), "device: stimulation limits: "))
	}
	return l, nil
}

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
func (p *pipeline) armStimulation(channels int) error {
	o := p.opts.sec
	if !o.allowStim {
		return nil
	}
	if _, ok := p.src.Source.(device.Commander); !ok {
		return fmt.Errorf("--allow-stimulation: device %s takes no commands (stimulation needs serial:, usb:, tcp:, sim:pty or sim:tcp)", p.src.name)
	}
	g, err := device.NewStimGuard(o.limits, channels, nil)
	if err != nil {
		return fmt.Errorf("--stim-limits %s: %w", o.limitsFile, err)
	}
	p.src.stim = g
	fmt.Fprintf(p.stdout, "spikeline: stimulation ARMED (%s): %s\n", o.limitsFile, describeLimits(g.Limits()))
	if loose := o.limits.Loosened(); len(loose) > 0 {
		p.log.Warn("stimulation limits looser than the defaults", "file", o.limitsFile, "limits", strings.Join(loose, "; "))
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
func (p *pipeline) audit(rec stream.ControlRecord) {
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
func (p *pipeline) saveCredentials() (func(), error) {
	creds := p.pub.Credentials()
	if creds == nil {
		return func() {}, nil
	}
	rig := p.pub.Subjects().Rig()
	dir, err := stream.CredentialsDir(rig)
	if err != nil {
		return nil, err
	}
	if old, err := stream.ReadRunFile(dir); err == nil && old.PID != os.Getpid() && processAlive(old.PID) {
		return nil, fmt.Errorf("rig %s is already run by process %d (%s): stop it or give another --rig", rig, old.PID, filepath.Join(dir, stream.RunFileName))
	}
	rf, err := creds.Save(dir, stream.RunFile{Rig: rig, URL: p.pub.ServerURL(), PID: os.Getpid(), Started: time.Now().UTC(),
		AnonymousRead: !p.opts.sec.noAnonymous})
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
func (p *pipeline) printAccess() {
	rf := p.runFile
	if rf.Reader == "" {
		return
	}
	fmt.Fprintf(p.stdout, "spikeline: credentials (0600) in %s: operator %s, reader %s", p.credDir, filepath.Base(rf.Operator), filepath.Base(rf.Reader))
	if rf.Behaviour != "" {
		fmt.Fprintf(p.stdout, ", behaviour publisher %s", filepath.Base(rf.Behaviour))
	}
	fmt.Fprintln(p.stdout)
	if p.opts.sec.noAnonymous {
		fmt.Fprintln(p.stdout, "spikeline: readers need the reader credential (--nats-no-anonymous); control needs the operator's")
	} else {
		fmt.Fprintln(p.stdout, "spikeline: clients without credentials may read (loopback only); control needs the operator credential")
	}
}

// warnOpenControl warns when an external server gives the pipeline no
// credentials: then nothing but the server's own configuration stands
// between any client and the control service.
func (p *pipeline) warnOpenControl() {
	c := p.opts.nats
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
			"control", stream.Prefix+"."+c.Rig+".ctl.>")
	}
}

// warnSecretFlags warns about secrets given as flags: other users see a
// command line (ps, /proc).
func warnSecretFlags(fs *flag.FlagSet, stderr io.Writer) {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "nats-password":
			fmt.Fprintf(stderr, "spikeline: warning: --nats-password on the command line is visible to other users (ps); set $%s instead\n", envNATSPassword)
		case "nats-token":
			fmt.Fprintf(stderr, "spikeline: warning: --nats-token on the command line is visible to other users (ps); set $%s instead\n", envNATSToken)
		}
	})
}

// readerCredentials completes the NATS configuration of a reader (tap,
// view, snapshot): without --nats, the embedded server of the rig's
// running 'spikeline run' (from its run file) and, without credentials
// flags, its reader credential. It says on stderr what it used.
func readerCredentials(cfg stream.Config, stderr io.Writer, cmd string) stream.Config {
	if cfg.User != "" || cfg.Token != "" || cfg.CredsFile != "" || cfg.NKeyFile != "" {
		return cfg
	}
	dir, err := stream.CredentialsDir(cfg.Rig)
	if err != nil {
		return cfg
	}
	rf, err := stream.ReadRunFile(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "spikeline %s: ignoring %v\n", cmd, err)
		}
		return cfg
	}
	if !processAlive(rf.PID) {
		return cfg
	}
	switch {
	case len(cfg.URLs) == 0:
		cfg.URLs = []string{rf.URL}
	case len(cfg.URLs) != 1 || !sameServer(cfg.URLs[0], rf.URL):
		return cfg
	}
	if _, err := os.Stat(rf.Reader); err == nil {
		cfg.NKeyFile = rf.Reader
		fmt.Fprintf(stderr, "spikeline %s: rig %s on %s, as reader (%s)\n", cmd, rf.Rig, rf.URL, rf.Reader)
	}
	return cfg
}

// sameServer reports whether two NATS URLs name the same host and port.
func sameServer(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	ha, pa, _ := net.SplitHostPort(ua.Host)
	hb, pb, _ := net.SplitHostPort(ub.Host)
	loop := func(h string) string {
		if h == "localhost" || h == "127.0.0.1" || h == "::1" {
			return "loopback"
		}
		return h
	}
	return pa == pb && loop(ha) == loop(hb)
}
