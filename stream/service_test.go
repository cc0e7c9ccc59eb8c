package stream

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nats.go/micro"

	"github.com/spikeline/spikeline/stream/streamtest"
)

// fakeController records what the service asked of it.
type fakeController struct {
	mu        sync.Mutex
	threshold float64
	refits    []string
	commands  []string
	args      []string
}

func (f *fakeController) Info() Info {
	return Info{Rig: "ctl1", Version: "1.2.3", Device: "sim", Channels: 32, Rate: 30000, Gain: 0.195, Models: []string{"ridge"}}
}

func (f *fakeController) Stats() schema.Status {
	return schema.Status{Header: schema.Header{Sample: 123, Rate: 30000}, SpikeRate: 42, NoiseUV: []float32{5}, RateHz: []float32{3}}
}

func (f *fakeController) Refit(ctx context.Context, model string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if model == "missing" {
		return errors.New("no such model")
	}
	f.refits = append(f.refits, model)
	return nil
}

func (f *fakeController) SetThreshold(sigma float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.threshold = sigma
	return nil
}

func (f *fakeController) DeviceCommand(ctx context.Context, op string, args json.RawMessage) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op == "explode" {
		return nil, errors.New("unsupported by this headstage")
	}
	f.commands = append(f.commands, op)
	f.args = append(f.args, string(args))
	return map[string]any{"op": op, "accepted": true}, nil
}

func TestServiceEndpoints(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	nc := streamtest.Connect(t, s)
	fc := &fakeController{}
	svc, err := StartService(nc, "ctl1", fc, ServiceOptions{Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	cli := streamtest.Connect(t, s)
	ctx := context.Background()

	var info Info
	if err := Call(ctx, cli, "ctl1", EndpointInfo, nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Channels != 32 || info.Rig != "ctl1" {
		t.Errorf("info = %+v", info)
	}
	var st schema.Status
	if err := Call(ctx, cli, "ctl1", EndpointStats, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Sample != 123 || st.SpikeRate != 42 || st.NoiseUV[0] != 5 {
		t.Errorf("stats = %+v", st)
	}
	var ok OK
	if err := Call(ctx, cli, "ctl1", EndpointThreshold, ThresholdRequest{Sigma: 4.5}, &ok); err != nil || !ok.OK {
		t.Fatal(err, ok)
	}
	if err := Call(ctx, cli, "ctl1", EndpointThreshold, []byte("5.25"), &ok); err != nil {
		t.Fatal(err)
	}
	if fc.threshold != 5.25 {
		t.Errorf("threshold = %g, want 5.25", fc.threshold)
	}
	if err := Call(ctx, cli, "ctl1", EndpointRefit, RefitRequest{Model: "ridge"}, &ok); err != nil {
		t.Fatal(err)
	}
	if err := Call(ctx, cli, "ctl1", EndpointRefit, nil, &ok); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fc.refits, []string{"ridge", ""}) {
		t.Errorf("refits = %q", fc.refits)
	}
	var res map[string]any
	if err := Call(ctx, cli, "ctl1", EndpointCommand, CommandRequest{Op: "stimulate", Args: json.RawMessage(`{"channel":3,"ua":10}`)}, &res); err != nil {
		t.Fatal(err)
	}
	if res["accepted"] != true || fc.commands[0] != "stimulate" || fc.args[0] != `{"channel":3,"ua":10}` {
		t.Errorf("command result %v, controller saw %q %q", res, fc.commands, fc.args)
	}

	// Bad requests are refused with 400 before the controller sees them;
	// controller failures come back as 500.
	for _, c := range []struct {
		endpoint string
		req      any
		code     string
	}{
		{EndpointThreshold, []byte("-1"), "400"},
		{EndpointThreshold, []byte("NaN"), "400"},
		{EndpointThreshold, []byte(`{"sigma":"x"}`), "400"},
		{EndpointThreshold, []byte("1e9"), "400"},
		{EndpointThreshold, []byte(`{"sigma":4}}`), "400"},
		{EndpointThreshold, []byte(`{"sigma":4,"sigmma":5}`), "400"},
		{EndpointCommand, []byte(`{"op":"stop"}x`), "400"},
		{EndpointCommand, []byte(`{"op":"stop","arg":{}}`), "400"},
		{EndpointRefit, []byte("{"), "400"},
		{EndpointRefit, RefitRequest{Model: "a.b"}, "400"},
		{EndpointRefit, RefitRequest{Model: "missing"}, "500"},
		{EndpointCommand, []byte(""), "400"},
		{EndpointCommand, CommandRequest{Op: "x y"}, "400"},
		{EndpointCommand, CommandRequest{Op: "explode"}, "500"},
	} {
		err := Call(ctx, cli, "ctl1", c.endpoint, c.req, nil)
		var se *ServiceError
		if !errors.As(err, &se) || se.Code != c.code || se.Description == "" {
			t.Errorf("%s %v: err = %v, want service error %s", c.endpoint, c.req, err, c.code)
		}
	}
	if fc.threshold != 5.25 || len(fc.commands) != 1 {
		t.Errorf("a refused request reached the controller: threshold %g, commands %q", fc.threshold, fc.commands)
	}
}

// The service is found with standard NATS service discovery.
func TestServiceDiscovery(t *testing.T) {
	s := streamtest.RunServer(t, nil)
	nc := streamtest.Connect(t, s)
	for _, rig := range []string{"rigA", "rigB"} {
		svc, err := StartService(nc, rig, &fakeController{}, ServiceOptions{Version: "0.1.0"})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Stop()
	}
	cli := streamtest.Connect(t, s)
	inbox := cli.NewRespInbox()
	sub, err := cli.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.PublishRequest("$SRV.INFO."+ServiceName, inbox, nil); err != nil {
		t.Fatal(err)
	}
	rigs := map[string][]string{}
	for len(rigs) < 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("discovery replies: %v (got %v)", err, rigs)
		}
		var info micro.Info
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatal(err)
		}
		if info.Name != ServiceName || info.Version != "0.1.0" {
			t.Errorf("info = %+v", info)
		}
		for _, e := range info.Endpoints {
			rigs[info.Metadata["rig"]] = append(rigs[info.Metadata["rig"]], e.Subject)
		}
	}
	want := []string{"spikeline.rigA.ctl.info", "spikeline.rigA.ctl.stats", "spikeline.rigA.ctl.refit",
		"spikeline.rigA.ctl.threshold", "spikeline.rigA.ctl.command"}
	got := rigs["rigA"]
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("rigA endpoints = %q, want %q", got, want)
	}
	// PING answers too.
	if _, err := cli.Request("$SRV.PING."+ServiceName, nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
