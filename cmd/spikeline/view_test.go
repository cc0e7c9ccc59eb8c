package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/streamtest"
	"github.com/spikeline/spikeline/stream/view"
)

// TestViewCommand runs 'spikeline view' against a real nats-server and a
// publisher, and reads the page and the event stream over HTTP.
func TestViewCommand(t *testing.T) {
	srv := streamtest.RunServer(t, nil)
	pub, err := stream.NewPublisher(context.Background(), stream.Config{URLs: []string{streamtest.URL(srv)}, Rig: "bench3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	// The rig's control service answers the view's info request.
	svc, err := stream.StartService(pub.Conn(), "bench3", infoController{}, stream.ServiceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()

	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runView(ctx, []string{"--rig", "bench3", "--nats", streamtest.URL(srv), "--http", "127.0.0.1:0", "--frame-rate", "50"}, &out, &errb)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil && err != context.Canceled {
				t.Errorf("view: %v\nstderr: %s", err, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("view did not stop within 10 s of cancellation")
		}
	}
	t.Cleanup(stop)

	re := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; {
		if url = re.FindString(out.String()); url != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no URL printed; stdout %q stderr %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(string(page), "<canvas") {
		t.Fatalf("page: %s, %d bytes", resp.Header.Get("Content-Type"), len(page))
	}

	ectx, ecancel := context.WithCancel(context.Background())
	defer ecancel()
	req, _ := http.NewRequestWithContext(ectx, "GET", url+"events", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events Content-Type %q", ct)
	}
	frames := make(chan view.Frame, 256)
	infos := make(chan stream.Info, 16)
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 16<<20)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "event: "); ok {
				name = n
			} else if d, ok := strings.CutPrefix(line, "data: "); ok {
				switch name {
				case "frame":
					var f view.Frame
					if json.Unmarshal([]byte(d), &f) == nil {
						frames <- f
					}
				case "info":
					var i stream.Info
					if json.Unmarshal([]byte(d), &i) == nil {
						infos <- i
					}
				case "hello":
					var h view.Hello
					if json.Unmarshal([]byte(d), &h) == nil && h.Info != nil {
						infos <- *h.Info
					}
				}
			}
		}
	}()

	// Publish until the view has shown 30 spikes and the estimate.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	var spikes int
	var vx float64
	var sample uint64
	var info stream.Info
	for spikes < 30 || vx != 2.5 || info.Channels == 0 {
		select {
		case <-tick.C:
			pub.PublishSpikes(sample, sample+600, 30000, []sort.Spike{{Sample: sample + 10, Channel: 3, Unit: 2, Amplitude: -60}})
			pub.PublishEstimate("wiener", decode.Estimate{End: sample + 600, Rate: 30000, Names: []string{"vx", "vy"}, Values: []float64{2.5, -1}})
			sample += 600
		case f, ok := <-frames:
			if !ok {
				t.Fatal("event stream ended")
			}
			if f.Spikes != nil {
				for i := range f.Spikes.Channel {
					if f.Spikes.Channel[i] != 3 || f.Spikes.Unit[i] != 2 {
						t.Fatalf("spike on channel %d unit %d", f.Spikes.Channel[i], f.Spikes.Unit[i])
					}
				}
				spikes += len(f.Spikes.Channel)
			}
			for _, e := range f.Estimates {
				if e.Model == "wiener" && len(e.Values) > 0 {
					vx = float64(e.Values[0][0])
				}
			}
		case info = <-infos:
			if info.Device != "test-headstage" || info.Channels != 16 {
				t.Fatalf("info %+v", info)
			}
		case <-deadline:
			t.Fatalf("view showed %d spikes, vx %g, info %+v; stderr %s", spikes, vx, info, errb.String())
		}
	}
	stop()
}

// infoController is a control service that only describes itself.
type infoController struct{}

func (infoController) Info() stream.Info {
	return stream.Info{Rig: "bench3", Device: "test-headstage", Channels: 16, Rate: 30000, Models: []string{"wiener"}}
}
func (infoController) Stats() schema.Status                { return schema.Status{} }
func (infoController) Refit(context.Context, string) error { return errors.ErrUnsupported }
func (infoController) SetThreshold(float64) error          { return errors.ErrUnsupported }
func (infoController) DeviceCommand(context.Context, string, json.RawMessage) (any, error) {
	return nil, errors.ErrUnsupported
}

func TestViewBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--http", "nowhere"},
		{"--frame-rate", "0.5"},
		{"--window", "10ms"},
		{"--max-spikes", "0"},
		{"--truth", "a.b"},
		{"--rig", "a b"},
		{"--jetstream"},
		{"extra"},
	} {
		// A cancelled context: were the flags accepted, the view would
		// stop at once instead of serving.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errb strings.Builder
		err := runView(ctx, append([]string{"--http", "127.0.0.1:0"}, args...), &out, &errb)
		if !errors.Is(err, errUsage) {
			t.Errorf("view %v: error %v, want a usage error (exit 2)", args, err)
		}
	}
}
