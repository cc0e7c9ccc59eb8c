package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// DefaultRig is the rig name used when none is configured.
const DefaultRig = "rig0"

// Defaults for Config's zero fields.
const (
	DefaultQueueLen         = 4096
	DefaultReconnectBufSize = 8 << 20
	DefaultReconnectWait    = 500 * time.Millisecond
	DefaultStreamMaxAge     = 24 * time.Hour
)

// Config says how to reach NATS and what to publish. The zero value (plus
// a Rig) starts an embedded server on loopback and publishes binary
// messages only.
type Config struct {
	// URLs of external NATS servers (several for a cluster). Empty means
	// start an embedded server (see Server).
	URLs []string
	// Rig names the device; it is the second subject token. Default
	// DefaultRig.
	Rig string

	// Authentication for external servers: at most one of user/password,
	// token, credentials file (JWT + seed) or NKey seed file.
	User      string
	Password  string
	Token     string
	CredsFile string
	NKeyFile  string

	// TLS: CA bundle to verify the server, client certificate and key for
	// mutual TLS. Either one implies TLS.
	TLSCA   string
	TLSCert string
	TLSKey  string

	// JetStream enables durable capture of spikes, decoder output, events
	// and templates in a stream named StreamName(rig).
	JetStream      bool
	StoreDir       string        // embedded server's JetStream store; "" = a temporary directory removed at shutdown
	StreamMaxAge   time.Duration // how long the stream keeps messages; default DefaultStreamMaxAge
	StreamMaxBytes int64         // size limit of the stream; 0 = no limit

	// Embedded server listen address: Host defaults to 127.0.0.1, Port 0
	// means 4222 or a free port if 4222 is taken.
	Host string
	Port int

	// JSON also publishes the JSON twin of every message (subject +
	// ".json").
	JSON bool

	// QueueLen is the publish queue length in messages (default
	// DefaultQueueLen); raw blocks have their own queue of QueueLen/16
	// (at least 16). Each queued message keeps its buffer for reuse up
	// to 64 KiB.
	QueueLen         int
	ReconnectBufSize int           // bytes nats.go buffers while disconnected; default DefaultReconnectBufSize
	ReconnectWait    time.Duration // between reconnect attempts; default DefaultReconnectWait
	Name             string        // client connection name; default "spikeline-<rig>"

	// Logger receives connection events (credentials redacted). Nil
	// discards them.
	Logger *slog.Logger

	// ConnectTimeout is how long to wait for the first connection. A
	// server that refuses the credentials (or the TLS handshake) is an
	// error at once, whatever the wait. 0 means: NewPublisher waits
	// DefaultConnectTimeout and then fails; Connect and Dial (subscribers)
	// keep trying in the background. Negative: always keep trying in the
	// background (publishes are buffered meanwhile).
	ConnectTimeout time.Duration

	// Embedded server authorization (always on; docs/run.md, Security).
	// Credentials are the roles' keys; nil makes fresh ones
	// (Publisher.Credentials returns them, to Save for the tools).
	// ReadersNeedCredentials refuses clients without credentials (by
	// default they read, on a loopback server only). BehaviourSubject is
	// the subject a behaviour publisher may publish on and the pipeline
	// subscribes to (--behaviour-subject).
	Credentials            *Credentials
	ReadersNeedCredentials bool
	BehaviourSubject       string

	keyPair nkeys.KeyPair // the embedded server's pipeline key, set by NewPublisher
}

// DefaultConnectTimeout is how long NewPublisher waits for NATS at start.
const DefaultConnectTimeout = 5 * time.Second

// Embedded reports whether c asks for an embedded server.
func (c *Config) Embedded() bool { return len(c.URLs) == 0 }

