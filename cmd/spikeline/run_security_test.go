package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
)

// TestMain keeps the credentials the tests' pipelines write out of the
// user's own runtime directory.
func TestMain(m *testing.M) {
	// A test that runs this binary again as a child (signals) shares the
	// parent's directory, which the parent removes.
	if os.Getenv("SPIKELINE_TEST_RUNTIME_DIR") != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "spikeline-test-run-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_RUNTIME_DIR", dir)
	os.Setenv("SPIKELINE_TEST_RUNTIME_DIR", dir)
	code := m.Run()
	// A pipeline a test left running may still be writing there: retry.
	for i := 0; i < 40; i++ {
		if err := os.RemoveAll(dir); err == nil {
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Exit(code)
}

// runFileOf waits for the run file of rig (written by a running pipeline)
// and returns it.
func runFileOf(t testing.TB, rig string) stream.RunFile {
	t.Helper()
	dir, err := stream.CredentialsDir(rig)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		rf, err := stream.ReadRunFile(dir)
		if err == nil && rf.PID == os.Getpid() {
			return rf
		}
		if i > 500 {
			t.Fatalf("no run file for rig %s in %s: %v", rig, dir, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// roleConn connects to a running pipeline's embedded server with one of
// the seed files of its run file.
func roleConn(t testing.TB, ctx context.Context, url, seed, name string) *nats.Conn {
	t.Helper()
	nc, err := stream.Connect(ctx, stream.Config{URLs: []string{url}, NKeyFile: seed}, name)
	if err != nil {
		t.Fatalf("connecting as %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// behaviourPublisher connects as the behaviour publisher of rig's running
// pipeline.
func behaviourPublisher(t testing.TB, ctx context.Context, rig, url string) *nats.Conn {
	t.Helper()
	rf := runFileOf(t, rig)
	if rf.Behaviour == "" {
		t.Fatalf("no behaviour credential for rig %s", rig)
	}
	return roleConn(t, ctx, url, rf.Behaviour, "tracker")
}

// controlEvents collects a rig's control-plane events.
type controlEvents struct {
	mu   sync.Mutex
	recs map[schema.EventKind][]schema.ControlRecord
}

func watchControl(t *testing.T, nc *nats.Conn, rig string) *controlEvents {
	t.Helper()
	ce := &controlEvents{recs: map[schema.EventKind][]schema.ControlRecord{}}
	_, err := stream.NewClient(nc).Subscribe(rig, stream.Handler{Events: func(_ string, b *schema.EventBatch) {
		ce.mu.Lock()
		defer ce.mu.Unlock()
		for _, e := range b.Events {
			if r, err := schema.ParseControlRecord(e); err == nil {
				ce.recs[e.Kind] = append(ce.recs[e.Kind], r)
			}
		}
	}}, stream.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return ce
}

func (ce *controlEvents) wait(t *testing.T, what string, kind schema.EventKind, match func(schema.ControlRecord) bool) schema.ControlRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ce.mu.Lock()
		for _, r := range ce.recs[kind] {
			if match(r) {
				ce.mu.Unlock()
				return r
			}
		}
		ce.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s event: %s", kind, what)
	return schema.ControlRecord{}
}

// writeLimits writes a stimulation limits file.
func writeLimits(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// spikeline run on its defaults, tried as a careless or hostile local user
// would: a client without credentials cannot stimulate, stop, change the
// threshold or forge estimates (each refusal a clear error and an event);
// stimulation is refused unless armed even for the operator; the
// credentials are 0600 files in a 0700 directory, printed by path only,
// removed at exit; tap finds them.
func TestRunAccessDefaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rp := startPipeline(t, ctx, []string{"--device", "sim:tcp", "--channels", "16", "--nats-port", "-1", "--http", "off",
		"--rig", "sec1", "--duration", "60s", "--nats-no-anonymous"})
	rf := runFileOf(t, "sec1")
	// Files: the user's only; the secrets never printed.
	for _, p := range []string{rf.Operator, rf.Reader, filepath.Join(filepath.Dir(rf.Reader), stream.RunFileName)} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v, want 0600", p, err, st.Mode().Perm())
		}
	}
	if st, err := os.Stat(filepath.Dir(rf.Reader)); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("credentials directory: %v, want 0700", err)
	}
	seed, _ := os.ReadFile(rf.Operator)
	rseed, _ := os.ReadFile(rf.Reader)
	if len(bytes.TrimSpace(seed)) < 50 || !bytes.HasPrefix(seed, []byte("SU")) {
		t.Fatalf("operator seed file holds %q…", seed[:min(4, len(seed))])
	}

	// No credentials (with --nats-no-anonymous): refused at connect.
	if _, err := stream.Connect(ctx, stream.Config{URLs: []string{rp.url}}, "stranger"); err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("client without credentials: %v, want a refusal", err)
	}
	reader := roleConn(t, ctx, rp.url, rf.Reader, "reader")
	events := watchControl(t, reader, "sec1")
	for _, c := range []struct {
		endpoint string
		req      any
	}{
		{stream.EndpointCommand, stream.CommandRequest{Op: "stop"}},
		{stream.EndpointThreshold, stream.ThresholdRequest{Sigma: 100}},
		{stream.EndpointCommand, []byte(`{"op":"stimulate","args":{"channel":0,"pulses":500,"phase_us":200,"period_us":1000,"amplitude_ua":1000,"biphasic":true,"cathodic_first":true}}`)},
	} {
		if err := stream.Call(ctx, reader, "sec1", c.endpoint, c.req, nil); !errors.Is(err, stream.ErrNotPermitted) {
			t.Errorf("reader %s: %v, want ErrNotPermitted", c.endpoint, err)
		}
	}
	reader.Publish("spikeline.sec1.decode.wiener", []byte("vx=999"))
	reader.Flush()
	events.wait(t, "reader's forged estimate", schema.EventAccessRefused, func(r schema.ControlRecord) bool {
		return r.Subject == "spikeline.sec1.decode.wiener" && strings.Contains(r.Client, "reader")
	})
	events.wait(t, "reader's stop", schema.EventAccessRefused, func(r schema.ControlRecord) bool { return r.Subject == "spikeline.sec1.ctl.command" })

	// The operator: stimulation is refused until armed; threshold works.
	op := roleConn(t, ctx, rp.url, rf.Operator, "operator-test")
	var se *stream.ServiceError
	err := stream.Call(ctx, op, "sec1", stream.EndpointCommand, []byte(`{"op":"stimulate","args":{"channel":0,"pulses":1,"phase_us":100,"amplitude_ua":10,"biphasic":true,"cathodic_first":true}}`), nil)
	if !errors.As(err, &se) || se.Code != "403" || !strings.Contains(se.Description, "not armed") {
		t.Errorf("stimulate without --allow-stimulation: %v, want 403 not armed", err)
	}
	rec := events.wait(t, "stimulation refused", schema.EventControlRefused, func(r schema.ControlRecord) bool { return r.Op == "stimulate" })
	if !rec.Caller.Verified || rec.Caller.Role != stream.RoleOperator || rec.Caller.Name != "operator-test" {
		t.Errorf("refusal record caller %+v, want the operator", rec.Caller)
	}
	if err := stream.Call(ctx, op, "sec1", stream.EndpointThreshold, stream.ThresholdRequest{Sigma: 5}, nil); err != nil {
		t.Errorf("operator threshold: %v", err)
	}
	events.wait(t, "threshold by the operator", schema.EventControl, func(r schema.ControlRecord) bool {
		return r.Endpoint == stream.EndpointThreshold && r.Caller.Role == stream.RoleOperator
	})

	// tap finds the reader credential by itself.
	var tapOut, tapErr bytes.Buffer
	if err := runTap(ctx, []string{"--rig", "sec1", "--count", "2", "status"}, &tapOut, &tapErr); err != nil {
		t.Errorf("tap: %v\n%s", err, tapErr.String())
	}
	if !strings.Contains(tapErr.String(), "as reader") || strings.Count(tapOut.String(), "status") < 2 {
		t.Errorf("tap without flags:\nstdout %s\nstderr %s", tapOut.String(), tapErr.String())
	}

	// Stop the run: the credentials go, and no output ever showed a seed.
	cancel()
	<-rp.exited
	out := rp.stdout.String() + rp.stderr.String() + tapOut.String() + tapErr.String()
	for _, secret := range [][]byte{bytes.TrimSpace(seed), bytes.TrimSpace(rseed)} {
		if strings.Contains(out, string(secret)) {
			t.Fatal("a seed was printed")
		}
	}
	if !strings.Contains(rp.stdout.String(), "credentials (0600) in "+filepath.Dir(rf.Reader)) {
		t.Errorf("the credentials' place is not printed:\n%s", rp.stdout.String())
	}
	if _, err := os.Stat(rf.Operator); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("operator seed left after the run: %v", err)
	}
}

// With --allow-stimulation and a limits file, the operator stimulates
// within the limits; requests outside them, or with fields misspelt, are
// refused with the reason, and every call is an event.
func TestRunStimulationArmed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	limits := writeLimits(t, "limits.toml", "# rat M1, 1,500 µm² sites\nmax_amplitude_ua = 60\nelectrode_area_um2 = 1500\nchannels = [0, 1, 2, 3]\n")
	rp := startPipeline(t, ctx, []string{"--device", "sim:tcp", "--channels", "8", "--nats-port", "-1", "--http", "off",
		"--rig", "sec2", "--duration", "60s", "--allow-stimulation", "--stim-limits", limits})
	rf := runFileOf(t, "sec2")
	events := watchControl(t, roleConn(t, ctx, rp.url, rf.Reader, "reader"), "sec2")
	op := roleConn(t, ctx, rp.url, rf.Operator, "operator")
	call := func(args string) (map[string]any, error) {
		var res map[string]any
		err := stream.Call(ctx, op, "sec2", stream.EndpointCommand, []byte(`{"op":"stimulate","args":`+args+`}`), &res)
		return res, err
	}
	res, err := call(`{"channel":2,"pulses":5,"phase_us":200,"interphase_us":50,"period_us":10000,"amplitude_ua":40,"biphasic":true,"cathodic_first":true}`)
	if err != nil {
		t.Fatalf("stimulation within the limits: %v", err)
	}
	st, _ := res["stim"].(map[string]any)
	if res["ok"] != true || st["cathodic_first"] != true || st["amplitude_ua"] != 40.0 || st["channel"] != 2.0 {
		t.Errorf("result %v", res)
	}
	rec := events.wait(t, "stimulation carried out", schema.EventControl, func(r schema.ControlRecord) bool { return r.Op == "stimulate" })
	if !rec.Caller.Verified || rec.Caller.Role != stream.RoleOperator {
		t.Errorf("record %+v", rec)
	}
	for _, c := range []struct{ args, code, why string }{
		{`{"channel":1,"pulses":5,"phase_us":200,"period_us":10000,"amplitude_ua":1000,"biphasic":true,"cathodic_first":true}`, "403", "max_amplitude_ua"},
		{`{"channel":1,"pulses":65535,"phase_us":200,"period_us":10000,"amplitude_ua":10,"biphasic":true,"cathodic_first":true}`, "403", "max_pulses"},
		{`{"channel":5,"pulses":1,"phase_us":200,"amplitude_ua":10,"biphasic":true,"cathodic_first":true}`, "403", "channels the limits allow"},
		{`{"channel":1,"pulses":1,"phase_us":200,"amplitude_ua":10,"biphasic":false,"cathodic_first":true}`, "403", "allow_monophasic"},
		{`{"channel":1,"pulses":1,"phase_us":400,"amplitude_ua":60,"biphasic":true,"cathodic_first":true}`, "403", "max_charge_nc"},
		{`{"channel":1,"pulses":1,"phase_us":200,"ua":10,"amplitude_ua":10,"biphasic":true,"cathodic_first":true}`, "400", "unknown field"},
		{`{"channel":1,"pulses":1,"phase_us":200,"amplitude_ua":10,"biphasic":true}`, "400", "cathodic_first: missing"},
	} {
		_, err := call(c.args)
		var se *stream.ServiceError
		if !errors.As(err, &se) || se.Code != c.code || !strings.Contains(se.Description, c.why) {
			t.Errorf("%s: %v, want %s saying %q", c.args, err, c.code, c.why)
		}
	}
	// Other commands are strict too.
	for _, c := range []struct{ req, want string }{
		{`{"op":"stop","args":{"now":true}}`, "stop takes no arguments"},
		{`{"op":"set_rate","args":{"rate":30000,"hz":1}}`, "set_rate needs"},
		{`{"op":"explode"}`, "unknown device command"},
		{`{"op":"stop","delay":5}`, "unknown field"},
	} {
		err := stream.Call(ctx, op, "sec2", stream.EndpointCommand, []byte(c.req), nil)
		var se *stream.ServiceError
		if !errors.As(err, &se) || se.Code != "400" || !strings.Contains(se.Description, c.want) {
			t.Errorf("%s: %v, want 400 saying %q", c.req, err, c.want)
		}
	}
	events.wait(t, "the amplitude refusal, on channel 1", schema.EventControlRefused, func(r schema.ControlRecord) bool {
		return r.Code == "403" && strings.Contains(r.Reason, "1000 µA")
	})
	cancel()
	<-rp.exited
	if out := rp.stdout.String(); !strings.Contains(out, "stimulation ARMED") || !strings.Contains(out, "≤ 60 µA") || !strings.Contains(out, "Shannon k ≤ 1.75 on 1500 µm²") {
		t.Errorf("the armed limits are not printed:\n%s", out)
	}
}

// Bad stimulation flags and limits files are refused before anything
// starts (exit 2); stimulation on a device that takes no commands fails.
func TestRunStimulationFlags(t *testing.T) {
	good := writeLimits(t, "ok.toml", "max_amplitude_ua = 50\n")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--allow-stimulation"}, 2, "needs --stim-limits"},
		{[]string{"--stim-limits", good}, 2, "without --allow-stimulation"},
		{[]string{"--allow-stimulation", "--stim-limits", writeLimits(t, "typo.toml", "max_amplitude = 50\n")}, 2, `unknown limit "max_amplitude"`},
		{[]string{"--allow-stimulation", "--stim-limits", writeLimits(t, "neg.json", `{"max_charge_nc": -1}`)}, 2, "max_charge_nc"},
		{[]string{"--allow-stimulation", "--stim-limits", writeLimits(t, "k.toml", "shannon_k = 2\nelectrode_area_um2 = 100\n")}, 2, "at most 1.75"},
		{[]string{"--allow-stimulation", "--stim-limits", writeLimits(t, "x.json", `{"max_amplitude_ua": 50, "extra": 1}`)}, 2, "extra"},
		{[]string{"--allow-stimulation", "--stim-limits", good, "--device", "sim", "--http", "off", "--nats-port", "-1"}, 1, "takes no commands"},
	} {
		var stdout, stderr bytes.Buffer
		code := realMain(append([]string{"run"}, c.args...), &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("run %q: exit %d, stderr %q; want exit %d saying %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}

// spikeline run --nats URL fails at start, within seconds and saying why,
// when the server refuses the credentials or does not answer; the password
// is never shown.
func TestRunNATSFailsLoudly(t *testing.T) {
	o := streamtest.DefaultOptions()
	o.Users = []*server.User{{Username: "rig", Password: "right-password"}}
	s := streamtest.RunServer(t, o)
	t.Setenv(envNATSPassword, "wrong-password")
	start := time.Now()
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"run", "--nats", s.ClientURL(), "--nats-user", "rig", "--http", "off", "--channels", "4", "--duration", "30s"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "refused the credentials") || time.Since(start) > 10*time.Second {
		t.Errorf("wrong password: exit %d after %v, stderr %q", code, time.Since(start), stderr.String())
	}
	if strings.Contains(stderr.String()+stdout.String(), "wrong-password") {
		t.Error("the password was printed")
	}
	// Nobody listening.
	streamtest.Shutdown(s)
	start = time.Now()
	stdout.Reset()
	stderr.Reset()
	code = realMain([]string{"run", "--nats", s.ClientURL(), "--http", "off", "--channels", "4", "--duration", "30s"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no NATS server answered") || time.Since(start) > 15*time.Second {
		t.Errorf("no server: exit %d after %v, stderr %q", code, time.Since(start), stderr.String())
	}
}

// A second run of the same rig on this machine is refused while the first
// holds its credentials.
func TestRunCredentialsHeld(t *testing.T) {
	dir, err := stream.CredentialsDir("held")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o700)
	b, _ := json.Marshal(stream.RunFile{Rig: "held", URL: "nats://127.0.0.1:1", PID: os.Getppid()})
	os.WriteFile(filepath.Join(dir, stream.RunFileName), b, 0o600)
	defer os.Remove(filepath.Join(dir, stream.RunFileName))
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"run", "--rig", "held", "--nats-port", "-1", "--http", "off", "--channels", "4", "--duration", "5s"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "already run by process") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// get fetches url with the Host header host ("" = the URL's) and
// returns the status and body.
func get(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The page, /metrics and the profiler share the Host check; the profiler
// is off unless asked for, and its command line shows no secret.
func TestRunHTTPSecurity(t *testing.T) {
	saved := os.Args
	os.Args = []string{"spikeline", "run", "--nats-password", "pw-in-argv", "--nats-token=tok-in-argv", "--nats", "nats://u:pw-in-url@h:4222,nats://h2:4222"}
	defer func() { os.Args = saved }()

	page, _ := startRunWithView(t, []string{"--channels", "8", "--http", "127.0.0.1:0", "--nats-port", "-1", "--rig", "web1"})
	base := strings.TrimSuffix(page, "/")
	if code, _ := get(t, base+"/debug/pprof/", ""); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --pprof: %d, want 404", code)
	}
	for _, path := range []string{"/", "/metrics", "/events"} {
		if code, _ := get(t, base+path, "evil.example:8080"); code != http.StatusMisdirectedRequest {
			t.Errorf("%s with a foreign Host: %d, want 421", path, code)
		}
	}
	if code, body := get(t, base+"/metrics", ""); code != 200 || !strings.Contains(body, "spikeline_samples_total") {
		t.Errorf("/metrics: %d", code)
	}

	page, _ = startRunWithView(t, []string{"--channels", "8", "--http", "127.0.0.1:0", "--nats-port", "-1", "--rig", "web2", "--pprof"})
	base = strings.TrimSuffix(page, "/")
	if code, body := get(t, base+"/debug/pprof/", ""); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ with --pprof: %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/heap", "rebind.example"); code != http.StatusMisdirectedRequest {
		t.Errorf("/debug/pprof/heap with a foreign Host: %d, want 421", code)
	}
	code, body := get(t, base+"/debug/pprof/cmdline", "")
	if code != 200 || strings.Contains(body, "pw-in") || strings.Contains(body, "tok-in") || !strings.Contains(body, "REDACTED") || !strings.Contains(body, "nats://h2:4222") {
		t.Errorf("/debug/pprof/cmdline: %d %q", code, strings.ReplaceAll(body, "\x00", " "))
	}
}

// --http beyond loopback warns, naming what it exposes.
func TestRunHTTPExposedWarning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rp := startPipeline(t, ctx, []string{"--channels", "4", "--http", "0.0.0.0:0", "--nats-port", "-1", "--rig", "web3", "--pprof", "--duration", "60s"})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(rp.stderr.String(), "reachable beyond this machine") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-rp.exited
	for _, want := range []string{"without authentication", "live page", "/metrics", "/debug/pprof"} {
		if !strings.Contains(rp.stderr.String(), want) {
			t.Errorf("warning does not mention %q:\n%s", want, rp.stderr.String())
		}
	}
}

// With --jetstream, tap --durable reads the capture as the reader, with
// the credential it finds by itself.
func TestRunTapDurableAsReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rp := startPipeline(t, ctx, []string{"--channels", "4", "--nats-port", "-1", "--http", "off", "--rig", "sec3",
		"--jetstream", "--jetstream-dir", t.TempDir(), "--nats-no-anonymous", "--duration", "60s"})
	runFileOf(t, "sec3")
	var out, errOut bytes.Buffer
	if err := runTap(ctx, []string{"--rig", "sec3", "--durable", "notebook", "--count", "3", "spikes"}, &out, &errOut); err != nil {
		t.Fatalf("tap --durable: %v\n%s", err, errOut.String())
	}
	if strings.Count(out.String(), "spikeline.sec3.spikes") != 3 || !strings.Contains(errOut.String(), "as reader") {
		t.Errorf("tap --durable:\n%s\n%s", out.String(), errOut.String())
	}
	cancel()
	<-rp.exited
}
