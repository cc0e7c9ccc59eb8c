package main

import (
	"flag"
	"os"
	"strings"

	"github.com/spikeline/spikeline/stream"
)

// Environment variables read when the matching flag is not given, so that
// secrets need not appear on a command line (where ps shows them).
const (
	envNATSPassword = "SPIKELINE_NATS_PASSWORD"
	envNATSToken    = "SPIKELINE_NATS_TOKEN"
)

// natsFlags registers the NATS connection flags shared by the commands
// that publish or subscribe (run, tap, ...) on fs and returns a function
// that builds and validates the stream.Config after parsing. A bad value
// is a usage error (exit 2) before anything starts. Credentials are never
// echoed in errors.
//
// --nats empty (the default) means an embedded server on loopback for
// publishers; subscribers such as tap treat it as nats://127.0.0.1:4222.
func natsFlags(fs *flag.FlagSet) func() (stream.Config, error) {
	urls := fs.String("nats", "", "NATS server URL(s), comma-separated for a cluster (nats://host:4222, tls://...); empty: embedded server on 127.0.0.1")
	rig := fs.String("rig", stream.DefaultRig, "rig name: the second token of every subject (letters, digits, '_', '-')")
	user := fs.String("nats-user", "", "NATS user name")
	password := fs.String("nats-password", "", "NATS password (or set $"+envNATSPassword+")")
	token := fs.String("nats-token", "", "NATS auth token (or set $"+envNATSToken+")")
	creds := fs.String("nats-creds", "", "NATS credentials file (user JWT and NKey seed)")
	nkey := fs.String("nats-nkey", "", "NATS NKey seed file")
	ca := fs.String("tls-ca", "", "CA certificate file to verify the NATS server")
	cert := fs.String("tls-cert", "", "client certificate file for mutual TLS (with --tls-key)")
	key := fs.String("tls-key", "", "client key file for mutual TLS (with --tls-cert)")
	js := fs.Bool("jetstream", false, "capture spikes, decoder output, events and templates in a JetStream stream (durable subscribers resume without loss)")
	jsDir := fs.String("jetstream-dir", "", "JetStream store of the embedded server (default: a temporary directory, removed at exit)")
	port := fs.Int("nats-port", 0, "embedded server port (0: 4222, or a free port if taken; -1: any free port)")
	asJSON := fs.Bool("nats-json", false, "also publish every message as JSON on <subject>.json")
	return func() (stream.Config, error) {
		c := stream.Config{
			Rig: *rig, User: *user, Password: *password, Token: *token,
			CredsFile: *creds, NKeyFile: *nkey, TLSCA: *ca, TLSCert: *cert, TLSKey: *key,
			JetStream: *js, StoreDir: *jsDir, Port: *port, JSON: *asJSON,
		}
		if u := strings.TrimSpace(*urls); u != "" && u != "embedded" {
			for _, s := range strings.Split(u, ",") {
				if s = strings.TrimSpace(s); s != "" {
					c.URLs = append(c.URLs, s)
				}
			}
		}
		if c.Password == "" && c.User != "" {
			c.Password = os.Getenv(envNATSPassword)
		}
		if c.Token == "" && len(c.URLs) > 0 && c.User == "" && c.CredsFile == "" && c.NKeyFile == "" {
			c.Token = os.Getenv(envNATSToken)
		}
		if c.StoreDir != "" && !c.JetStream {
			return c, usageErrorf("--jetstream-dir needs --jetstream")
		}
		if err := c.Validate(); err != nil {
			return c, usageErrorf("%s", strings.TrimPrefix(err.Error(), "stream: "))
		}
		return c, nil
	}
}
