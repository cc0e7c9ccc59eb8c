package stream

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/spikeline/spikeline/stream/streamtest"
)

// writeSeed writes kp's seed to a 0600 file, as an administrator hands
// one to each user, and returns its path.
func writeSeed(t *testing.T, kp nkeys.KeyPair, name string) string {
	t.Helper()
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name+".nk")
	if err := os.WriteFile(p, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// docsServerConfig returns the nats-server configuration printed in
// docs/run.md ("An external server or cluster").
func docsServerConfig(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/run.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "### An external server or cluster")
	if ok {
		_, rest, ok = strings.Cut(rest, "```conf\n")
	}
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/run.md: no conf block under \"An external server or cluster\"")
	}
	return block
}

// The configuration docs/run.md prints is the embedded server's
// (Layout.ServerConfig for rig0 with JetStream), with placeholders for
// the keys.
func TestDocsServerConfig(t *testing.T) {
	creds, err := NewCredentials(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.AddShard(); err != nil {
		t.Fatal(err)
	}
	want, err := creds.Layout("rig0", "", false, true).ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	want = strings.NewReplacer(publicKey(creds.Pipeline), "UPIPELINE_PUBLIC_KEY", publicKey(creds.Reader), "UREADER_PUBLIC_KEY",
		publicKey(creds.Operator), "UOPERATOR_PUBLIC_KEY", publicKey(creds.Shard), "USHARD_PUBLIC_KEY").Replace(want)
	if got := docsServerConfig(t); got != want {
		t.Errorf("docs/run.md's server configuration differs from Layout.ServerConfig:\n%s\nwant:\n%s", got, want)
	}
}

// The configuration for an external server or cluster, as docs/run.md
// prints it, in a configuration file run by a real nats-server: the pipeline publishes and serves with its key, readers
// read with theirs and cannot command or forge, clients without
// credentials are refused, the operator commands and is identified by the
// server.
func TestRolesExternalServerConfig(t *testing.T) {
	creds, err := NewCredentials(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.AddShard(); err != nil {
		t.Fatal(err)
	}
	// The configuration as docs/run.md prints it, for rig0, with this
	// test's keys.
	authz := strings.NewReplacer("UPIPELINE_PUBLIC_KEY", publicKey(creds.Pipeline), "UREADER_PUBLIC_KEY", publicKey(creds.Reader),
		"UOPERATOR_PUBLIC_KEY", publicKey(creds.Operator), "USHARD_PUBLIC_KEY", publicKey(creds.Shard)).Replace(docsServerConfig(t))
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	text := "host: 127.0.0.1\nport: -1\njetstream: {store_dir: " + `"` + filepath.Join(dir, "js") + `"` + "}\n" + authz
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server does not take the configuration: %v\n%s", err, text)
	}
	opts.NoLog, opts.NoSigs = true, true
	s := streamtest.RunServer(t, opts)
	url := s.ClientURL()
	ctx := context.Background()

	p := newTestPublisher(t, Config{URLs: []string{url}, Rig: "rig0", NKeyFile: writeSeed(t, creds.Pipeline, "pipeline"), JetStream: true})
	audit := &auditLog{}
	fc := &fakeController{}
	svc, err := StartService(p.Conn(), "rig0", fc, ServiceOptions{Audit: audit.add, Roles: creds.Roles()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()

	// No credentials: refused.
	if _, err := Connect(ctx, Config{URLs: []string{url}}, "anonymous"); err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("anonymous client: %v, want a refusal", err)
	}
	// The reader reads, and cannot command or forge.
	reader, err := Dial(ctx, Config{URLs: []string{url}, NKeyFile: writeSeed(t, creds.Reader, "reader")})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	c := newCollector()
	if _, err := reader.Subscribe("rig0", c.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "spikes to the reader", func() bool {
		p.PublishSpikes(0, 100, 30000, nil)
		return c.nSpikes() > 0
	})
	if err := Call(ctx, reader.Conn(), "rig0", EndpointThreshold, ThresholdRequest{Sigma: 9}, nil); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("reader threshold: %v, want ErrNotPermitted", err)
	}
	var info Info
	if err := Call(ctx, reader.Conn(), "rig0", EndpointInfo, nil, &info); err != nil {
		t.Errorf("reader info: %v", err)
	}
	reader.Conn().Publish("spikeline.rig0.decode.wiener", []byte("forged"))
	reader.Conn().Flush()
	if e := reader.Conn().LastError(); !errors.Is(e, nats.ErrPermissionViolation) {
		t.Errorf("reader forging an estimate: %v", e)
	}
	// The operator commands, identified by the server.
	op, err := Connect(ctx, Config{URLs: []string{url}, NKeyFile: writeSeed(t, creds.Operator, "operator")}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if err := Call(ctx, op, "rig0", EndpointThreshold, ThresholdRequest{Sigma: 6}, nil); err != nil {
		t.Fatalf("operator threshold: %v", err)
	}
	if fc.threshold != 6 {
		t.Errorf("threshold %g, want 6 (the reader's 9 must not arrive)", fc.threshold)
	}
	// A shard reads raw blocks and publishes its output and heartbeats,
	// and cannot forge the pipeline's spikes nor command.
	sh, err := Dial(ctx, Config{URLs: []string{url}, NKeyFile: writeSeed(t, creds.Shard, "shard")})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	raw := make(chan *nats.Msg, 1)
	if _, err := sh.Conn().ChanSubscribe("spikeline.rig0.raw.*", raw); err != nil {
		t.Fatal(err)
	}
	if err := sh.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a raw block to the shard", func() bool {
		_ = p.Conn().Publish("spikeline.rig0.raw.g0", []byte("raw"))
		return len(raw) > 0
	})
	beats := make(chan *nats.Msg, 1)
	if _, err := p.Conn().ChanSubscribe("spikeline.rig0.shard.beat", beats); err != nil {
		t.Fatal(err)
	}
	_ = p.Conn().Flush()
	waitFor(t, 5*time.Second, "the shard's heartbeat to the rig", func() bool {
		_ = sh.Conn().Publish("spikeline.rig0.shard.beat", []byte("{}"))
		return len(beats) > 0
	})
	sh.Conn().Publish("spikeline.rig0.spikes", []byte("forged"))
	sh.Conn().Flush()
	if e := sh.Conn().LastError(); !errors.Is(e, nats.ErrPermissionViolation) {
		t.Errorf("shard forging spikes: %v", e)
	}
	if err := Call(ctx, sh.Conn(), "rig0", EndpointThreshold, ThresholdRequest{Sigma: 9}, nil); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("shard threshold: %v, want ErrNotPermitted", err)
	}
	recs := audit.all()
	if len(recs) != 1 || !recs[0].Caller.Verified || recs[0].Caller.Role != RoleOperator || recs[0].Caller.Account != AccountControl || recs[0].Caller.Name != "bob" {
		t.Errorf("audit %+v, want one record of the verified operator bob", recs)
	}
}
