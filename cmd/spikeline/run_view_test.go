package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds a Chromium or Chrome binary, or "".
func chromiumPath() string {
	if p := os.Getenv("SPIKELINE_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// startRunWithView starts `spikeline run` with args and returns the URL of
// its live page once printed, and a function that stops the pipeline and
// returns its error.
func startRunWithView(t *testing.T, args []string) (url string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	pr, pw := io.Pipe()
	exited := make(chan error, 1)
	go func() {
		err := runPipeline(ctx, args, io.MultiWriter(pw, &stdout), &stderr)
		pw.Close()
		exited <- err
	}()
	lines := bufio.NewScanner(pr)
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "spikeline: live view http://") {
				found <- strings.Fields(strings.TrimPrefix(l, "spikeline: live view "))[0]
				break
			}
		}
		close(found)
		io.Copy(io.Discard, pr)
	}()
	stop = func() error {
		cancel()
		select {
		case err := <-exited:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("the pipeline did not stop within 20 s")
		}
	}
	select {
	case url = <-found:
	case <-time.After(30 * time.Second):
	}
	if url == "" {
		stop()
		t.Fatalf("no live view URL printed\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("pipeline: %v\nstderr:\n%s", err, stderr.String())
		}
	})
	return url, stop
}

// jsErrors collects the page's uncaught JavaScript exceptions.
type jsErrors struct {
	mu   sync.Mutex
	list []string
}

func (e *jsErrors) listen(ev any) {
	if x, ok := ev.(*runtime.EventExceptionThrown); ok && x.ExceptionDetails != nil {
		d := x.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg = d.Exception.Description
		}
		e.mu.Lock()
		e.list = append(e.list, fmt.Sprintf("%s (line %d)", msg, d.LineNumber+1))
		e.mu.Unlock()
	}
}

func (e *jsErrors) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// browser starts headless Chromium at path and returns a chromedp
// context for one tab.
func browser(t *testing.T, path string, width, height int) context.Context {
	ctx, _ := browserWithErrors(t, path, width, height)
	return ctx
}