func (c *Config) rig() string {
	if c.Rig == "" {
		return DefaultRig
	}
	return c.Rig
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Validate reports the first impossible setting, naming it. Files are
// checked for existence so a command refuses bad flags before it starts.
func (c *Config) Validate() error {
	if err := schema.ValidToken(c.rig()); err != nil {
		return fmt.Errorf("stream: rig: %w", err)
	}
	for _, u := range c.URLs {
		if err := checkURL(u); err != nil {
			return err
		}
	}
	auth := 0
	if c.User != "" || c.Password != "" {
		auth++
		if c.User == "" {
			return errors.New("stream: NATS password given without a user")
		}
	}
	for _, s := range []string{c.Token, c.CredsFile, c.NKeyFile} {
		if s != "" {
			auth++
		}
	}
	if auth > 1 {
		return errors.New("stream: give only one of NATS user/password, token, credentials file, NKey seed file")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("stream: TLS client certificate and key must be given together")
	}
	for _, f := range []struct{ what, path string }{
		{"NATS credentials file", c.CredsFile}, {"NKey seed file", c.NKeyFile},
		{"TLS CA file", c.TLSCA}, {"TLS certificate", c.TLSCert}, {"TLS key", c.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("stream: %s: %w", f.what, err)
		}
	}
	if c.Embedded() && (auth > 0 || c.TLSCA != "" || c.TLSCert != "") {
		return errors.New("stream: NATS credentials and TLS apply to external servers; give --nats URL (the embedded server makes its own credentials)")
	}
	if !c.Embedded() && (c.Credentials != nil || c.ReadersNeedCredentials) {
		return errors.New("stream: generated credentials apply to the embedded server only")
	}
	if strings.ContainsAny(c.BehaviourSubject, " \t\r\n") {
		return fmt.Errorf("stream: behaviour subject %q: not a NATS subject", c.BehaviourSubject)
	}
	if c.Port < -1 || c.Port > 65535 {
		return fmt.Errorf("stream: embedded server port %d out of range", c.Port)
	}
	if c.QueueLen < 0 || c.ReconnectBufSize < 0 || c.ReconnectWait < 0 || c.StreamMaxAge < 0 || c.StreamMaxBytes < 0 {
		return errors.New("stream: negative queue length, buffer size, wait or stream limit")
	}
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("stream: NATS URL %q: %v", RedactURL(raw), redactErr(err))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("stream: NATS URL %q: scheme %q, want nats://, tls://, ws:// or wss://", RedactURL(raw), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("stream: NATS URL %q: no host", RedactURL(raw))
	}
	return nil
}

// redactErr hides a URL parse error's copy of the URL.
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// RedactURL hides any user information (user, password or token) in a
// server URL: nats://alice:s3cret@host:4222 becomes
// nats://REDACTED@host:4222. Use it for every URL that reaches a log.
func RedactURL(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 && i < at {
		start = i + 3
	}
	return raw[:start] + "REDACTED" + raw[at:]
}

// secrets returns the strings that must never reach a log.
func (c *Config) secrets() []string {
	var s []string
	for _, v := range []string{c.Password, c.Token} {
		if v != "" {
			s = append(s, v)
		}
	}
	for _, raw := range c.URLs {
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			s = append(s, u.User.Username())
			if p, ok := u.User.Password(); ok && p != "" {
				s = append(s, p)
			}
		}
	}
	return s
}

// Redact removes every credential of c from text (URLs' user information,
// password, token), for log lines and error messages that may quote them.
func (c *Config) Redact(text string) string {
	for _, s := range c.secrets() {
		if len(s) >= 3 {
			text = strings.ReplaceAll(text, s, "REDACTED")
		}
	}
	return text
}

// LogValue makes a Config safe to log: credentials are not shown.
func (c Config) LogValue() slog.Value {
	urls := make([]string, len(c.URLs))
	for i, u := range c.URLs {
		urls[i] = RedactURL(u)
	}
	auth := "none"
	switch {
	case c.keyPair != nil:
		auth = "embedded server's pipeline key (in memory)"
	case c.User != "":
		auth = "user " + c.User + " (password redacted)"
	case c.Token != "":
		auth = "token (redacted)"
	case c.CredsFile != "":
		auth = "credentials " + c.CredsFile
	case c.NKeyFile != "":
		auth = "nkey " + c.NKeyFile
	}
	return slog.GroupValue(slog.Any("urls", urls), slog.String("rig", c.rig()), slog.String("auth", auth),
		slog.Bool("tls", c.TLSCA != "" || c.TLSCert != ""), slog.Bool("jetstream", c.JetStream))
}

