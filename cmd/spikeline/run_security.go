package main

import (
	"bytes"
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
	return runCredential(cfg, stderr, cmd, "reader", func(rf stream.RunFile) (string, bool) { return rf.Reader, true })
}

// runCredential completes cfg, when it has no credentials flags, from the
// run file of the rig's running 'spikeline run': without --nats, its
// embedded server, and the NKey seed file of role that seed picks from the
// run file (ok false: the run file offers none, cfg stays as it is). cmd
// names the command in what it says on stderr.
func runCredential(cfg stream.Config, stderr io.Writer, cmd, role string, seed func(stream.RunFile) (file string, ok bool)) stream.Config {
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
	file, ok := seed(rf)
	if !rf.Alive() || !ok {
		return cfg
	}
	switch {
	case len(cfg.URLs) == 0:
		cfg.URLs = []string{rf.URL}
	case len(cfg.URLs) != 1 || !sameServer(cfg.URLs[0], rf.URL):
		return cfg
	}
	if _, err := os.Stat(file); err == nil {
		cfg.NKeyFile = file
		fmt.Fprintf(stderr, "spikeline %s: rig %s on %s, as %s (%s)\n", cmd, rf.Rig, rf.URL, role, file)
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