// browserWithErrors is browser, and also collects the page's uncaught
// JavaScript exceptions.
func browserWithErrors(t *testing.T, path string, width, height int) (context.Context, *jsErrors) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
	)
	errs := &jsErrors{}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithListener(errs.listen))
	t.Cleanup(func() { bcancel(); acancel() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return bctx, errs
}

// waitJS evaluates expr (a JavaScript expression) every 100 ms until it
// is true, for at most d.
func waitJS(t *testing.T, ctx context.Context, what, expr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({frames: spikeline.frames, details: spikeline.details, view: spikeline.view, selected: spikeline.selected, watched: spikeline.detail && spikeline.detail.watched, live: !!spikeline.live})`))
			t.Fatalf("waited %v for %s (%s): err %v; page state %s", d, what, expr, err, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// canvasJS is the page-side helper of the test: ink(id) counts the
// pixels of a canvas that differ from its two background colours,
// hash(id) sums its pixels into a number that changes when the drawing
// does.
const canvasJS = `window.__t = {
  px(id) { const c = document.getElementById(id); return c.getContext("2d").getImageData(0, 0, c.width, c.height).data; },
  ink(id) {
    const d = this.px(id); let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      const r = d[i], g = d[i + 1], b = d[i + 2];
      if (!((r === 0x16 && g === 0x1b && b === 0x22) || (r === 0x0d && g === 0x11 && b === 0x17))) n++;
    }
    return n;
  },
  hash(id) { const d = this.px(id); let h = 0; for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] * 3 + d[i + 1] * 5 + d[i + 2] * 7) % 1000000007; return h; },
}; true`

// TestRunViewInBrowser runs `spikeline run` on a simulated 64-channel
// headstage and opens its live page in headless Chromium: frames and
// detail updates arrive and the counters advance, the raster is drawn,
// clicking a channel of the probe grid makes the trace and waveform
// panels follow it, and a panel's PNG button saves it from the browser.
// A screenshot is kept in out/view-test.png.
func TestRunViewInBrowser(t *testing.T) {
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium found (/usr/bin/chromium, chromium, google-chrome, or $SPIKELINE_CHROMIUM): install the chromium package to run the browser test")
	}
	url, _ := startRunWithView(t, []string{"--channels", "64", "--http", "127.0.0.1:0", "--nats-port", "-1",
		"--learn", "3", "--calibrate", "5", "--status-every", "500ms", "--rig", "viewtest"})
	ctx, jsErr := browserWithErrors(t, path, 1600, 1000)
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.EmulateViewport(1600, 1000), chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	if !evalJS[bool](t, tctx, canvasJS) {
		t.Fatal("test helper not installed")
	}

	// Data arrive and the counters advance.
	waitJS(t, tctx, "frames with spikes", `spikeline.frames > 0 && spikeline.view && spikeline.view.spikes > 0`, 20*time.Second)
	f0 := evalJS[float64](t, tctx, `spikeline.frames`)
	s0 := evalJS[float64](t, tctx, `spikeline.view.spikes`)
	d0 := evalJS[float64](t, tctx, `spikeline.details`)
	waitJS(t, tctx, "counters to advance", fmt.Sprintf(`spikeline.frames > %v + 5 && spikeline.view.spikes > %v && spikeline.details > %v + 3`, f0, s0, d0), 15*time.Second)
	waitJS(t, tctx, "the header's spike counter", `/\d/.test(document.getElementById("kSpk").textContent)`, 10*time.Second)

	// The raster is drawn: spikes are coloured pixels on the plot.
	waitJS(t, tctx, "ink on the raster", `__t.ink("raster") > 2000`, 10*time.Second)
	t.Logf("raster: %d pixels drawn", evalJS[int](t, tctx, `__t.ink("raster")`))

	// The default channel's trace and waveforms arrive; the probe grid is
	// drawn once a status came.
	waitJS(t, tctx, "the probe grid", `!!window.probeCellCenter(0) && __t.ink("probe") > 1000`, 10*time.Second)
	waitJS(t, tctx, "trace of the default channel", `(() => { const d = spikeline.detail; if (!d) return false; const t = spikeline.traces.get(d.default); return !!t && [...t.col].filter(c => c >= 0).length > 100; })()`, 15*time.Second)
	def := evalJS[int](t, tctx, `spikeline.detail.default`)
	waitJS(t, tctx, "waveforms of the default channel", `(spikeline.waves.get(spikeline.detail.default) || {next: 0}).next > 0`, 15*time.Second)

	// Click another channel, one that fires, in the probe grid.
	// (The default moves to the busiest channel once units are learned:
	// pick another than the one shown now.)
	pick := evalJS[int](t, tctx, `(() => { const r = spikeline.status.rate_hz, shown = shownChannels(); let best = -1;
		for (let c = 0; c < r.length; c++) if (!shown.includes(c) && (best < 0 || r[c] > r[best])) best = c; return best; })()`)
	beforeWave := evalJS[float64](t, tctx, `__t.hash("wave")`)
	beforeTrace := evalJS[string](t, tctx, `document.getElementById("traceInfo").textContent`)
	pt := evalJS[map[string]float64](t, tctx, fmt.Sprintf(`probeCellCenter(%d)`, pick))
	if err := chromedp.Do(tctx, chromedp.MouseClickXY(pt["x"], pt["y"])); err != nil {
		t.Fatalf("clicking channel %d: %v", pick, err)
	}
	waitJS(t, tctx, fmt.Sprintf("channel %d selected", pick), fmt.Sprintf(`spikeline.selected.length === 1 && spikeline.selected[0] === %d`, pick), 5*time.Second)
	waitJS(t, tctx, "the server to watch it", fmt.Sprintf(`spikeline.detail.watched.includes(%d)`, pick), 10*time.Second)
	waitJS(t, tctx, "its trace", fmt.Sprintf(`(() => { const t = spikeline.traces.get(%d); return !!t && [...t.col].filter(c => c >= 0).length > 50; })()`, pick), 10*time.Second)
	waitJS(t, tctx, "its waveforms", fmt.Sprintf(`(spikeline.waves.get(%d) || {next: 0}).next > 0`, pick), 15*time.Second)
	waitJS(t, tctx, "the trace caption to name it", fmt.Sprintf(`document.getElementById("traceInfo").textContent.startsWith("ch %d ")`, pick), 5*time.Second)
	afterTrace := evalJS[string](t, tctx, `document.getElementById("traceInfo").textContent`)
	if afterTrace == beforeTrace {
		t.Errorf("trace caption %q did not change on selecting channel %d", afterTrace, pick)
	}
	waitJS(t, tctx, "the waveform panel to change", fmt.Sprintf(`__t.hash("wave") !== %v && __t.ink("wave") > 500`, beforeWave), 5*time.Second)
	t.Logf("selected channel %d (default was %d): trace caption %q -> %q", pick, def, beforeTrace, afterTrace)

	// The raster's PNG button saves the canvas as a PNG download, made in
	// the browser: the anchor it clicks is captured here instead.
	if !evalJS[bool](t, tctx, `(() => { window.__saved = null; let blob = null;
		const mk = URL.createObjectURL; URL.createObjectURL = b => { blob = b; return mk(b); };
		HTMLAnchorElement.prototype.click = function () {
			window.__saved = { name: this.download, type: blob && blob.type, size: blob && blob.size, local: this.href.startsWith("blob:") }; };
		return true; })()`) {
		t.Fatal("capture not installed")
	}
	if err := chromedp.Do(tctx, chromedp.Click(`button[data-canvas="raster"]`)); err != nil {
		t.Fatalf("clicking the raster's PNG button: %v", err)
	}
	waitJS(t, tctx, "the raster's PNG", `!!window.__saved`, 10*time.Second)
	saved := evalJS[map[string]any](t, tctx, `window.__saved`)
	if name, _ := saved["name"].(string); !strings.HasPrefix(name, "spikeline-viewtest-raster-") || !strings.HasSuffix(name, ".png") ||
		saved["type"] != "image/png" || saved["size"].(float64) < 2000 || saved["local"] != true {
		t.Errorf("PNG button saved %v: want spikeline-viewtest-raster-*.png, image/png, a local blob of some kB", saved)
	}
	t.Logf("PNG button: %v", saved)

	// A second browser selects another channel: the server follows both
	// selections, and each page shows its own.
	tab2, cancel2 := chromedp.NewContext(ctx)
	defer cancel2()
	if err := chromedp.Do(tab2, chromedp.EmulateViewport(1600, 1000), chromedp.Navigate(url)); err != nil {
		t.Fatalf("second tab: %v", err)
	}
	waitJS(t, tab2, "the second tab's probe grid", `!!window.probeCellCenter && !!window.probeCellCenter(0)`, 15*time.Second)
	// The quietest channel: never the default, which is the busiest.
	other := evalJS[int](t, tctx, fmt.Sprintf(`(() => { const r = spikeline.status.rate_hz; let q = -1;
		for (let c = 0; c < r.length; c++) if (c !== %d && c !== spikeline.detail.default && (q < 0 || r[c] < r[q])) q = c; return q; })()`, pick))
	pt2 := evalJS[map[string]float64](t, tab2, fmt.Sprintf(`probeCellCenter(%d)`, other))
	if err := chromedp.Do(tab2, chromedp.MouseClickXY(pt2["x"], pt2["y"])); err != nil {
		t.Fatalf("second tab, clicking channel %d: %v", other, err)
	}
	both := fmt.Sprintf(`spikeline.detail.watched.includes(%d) && spikeline.detail.watched.includes(%d)`, pick, other)
	waitJS(t, tctx, "the first tab to see both channels watched", both, 10*time.Second)
	waitJS(t, tab2, "the second tab's trace", fmt.Sprintf(`document.getElementById("traceInfo").textContent.startsWith("ch %d ")`, other), 10*time.Second)
	if got := evalJS[string](t, tctx, `document.getElementById("traceInfo").textContent`); !strings.HasPrefix(got, fmt.Sprintf("ch %d ", pick)) {
		t.Errorf("first tab's trace caption %q after the second tab selected channel %d: want it on channel %d still", got, other, pick)
	}
	cancel2() // the second browser leaves: its channel is no longer followed
	waitJS(t, tctx, "the second tab's channel to be dropped", fmt.Sprintf(`!spikeline.detail.watched.includes(%d)`, other), 10*time.Second)

	// Let the decoder come in for the screenshot (not required: a slow
	// machine may still be fitting).
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) && !evalJS[bool](t, tctx, `spikeline.models.size >= 2`) {
		time.Sleep(200 * time.Millisecond)
	}
	png, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	out := filepath.Join("..", "..", "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(out, "view-test.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(shot)
	t.Logf("screenshot: %s", abs)
	for _, e := range jsErr.get() {
		t.Errorf("JavaScript exception on the page: %s", e)
	}
}

// TestRunViewBadFlags: the live page's flags are checked before anything
// starts, and the message names the flag.
func TestRunViewBadFlags(t *testing.T) {
	for _, tc := range [][2]string{
		{"--view-trace=1ms", "--view-trace 1ms"},
		{"--view-waveforms=0", "--view-waveforms 0"},
		{"--view-max-channels=65", "--view-max-channels 65"},
		{"--view-detail-rate=100", "--view-detail-rate 100"},
		{"--view-frame-rate=0.5", "--view-frame-rate: view: frame rate 0.5"},
		{"--view-window=100ms", "--view-window: view: window 100ms"},
	} {
		var stdout, stderr syncBuffer
		code := realMain([]string{"run", tc[0]}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc[1]) || stdout.String() != "" {
			t.Errorf("run %s: exit %d, stderr %q, stdout %q: want exit 2 naming %q", tc[0], code, stderr.String(), stdout.String(), tc[1])
		}
	}
}

// TestRunViewScreenshot makes the screenshots of docs/view.md: set
// SPIKELINE_VIEW_SHOT to the channel count (e.g. 256) and run
//
//	SPIKELINE_VIEW_SHOT=256 go test ./cmd/spikeline -run TestRunViewScreenshot -v -timeout 5m
//
// It runs the simulator for about 40 s (some channels pushed to the rails
// by large DC offsets, so the probe shows its markers), selects the two
// busiest channels and writes out/view-<channels>.png, 1600×1000. With
// SPIKELINE_VIEW_URL it shoots the page of a pipeline already running
// instead.
func TestRunViewScreenshot(t *testing.T) {
	n := os.Getenv("SPIKELINE_VIEW_SHOT")
	if n == "" {
		t.Skip("set SPIKELINE_VIEW_SHOT=<channels> to make the documentation's screenshot")
	}
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium found")
	}
	url := os.Getenv("SPIKELINE_VIEW_URL") // a pipeline already running, or:
	if url == "" {
		url, _ = startRunWithView(t, []string{"--channels", n, "--http", "127.0.0.1:0", "--nats-port", "-1",
			"--learn", "8", "--calibrate", "15", "--dc", "6500", "--rig", "bench1", "--seed", "5"})
	}
	ctx := browser(t, path, 1600, 1000)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1600, 1000), chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "templates and detail", `!!spikeline.templates && (!spikeline.live || !!spikeline.detail) && !!spikeline.probe`, 90*time.Second)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`spikeline.models.size >= 2`)); ok {
			break
		}
	}
	// Show the two channels with the most units and the largest spikes.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const by = new Map();
		for (const u of spikeline.templates.units) { const e = by.get(u.channel) || { n: 0, peak: 0 }; e.n++; e.peak = Math.max(e.peak, Math.abs(u.peak_uv)); by.set(u.channel, e); }
		const best = [...by.entries()].sort((a, b) => b[1].n * b[1].peak - a[1].n * a[1].peak).slice(0, 2).map(e => e[0]);
		spikeline.selected = best; if (spikeline.live) postSelect(); spikeline.dirty = spikeline.slowDirty = spikeline.detailDirty = true; return true; })()`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(12 * time.Second) // the decoder's traces fill the window, the waveforms accumulate
	// What drawing costs the browser, per panel (ms, mean of 10).
	timing, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const out = [];
		for (const f of [drawProbe, drawRaster, drawTrace, drawWaves, drawDecoder, drawTemplates]) {
			const t0 = performance.now(); for (let i = 0; i < 10; i++) f(); out.push(f.name + " " + ((performance.now() - t0) / 10).toFixed(1) + " ms");
		}
		return out.join(", ");
	})()`))
	t.Logf("draw times: %s", timing)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join("..", "..", "out"), 0o755)
	shot := filepath.Join("..", "..", "out", "view-"+n+".png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(shot)
	t.Logf("screenshot: %s", abs)
}
