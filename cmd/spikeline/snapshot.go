package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spikeline/spikeline/plots"
	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/snapshot"
)

func init() {
	register(command{
		name:    "snapshot",
		summary: "save a running rig's live views as PNG files (probe, templates, raster, decoder, health) and snapshot.json",
		run:     runSnapshot,
	})
}

// Limits of the snapshot flags.
const (
	snapMinPixels = 300
	snapMaxPixels = 8000
)

func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("snapshot", stderr)
	natsConfig := natsFlags(fs)
	var o snapshot.Options
	var fo plots.SnapshotOptions
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "wall time to collect the rig's messages before drawing (the rig re-publishes its templates every 10 s of device time, its status every second)")
	fs.DurationVar(&o.Window, "window", 10*time.Second, "device time shown by raster.png: the last WINDOW of spikes collected")
	fs.StringVar(&fo.Dir, "out", "snapshot", "directory the PNG files and snapshot.json are written into (created if needed)")
	fs.IntVar(&fo.Width, "width", 1400, fmt.Sprintf("width of every PNG in pixels (%d-%d)", snapMinPixels, snapMaxPixels))
	fs.IntVar(&fo.Height, "height", 900, fmt.Sprintf("height of every PNG in pixels (%d-%d)", snapMinPixels, snapMaxPixels))
	fs.IntVar(&fo.DPI, "dpi", 100, "dots per inch: the scale of text and lines relative to the image (30-600)")
	chans := fs.String("channels", "", "channels drawn, e.g. 0-15,32,40-47 (default: all)")
	fs.StringVar(&o.Truth, "truth", rig.BehaviourModel, "decoder model that carries the true behaviour, against which the other models are scored (R²)")
	fs.IntVar(&fo.MaxPanels, "max-panels", 16, "most channels drawn in templates.png (those with the most sorted spikes)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline snapshot [--rig R] [--nats URL] [--duration 10s] [--out DIR] [flags]")
		fmt.Fprintln(stderr, "\nSubscribes to a running rig for --duration, then writes the live views as PNG")
		fmt.Fprintln(stderr, "files into --out: probe.png (channels coloured by firing rate, noise, markers for")
		fmt.Fprintln(stderr, "quiet, noisy and silent channels), templates.png (unit templates per channel),")
		fmt.Fprintln(stderr, "raster.png (sorted spikes, channels × device time), decoder.png (each decoder")
		fmt.Fprintln(stderr, "output against the behaviour, with R²), health.png (link and pipeline counters,")
		fmt.Fprintln(stderr, "throughput and latency), and snapshot.json with the numbers shown.")
		fmt.Fprintln(stderr, "--nats empty: nats://127.0.0.1:4222 (the default of 'spikeline run'). docs/snapshot.md")
		fmt.Fprintln(stderr, "describes the files.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	cfg, err := natsConfig()
	if err != nil {
		return err
	}
	if cfg.JetStream || cfg.JSON || cfg.StoreDir != "" || cfg.Port != 0 {
		return usageErrorf("--jetstream, --jetstream-dir, --nats-json and --nats-port are for publishers, not snapshot")
	}
	cfg = readerCredentials(cfg, stderr, "snapshot")
	o.Rig = cfg.Rig
	switch {
	case o.Duration <= 0 || o.Duration > 24*time.Hour:
		return usageErrorf("--duration %s: want > 0 and <= 24h", o.Duration)
	case o.Window < 100*time.Millisecond || o.Window > time.Hour:
		return usageErrorf("--window %s: want 100ms to 1h", o.Window)
	case fo.Width < snapMinPixels || fo.Width > snapMaxPixels || fo.Height < snapMinPixels || fo.Height > snapMaxPixels:
		return usageErrorf("--width %d, --height %d: want %d to %d pixels", fo.Width, fo.Height, snapMinPixels, snapMaxPixels)
	case fo.DPI < 30 || fo.DPI > 600:
		return usageErrorf("--dpi %d: want 30 to 600", fo.DPI)
	case fo.MaxPanels < 1:
		return usageErrorf("--max-panels %d: want >= 1", fo.MaxPanels)
	case strings.TrimSpace(fo.Dir) == "":
		return usageErrorf("--out: empty directory name")
	}
	if err := schema.ValidToken(o.Truth); err != nil {
		return usageErrorf("--truth %q: %v", o.Truth, err)
	}
	if o.Channels, err = parseChannelList(*chans); err != nil {
		return usageErrorf("--channels %q: %v", *chans, err)
	}
	if fi, err := os.Stat(fo.Dir); err == nil && !fi.IsDir() {
		return usageErrorf("--out %s: exists and is not a directory", fo.Dir)
	}
	o.URL = "nats://127.0.0.1:4222"
	if len(cfg.URLs) > 0 {
		o.URL = strings.Join(cfg.URLs, ",")
	}
	o.URL = stream.RedactURL(o.URL)

	c := snapshot.NewCollector(o)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Slow-consumer errors mean this subscriber lost messages: count them.
	cfg.Logger = slog.New(&noteHandler{Handler: log.Handler(), note: c.Note})
	nc, err := stream.Connect(ctx, cfg, "spikeline-snapshot")
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := stream.NewClient(nc).Subscribe(cfg.Rig, c.Handler(), stream.SubscribeOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "spikeline snapshot: rig %s on %s: collecting for %s\n", cfg.Rig, o.URL, o.Duration)

	cctx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	infoDone := make(chan struct{})
	go func() { defer close(infoDone); c.AskInfo(cctx, nc, cfg.Rig) }()
	<-cctx.Done()
	interrupted := ctx.Err() != nil
	sub.Stop()
	<-infoDone

	snap, err := c.Snapshot(nc)
	if err != nil {
		return err
	}
	if interrupted {
		fmt.Fprintf(stdout, "spikeline snapshot: interrupted after %.1f s; drawing what arrived\n", snap.WallSeconds)
	}
	files, err := plots.Snapshot(snap, fo)
	if err != nil {
		return err
	}
	n := 0
	for _, v := range snap.Messages {
		n += v
	}
	fmt.Fprintf(stdout, "spikeline snapshot: rig %s, %.1f s of device time on %d channels (%d messages):\n",
		snap.Rig, snap.To-snap.From, snap.Channels, n)
	wide := 0
	for _, f := range files {
		wide = max(wide, len(f.Path))
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "  %-*s  %s\n", wide, f.Path, f.What)
	}
	return nil
}

// parseChannelList parses "0-15,32,40-47" into sorted distinct channels;
// "" is nil (all channels).
func parseChannelList(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q: want a channel number >= 0 or a range A-B", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				return nil, fmt.Errorf("%q: want a range A-B with A <= B", part)
			}
		}
		if b > 1<<20 {
			return nil, fmt.Errorf("%q: want channels <= %d", part, 1<<20)
		}
		for ch := a; ch <= b; ch++ {
			if !seen[ch] {
				seen[ch] = true
				out = append(out, ch)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// ---------------------------------------------------------------- collection
