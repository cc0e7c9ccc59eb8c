package stream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/spikeline/spikeline/stream/streamtest"
)

// testPKI is a throwaway CA with a server and a client certificate,
// written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string // client cert and key
	serverTLS                 *tls.Config
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spikeline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return k, der
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvKey, srvDER := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	cliKey, cliDER := issue(3, "spikeline client", x509.ExtKeyUsageClientAuth)
	cliKeyDER, _ := x509.MarshalECPrivateKey(cliKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		caFile:   writePEM("ca.pem", "CERTIFICATE", caDER),
		certFile: writePEM("client.pem", "CERTIFICATE", cliDER),
		keyFile:  writePEM("client-key.pem", "EC PRIVATE KEY", cliKeyDER),
		serverTLS: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
	}
}

// Mutual TLS against a real server: with the CA and a client certificate
// spikes flow; without the client certificate the server refuses.
func TestConfigMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	o := streamtest.DefaultOptions()
	o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, true, pki.serverTLS, 2
	s := streamtest.RunServer(t, o)
	url := "tls://" + s.Addr().String()

	p := newTestPublisher(t, Config{URLs: []string{url}, Rig: "tls", TLSCA: pki.caFile, TLSCert: pki.certFile, TLSKey: pki.keyFile})
	c, err := Dial(context.Background(), Config{URLs: []string{url}, TLSCA: pki.caFile, TLSCert: pki.certFile, TLSKey: pki.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	col := newCollector()
	waitFor(t, 5*time.Second, "TLS client connected", func() bool { return c.Conn().IsConnected() })
	if _, err := c.Subscribe("tls", col.handler(), SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "spikes over mutual TLS", func() bool {
		p.PublishSpikes(0, 10, 30000, nil)
		return col.nSpikes() > 0
	})
	if !c.Conn().TLSRequired() {
		t.Error("connection not TLS")
	}

	// CA only, no client certificate: the server refuses the handshake,
	// an error at once (waiting does not mend it).
	_, err = Connect(context.Background(), Config{URLs: []string{url}, TLSCA: pki.caFile, ReconnectWait: 10 * time.Millisecond}, "no-cert")
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "tls") {
		t.Fatalf("connect without a client certificate: %v, want a TLS error", err)
	}
}

// NKey seed file authentication against a server that knows only the
// public key.
func TestConfigNKeySeedFile(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	o := streamtest.DefaultOptions()
	o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	s := streamtest.RunServer(t, o)

	p := newTestPublisher(t, Config{URLs: []string{s.ClientURL()}, Rig: "nk", NKeyFile: seedFile})
	waitFor(t, 5*time.Second, "NKey publisher connected", func() bool { return p.Stats().Connected })

	// Without the seed the server refuses, at once and saying so.
	start := time.Now()
	_, err = Connect(context.Background(), Config{URLs: []string{s.ClientURL()}, ReconnectWait: 10 * time.Millisecond}, "anon")
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") || time.Since(start) > 2*time.Second {
		t.Fatalf("connect without credentials: %v after %v, want a refusal at once", err, time.Since(start))
	}
	// A publisher with a wrong seed fails at start.
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	wrong := filepath.Join(t.TempDir(), "wrong.nk")
	os.WriteFile(wrong, otherSeed, 0o600)
	if _, err := NewPublisher(context.Background(), Config{URLs: []string{s.ClientURL()}, NKeyFile: wrong}); err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("publisher with a wrong seed: %v, want a refusal", err)
	}
	// A seed file that is not a seed is a clear error.
	bad := filepath.Join(t.TempDir(), "bad.nk")
	os.WriteFile(bad, []byte("not a seed"), 0o600)
	if _, err := NewPublisher(context.Background(), Config{URLs: []string{s.ClientURL()}, NKeyFile: bad}); err == nil {
		t.Fatal("bad seed file accepted")
	}
}

// A credentials file (user JWT + NKey seed, as nsc writes it) against a
// server in operator mode.
func TestConfigCredsFile(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	must(err)
	oclaims, err := jwt.DecodeOperatorClaims(ojwt)
	must(err)

	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	must(err)

	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	must(err)
	useed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	must(err)
	credsFile := filepath.Join(t.TempDir(), "user.creds")
	must(os.WriteFile(credsFile, creds, 0o600))

	resolver := &server.MemAccResolver{}
	must(resolver.Store(apub, ajwt))
	o := streamtest.DefaultOptions()
	o.TrustedOperators = []*jwt.OperatorClaims{oclaims}
	o.AccountResolver = resolver
	s := streamtest.RunServer(t, o)

	var logs lockedBuffer
	p := newTestPublisher(t, Config{URLs: []string{s.ClientURL()}, Rig: "creds", CredsFile: credsFile,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c, err := Dial(context.Background(), Config{URLs: []string{s.ClientURL()}, CredsFile: credsFile})
	must(err)
	defer c.Close()
	waitFor(t, 5*time.Second, "creds client connected", func() bool { return c.Conn().IsConnected() })
	col := newCollector()
	_, err = c.Subscribe("creds", col.handler(), SubscribeOptions{})
	must(err)
	waitFor(t, 5*time.Second, "spikes with a credentials file", func() bool {
		p.PublishSpikes(0, 10, 30000, nil)
		return col.nSpikes() > 0
	})
	if strings.Contains(logs.String(), string(useed)) || strings.Contains(logs.String(), ujwt) {
		t.Fatal("logs contain the seed or JWT")
	}
}
