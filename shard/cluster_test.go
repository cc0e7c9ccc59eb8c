package shard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// This file runs a real 3-node nats-server cluster on loopback as
// separate processes (the nats-server binary built from the module this
// repository requires) and shards as separate processes (this test
// binary, re-executed into TestShardProcess).

var (
	natsOnce sync.Once
	natsBin  string
	natsErr  error
)

// natsServer returns the path of a nats-server binary built from the
// module in go.mod, built once and kept in the temporary directory.
func natsServer(t testing.TB) string {
	t.Helper()
	natsOnce.Do(func() {
		version := "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, d := range bi.Deps {
				if d.Path == "github.com/nats-io/nats-server/v2" {
					version = d.Version
				}
			}
		}
		natsBin = filepath.Join(os.TempDir(), "spikeline-test-nats-server-"+version)
		if _, err := os.Stat(natsBin); err == nil {
			return
		}
		tmp := natsBin + fmt.Sprintf(".%d", os.Getpid())
		out, err := exec.Command("go", "build", "-o", tmp, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsErr = fmt.Errorf("building nats-server: %v\n%s", err, out)
			return
		}
		natsErr = os.Rename(tmp, natsBin)
	})
	if natsErr != nil {
		t.Fatal(natsErr)
	}
	return natsBin
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cluster is a nats-server cluster of separate processes on loopback.
type cluster struct {
	t     testing.TB
	urls  []string
	procs []*exec.Cmd
	logs  []string
}

// startCluster starts n nats-servers routed to each other and waits until
// a message crosses the cluster.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	bin := natsServer(t)
	dir := t.TempDir()
	c := &cluster{t: t}
	client := make([]int, n)
	routes := make([]int, n)
	for i := range n {
		client[i], routes[i] = freePort(t), freePort(t)
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	for i := range n {
		var rs []string
		for j := range n {
			if j != i {
				rs = append(rs, fmt.Sprintf("nats-route://127.0.0.1:%d", routes[j]))
			}
		}
		conf := fmt.Sprintf("server_name: n%d\nlisten: 127.0.0.1:%d\nmax_payload: 8MB\n"+
			"cluster {\n  name: spikeline\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
			i, client[i], routes[i], strings.Join(rs, ", "))
		path := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		log := filepath.Join(dir, fmt.Sprintf("n%d.log", i))
		cmd := exec.Command(bin, "-c", path, "-l", log)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c.procs = append(c.procs, cmd)
		c.logs = append(c.logs, log)
	}
	t.Cleanup(c.stop)
	c.waitRouted()
	return c
}

// waitRouted waits until a message published on the last node reaches a
// subscriber on each other node.
func (c *cluster) waitRouted() {
	t := c.t
	deadline := time.Now().Add(20 * time.Second)
	var ncs []*nats.Conn
	defer func() {
		for _, nc := range ncs {
			nc.Close()
		}
	}()
	for _, u := range c.urls {
		for {
			nc, err := nats.Connect(u, nats.DontRandomize())
			if err == nil {
				ncs = append(ncs, nc)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nats-server at %s: %v", u, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	got := make(chan struct{}, 64)
	for _, nc := range ncs[:len(ncs)-1] {
		if _, err := nc.Subscribe("probe.route", func(*nats.Msg) { got <- struct{}{} }); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	for time.Now().Before(deadline) {
		ncs[len(ncs)-1].Publish("probe.route", nil)
		n := 0
		wait := time.After(200 * time.Millisecond)
	count:
		for n < len(ncs)-1 {
			select {
			case <-got:
				n++
			case <-wait:
				break count
			}
		}
		if n == len(ncs)-1 {
			return
		}
	}
	t.Fatal("the nats-server cluster did not route within 20 s")
}

// kill kills node i (SIGKILL: no goodbye to clients or routes).
func (c *cluster) kill(i int) {
	if p := c.procs[i]; p != nil && p.Process != nil {
		_ = p.Process.Kill()
		_ = p.Wait()
		c.procs[i] = nil
	}
}

func (c *cluster) stop() {
	for i := range c.procs {
		c.kill(i)
	}
}

// from returns the cluster's URLs starting with node i (a client that
// does not randomise connects to node i first).
func (c *cluster) from(i int) []string {
	return append(append([]string{}, c.urls[i:]...), c.urls[:i]...)
}

// connect connects to the cluster, node i first, reconnecting forever
// to the others.
func (c *cluster) connect(i int) *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(strings.Join(c.from(i), ","), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(64<<20))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// shardProc is a shard running in a separate process.
type shardProc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

// startShard starts a shard process connected to urls (in order).
func startShard(t testing.TB, name, rig string, urls []string, extra ...string) *shardProc {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestShardProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "SPIKELINE_SHARD_PROCESS="+strings.Join(append([]string{name, rig, strings.Join(urls, ",")}, extra...), " "))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &shardProc{name: name, cmd: cmd, log: log}
	t.Cleanup(func() { p.kill() })
	return p
}

// kill kills the shard (SIGKILL: it says nothing).
func (p *shardProc) kill() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

// TestShardProcess is a shard when this binary is started by startShard;
// otherwise it is skipped. Environment: "name rig urls [capacity]".
func TestShardProcess(t *testing.T) {
	spec := os.Getenv("SPIKELINE_SHARD_PROCESS")
	if spec == "" {
		t.Skip("run by the cluster tests in a process of its own")
	}
	f := strings.Fields(spec)
	name, rig, urls := f[0], f[1], f[2]
	nc, err := nats.Connect(urls, nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(64<<20), nats.Name("shard-"+name))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	w, err := NewWorker(nc, WorkerConfig{Name: name, Rig: rig, Logger: testLogger(os.Stderr)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// rigConn connects the rig (this process) to node i of the cluster.
func rigConn(c *cluster, i int) *nats.Conn { return c.connect(i) }

// waitShards waits until n shards beat on rig's subjects.
func waitShards(t testing.TB, nc *nats.Conn, rig string, n int) {
	t.Helper()
	subj, _ := NewSubjects(rig)
	seen := map[string]bool{}
	var mu sync.Mutex
	sub, err := nc.Subscribe(subj.Beat(), func(m *nats.Msg) {
		var b Beat
		if decodeJSON(m.Data, &b, func() int { return b.V }) == nil {
			mu.Lock()
			seen[b.Shard] = true
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		k := len(seen)
		mu.Unlock()
		if k >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%d shards beat within 30 s, want %d", len(seen), n)
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}
