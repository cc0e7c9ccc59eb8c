package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/view"
)

func init() {
	register(command{
		name:    "view",
		summary: "live view of a rig in the browser: raster, rates, link health, decoder traces, templates, events",
		run:     runView,
	})
}

func runView(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("view", stderr)
	natsConfig := natsFlags(fs)
	addr := fs.String("http", "127.0.0.1:8080", "HTTP listen address of the page (loopback by default; port 0 picks a free one)")
	frameRate := fs.Float64("frame-rate", view.DefaultFrameRate, "frames per second sent to the browser (1-120)")
	window := fs.Duration("window", view.DefaultWindow, "device time shown by the raster and decoder traces (1s-10m)")
	maxSpikes := fs.Int("max-spikes", view.DefaultMaxSpikesPerFrame, "spikes sent per frame; beyond it a uniform sample is sent with the true count")
	maxTemplates := fs.Int("max-templates", view.DefaultMaxTemplates, "templates shown (those with the most spikes)")
	maxBrowsers := fs.Int("max-browsers", view.DefaultMaxBrowsers, "event streams served at once; more get 503")
	truth := fs.String("truth", strings.Join(view.DefaultTruth, ","), "decoder model names that carry the true behaviour (comma-separated), drawn dashed")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline view [--rig R] [--nats URL] [--http 127.0.0.1:8080] [flags]")
		fmt.Fprintln(stderr, "\nSubscribes to a rig's spikes, decoder output, status, events and templates and")
		fmt.Fprintln(stderr, "serves a live page (spike raster, per-channel rates and noise, link health,")
		fmt.Fprintln(stderr, "decoder traces, unit templates, events log). Open the printed URL in a browser.")
		fmt.Fprintln(stderr, "--nats empty: nats://127.0.0.1:4222 (the default of 'spikeline run'). docs/view.md")
		fmt.Fprintln(stderr, "describes the page.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	cfg, err := natsConfig()
	if err != nil {
		return err
	}
	if cfg.JetStream || cfg.JSON || cfg.StoreDir != "" {
		return usageErrorf("--jetstream, --jetstream-dir and --nats-json are for publishers, not view")
	}
	cfg = readerCredentials(cfg, stderr, "view")
	if *maxSpikes < 1 || *maxTemplates < 1 || *maxBrowsers < 1 {
		return usageErrorf("--max-spikes %d, --max-templates %d, --max-browsers %d: want >= 1", *maxSpikes, *maxTemplates, *maxBrowsers)
	}
	var models []string
	for _, m := range strings.Split(*truth, ",") {
		if m = strings.TrimSpace(m); m != "" {
			models = append(models, m)
		}
	}
	if models == nil {
		models = []string{} // none: every model is a decoder
	}
	vcfg := view.Config{Rig: cfg.Rig, FrameRate: *frameRate, Window: *window, MaxSpikesPerFrame: *maxSpikes,
		MaxTemplates: *maxTemplates, Truth: models, MaxBrowsers: *maxBrowsers}
	if err := vcfg.Validate(); err != nil {
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), "view: "))
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return usageErrorf("--http %q: %v", *addr, err)
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	vcfg.Logger = log
	v, err := view.New(vcfg)
	if err != nil {
		return err
	}
	// NATS connection events go to stderr and to the page's events log.
	cfg.Logger = slog.New(&noteHandler{Handler: log.Handler(), note: v.Note})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--http: %w", err)
	}
	defer ln.Close()
	nc, err := stream.Connect(ctx, cfg, "spikeline-view")
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := stream.NewClient(nc).Subscribe(cfg.Rig, v.Handler(), stream.SubscribeOptions{})
	if err != nil {
		return err
	}
	defer sub.Stop()

	url := "nats://127.0.0.1:4222"
	if len(cfg.URLs) > 0 {
		url = strings.Join(cfg.URLs, ",")
	}
	var handler http.Handler = v
	if ip := net.ParseIP(host); host == "" || (ip != nil && !ip.IsLoopback()) || (ip == nil && host != "localhost") {
		log.Warn("the page is served beyond this machine: anyone who can reach it sees the rig's data", "http", ln.Addr().String())
	} else {
		handler = view.LoopbackHosts(v)
	}
	fmt.Fprintf(stdout, "spikeline view: rig %s on %s: http://%s/\n", cfg.Rig, stream.RedactURL(url), ln.Addr())
	if nc.Flush() != nil {
		log.Info("NATS not connected yet; waiting for the server")
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go pollInfo(runCtx, nc, cfg.Rig, v)
	ran := make(chan struct{})
	go func() { v.Run(runCtx); close(ran) }()
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	// Ending Run disconnects the browsers, so Shutdown does not wait for
	// their event streams.
	stop()
	<-ran
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return ctx.Err()
}

// pollInfo asks the rig's control service for its description (device,
// channels, decoder models) every few seconds until it answers, then
// every 30 s, and hands it to the view. A rig without a control service
// (a plain publisher) just never answers.
func pollInfo(ctx context.Context, nc *nats.Conn, rig string, v *view.View) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var info stream.Info
		err := stream.Call(cctx, nc, rig, stream.EndpointInfo, nil, &info)
		cancel()
		if err == nil {
			v.SetInfo(info)
			wait = 30 * time.Second
		} else {
			wait = 5 * time.Second
		}
	}
}

// noteHandler passes log records on and copies the NATS connection
// records (disconnected, reconnected, errors) to the page's events log.
type noteHandler struct {
	slog.Handler
	note func(kind, text string)
}

func (h *noteHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo && strings.HasPrefix(r.Message, "NATS ") && r.Message != "NATS connecting" {
		var sb strings.Builder
		sb.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value)
			return true
		})
		h.note("nats", sb.String())
	}
	return h.Handler.Handle(ctx, r)
}

func (h *noteHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &noteHandler{Handler: h.Handler.WithAttrs(attrs), note: h.note}
}

func (h *noteHandler) WithGroup(name string) slog.Handler {
	return &noteHandler{Handler: h.Handler.WithGroup(name), note: h.note}
}
