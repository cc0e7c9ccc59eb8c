package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultPort is the NATS port the embedded server tries first.
const DefaultPort = 4222

// Server is an embedded nats-server, for zero-setup use on one machine.
type Server struct {
	srv     *server.Server
	tempDir string // JetStream store to remove at shutdown
}

// ServerConfig configures an embedded server.
type ServerConfig struct {
	Host      string // listen address; default 127.0.0.1 (loopback only)
	Port      int    // 0: DefaultPort, or a free port if it is taken; -1: a free port; else exactly this port
	JetStream bool
	StoreDir  string       // JetStream store; "" = a temporary directory removed by Shutdown
	Logger    *slog.Logger // server log lines at Debug (warnings and errors at their level); nil discards

	// Authorization is nats-server configuration text (accounts, users,
	// permissions, no_auth_user), e.g. Layout.ServerConfig; "" runs
	// without authorization.
	Authorization string
	// Refused, if set, is called (instead of logging) for every client the
	// server refuses: bad credentials, or a publish or subscription its
	// permissions do not allow. It runs on the server's goroutine: return
	// quickly.
	Refused func(Refusal)
}

// Refusal is a client the NATS server refused.
type Refusal struct {
	Kind    string // RefusedPublish, RefusedSubscribe or RefusedAuthentication
	Subject string // the subject refused (publish, subscribe)
	Client  string // the server's description of the client: address, client id, "version:lang:name", "account/user"
	Line    string // the server's log line, whole
}

// Kinds of Refusal.
const (
	RefusedPublish        = "publish"
	RefusedSubscribe      = "subscribe"
	RefusedAuthentication = "authentication"
)

// refusalLine matches nats-server's log lines for permission violations:
// `<client> - Publish Violation - Subject "x"`, `<client> - Subscription
// Violation - Subject "x", SID 1`, `<client> - Publish Violation - Reply "x"`.
var refusalLine = regexp.MustCompile(`^(.*?) - (Publish|Subscription) Violation - (?:Subject|Reply) "([^"]*)"`)

// parseRefusal recognises a refusal in a server error line.
func parseRefusal(line string) (Refusal, bool) {
	if m := refusalLine.FindStringSubmatch(line); m != nil {
		kind := RefusedPublish
		if m[2] == "Subscription" {
			kind = RefusedSubscribe
		}
		return Refusal{Kind: kind, Subject: m[3], Client: m[1], Line: line}, true
	}
	if i := strings.Index(line, "authentication error"); i >= 0 {
		return Refusal{Kind: RefusedAuthentication, Client: strings.TrimSuffix(line[:i], " - "), Line: line}, true
	}
	return Refusal{}, false
}

// StartServer starts an embedded nats-server and waits until it accepts
// clients.
func StartServer(cfg ServerConfig) (*Server, error) {
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	if port >= 0 {
		try := port
		if try == 0 {
			try = DefaultPort
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(try)))
		switch {
		case err == nil:
			l.Close()
			port = try
		case port == 0:
			port = -1 // DefaultPort taken: any free port
		default:
			return nil, fmt.Errorf("stream: embedded NATS server: %w", err)
		}
	}
	opts := &server.Options{
		ServerName:            "spikeline",
		Host:                  host,
		Port:                  port,
		NoSigs:                true,
		NoLog:                 cfg.Logger == nil && cfg.Refused == nil,
		MaxPayload:            8 << 20,
		DisableShortFirstPing: true,
	}
	if cfg.Authorization != "" {
		if err := opts.ProcessConfigString(cfg.Authorization); err != nil {
			return nil, fmt.Errorf("stream: embedded NATS server: authorization: %w", err)
		}
		// The configuration text sets only authorization; what it may
		// have reset is set again.
		opts.ServerName, opts.Host, opts.Port, opts.NoSigs = "spikeline", host, port, true
		opts.MaxPayload, opts.DisableShortFirstPing = 8<<20, true
	}
	s := &Server{}
	if cfg.JetStream {
		opts.JetStream = true
		opts.StoreDir = cfg.StoreDir
		if opts.StoreDir == "" {
			d, err := os.MkdirTemp("", "spikeline-jetstream-")
			if err != nil {
				return nil, fmt.Errorf("stream: JetStream store: %w", err)
			}
			opts.StoreDir, s.tempDir = d, d
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("stream: embedded NATS server: %w", err)
	}
	if cfg.Logger != nil || cfg.Refused != nil {
		l := cfg.Logger
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		srv.SetLogger(serverLogger{l, cfg.Refused}, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.removeTemp()
		return nil, fmt.Errorf("stream: embedded NATS server did not start on %s", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	if cfg.JetStream && !srv.JetStreamEnabled() {
		srv.Shutdown()
		s.removeTemp()
		return nil, errors.New("stream: embedded NATS server: JetStream did not start")
	}
	s.srv = srv
	return s, nil
}

// ClientURL returns the URL clients connect to, e.g. nats://127.0.0.1:4222.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// Port returns the port the server listens on.
func (s *Server) Port() int {
	if a, ok := s.srv.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// NATS returns the underlying nats-server.
func (s *Server) NATS() *server.Server { return s.srv }

// Shutdown stops the server and removes a temporary JetStream store.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.removeTemp()
}

func (s *Server) removeTemp() {
	if s.tempDir != "" {
		os.RemoveAll(s.tempDir)
		s.tempDir = ""
	}
}

// serverLogger adapts slog to nats-server's Logger. Fatal lines are logged
// as errors: the embedded server never exits the process. Error lines that
// report a refused client also go to refused.
type serverLogger struct {
	l       *slog.Logger
	refused func(Refusal)
}

func (l serverLogger) Noticef(format string, v ...any) {
	l.l.Debug("nats-server: " + fmt.Sprintf(format, v...))
}
func (l serverLogger) Warnf(format string, v ...any) {
	l.l.Warn("nats-server: " + fmt.Sprintf(format, v...))
}
func (l serverLogger) Fatalf(format string, v ...any) {
	l.l.Error("nats-server: " + fmt.Sprintf(format, v...))
}
func (l serverLogger) Errorf(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if l.refused != nil {
		if r, ok := parseRefusal(line); ok {
			l.refused(r)
			return
		}
	}
	l.l.Error("nats-server: " + line)
}
func (l serverLogger) Debugf(format string, v ...any) {}
func (l serverLogger) Tracef(format string, v ...any) {}
