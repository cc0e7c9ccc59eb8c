// Package streamtest starts real nats-servers in tests, the way
// nats-server's own test package does: in process, on loopback, on a free
// port, shut down when the test ends.
//
//	s := streamtest.RunServer(t, nil)
//	nc := streamtest.Connect(t, s)
package streamtest

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultOptions are the options RunServer uses when given nil: loopback,
// a free port, no logging, no signal handlers.
func DefaultOptions() *server.Options {
	return &server.Options{
		Host:                  "127.0.0.1",
		Port:                  -1,
		NoLog:                 true,
		NoSigs:                true,
		DisableShortFirstPing: true,
	}
}

var (
	mu       sync.Mutex
	optsOf   = map[*server.Server]server.Options{}
	portOf   = map[*server.Server]int{}
	startErr = "streamtest: server did not become ready"
)

// RunServer starts a nats-server with opts (nil: DefaultOptions) and
// shuts it down when t ends.
func RunServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	if opts == nil {
		opts = DefaultOptions()
	}
	o := *opts
	s, err := server.NewServer(&o)
	if err != nil {
		t.Fatalf("streamtest: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal(startErr)
	}
	mu.Lock()
	optsOf[s] = *opts
	portOf[s] = s.Addr().(*net.TCPAddr).Port
	mu.Unlock()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
		mu.Lock()
		delete(optsOf, s)
		delete(portOf, s)
		mu.Unlock()
	})
	return s
}

// RunJetStreamServer starts a server with JetStream, its store in a
// t.TempDir.
func RunJetStreamServer(t testing.TB) *server.Server {
	t.Helper()
	o := DefaultOptions()
	o.JetStream = true
	o.StoreDir = t.TempDir()
	return RunServer(t, o)
}

// Shutdown stops s and waits until it is down (its port is free).
func Shutdown(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart shuts s down (if it is not already) and starts a new server with
// the same options on the same port (and the same JetStream store), as if
// the server process had been restarted.
func Restart(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	mu.Lock()
	o, ok := optsOf[s]
	port := portOf[s]
	mu.Unlock()
	if !ok {
		t.Fatal("streamtest: Restart of a server not started by RunServer")
	}
	Shutdown(s)
	o.Port = port
	var ns *server.Server
	deadline := time.Now().Add(10 * time.Second)
	for {
		oo := o
		var err error
		ns, err = server.NewServer(&oo)
		if err != nil {
			t.Fatalf("streamtest: %v", err)
		}
		go ns.Start()
		if ns.ReadyForConnections(2 * time.Second) {
			break
		}
		ns.Shutdown()
		if time.Now().After(deadline) {
			t.Fatalf("streamtest: restart on port %d failed", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	optsOf[ns] = o
	portOf[ns] = port
	mu.Unlock()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		mu.Lock()
		delete(optsOf, ns)
		delete(portOf, ns)
		mu.Unlock()
	})
	return ns
}

// Connect returns a client connection to s, closed when t ends.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("streamtest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// URL returns the client URL of s.
func URL(s *server.Server) string { return s.ClientURL() }