// String describes c without credentials (also for %v and %+v, so that a
// Config printed whole never shows a password or a key).
func (c Config) String() string { return c.LogValue().String() }

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// options builds the nats.go options for c.
func (c *Config) options(name string) ([]nats.Option, error) {
	log := c.logger()
	wait := c.ReconnectWait
	if wait == 0 {
		wait = DefaultReconnectWait
	}
	buf := c.ReconnectBufSize
	if buf == 0 {
		buf = DefaultReconnectBufSize
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(wait),
		nats.ReconnectBufSize(buf),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "error", c.Redact(err.Error()))
			} else {
				log.Info("NATS disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "url", RedactURL(nc.ConnectedUrl()))
		}),
		nats.ClosedHandler(func(nc *nats.Conn) { log.Debug("NATS connection closed") }),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("NATS error", "subject", subj, "error", c.Redact(err.Error()))
		}),
	}
	switch {
	case c.keyPair != nil:
		pub, err := c.keyPair.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("stream: pipeline key: %w", err)
		}
		opts = append(opts, nats.Nkey(pub, c.keyPair.Sign))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("stream: NKey seed file %s: %w", c.NKeyFile, err)
		}
		opts = append(opts, o)
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// Connect opens a NATS connection to c's external servers (c.URLs, or
// nats.DefaultURL when none are given) with c's credentials and TLS. The
// connection reconnects forever and buffers up to ReconnectBufSize bytes
// while disconnected. A server that refuses the credentials or the TLS
// handshake is an error at once. If no server answers, Connect waits
// c.ConnectTimeout and fails, or with ConnectTimeout 0 or negative returns
// at once a connection that keeps trying in the background (buffering
// what is published meanwhile).
func Connect(ctx context.Context, c Config, name string) (*nats.Conn, error) {
	return connect(ctx, c, name, c.ConnectTimeout)
}

// connect connects as Connect does, waiting at most wait (> 0) for a
// server to answer, or (wait <= 0) retrying in the background.
func connect(ctx context.Context, c Config, name string, wait time.Duration) (*nats.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if name == "" {
		name = c.Name
	}
	if name == "" {
		name = "spikeline-" + c.rig()
	}
	opts, err := c.options(name)
	if err != nil {
		return nil, err
	}
	urls := c.URLs
	if len(urls) == 0 {
		urls = []string{nats.DefaultURL}
	}
	url := strings.Join(urls, ",")
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			c.logger().Info("NATS connected", "config", c, "server", RedactURL(nc.ConnectedUrl()))
			return nc, nil
		}
		if !errors.Is(err, nats.ErrNoServers) && !errors.Is(err, nats.ErrTimeout) {
			// Refused credentials, a failed TLS handshake, a bad
			// option: waiting does not mend them.
			return nil, fmt.Errorf("stream: connect to %s: %s", RedactURL(url), c.Redact(connectReason(err)))
		}
		if wait <= 0 {
			nc, err = nats.Connect(url, append(opts, nats.RetryOnFailedConnect(true))...)
			if err != nil {
				return nil, fmt.Errorf("stream: connect to %s: %s", RedactURL(url), c.Redact(err.Error()))
			}
			c.logger().Info("NATS not answering yet; connecting in the background", "config", c)
			return nc, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("stream: no NATS server answered at %s within %v (%s)", RedactURL(url), wait, c.Redact(err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// connectReason words a connection error for a person.
func connectReason(err error) string {
	switch {
	case errors.Is(err, nats.ErrAuthorization):
		return "the server refused the credentials (authorization violation): check the user, password, token, NKey or credentials file"
	case errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return "the server refused the credentials: " + err.Error()
	}
	return err.Error()
}
