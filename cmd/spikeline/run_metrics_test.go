package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestRunMetrics scrapes /metrics of a running pipeline over HTTP, parses
// it with Prometheus' own text parser, and checks that the counters move;
// it also checks that --log-format json writes JSON lines.
func TestRunMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runPipeline(ctx, []string{"--channels", "8", "--http", "127.0.0.1:0", "--nats-port", "-1",
			"--log-format", "json", "--status-every", "200ms"}, &stdout, &stderr)
	}()
	re := regexp.MustCompile(`metrics (http://\S+/metrics)`)
	var url string
	for i := 0; url == ""; i++ {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		} else if i > 1000 {
			t.Fatalf("no metrics URL printed:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	scrape := func() map[string]*dto.MetricFamily {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", url, resp.Status)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
		}
		return fams
	}
	// value sums a family's series (labelled series such as
	// nats_messages_total{result=...} add up).
	value := func(fams map[string]*dto.MetricFamily, name string) float64 {
		f := fams[name]
		if f == nil || len(f.Metric) == 0 {
			t.Fatalf("no metric %s", name)
		}
		var v float64
		for _, m := range f.Metric {
			switch {
			case m.Counter != nil:
				v += m.Counter.GetValue()
			case m.Gauge != nil:
				v += m.Gauge.GetValue()
			default:
				t.Fatalf("%s: neither counter nor gauge", name)
			}
		}
		return v
	}
	var first float64
	for i := 0; ; i++ {
		fams := scrape()
		if v := value(fams, "spikeline_samples_total"); v > 0 && first == 0 {
			first = v
		} else if first > 0 && v > first && fams["spikeline_link_total"] != nil && value(fams, "spikeline_throughput_samples_per_second") > 0 {
			if ch := value(fams, "spikeline_channels"); ch != 8 {
				t.Errorf("spikeline_channels %g, want 8", ch)
			}
			if value(fams, "spikeline_nats_messages_total") == 0 || fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
				t.Errorf("NATS, Go runtime or process metrics missing")
			}
			break
		}
		if i > 300 {
			t.Fatal("spikeline_samples_total does not advance")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && err != context.Canceled {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	lines := 0
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil {
			t.Fatalf("--log-format json wrote a line that is not a JSON log record: %q", sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Error("no log lines")
	}
}
