package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
	"github.com/spikeline/spikeline/stream/tap"
)

func init() {
	register(command{
		name:    "tap",
		summary: "print a rig's NATS messages live, decoded (one line each, or JSON lines)",
		run:     runTap,
	})
}

// tapDefaultTopics are tapped when no SUBJECT is given (raw blocks are
// left out: ask for raw.<group> or raw.* explicitly).
var tapDefaultTopics = []string{"spikes", "decode.*", "status", "events", "templates"}

func runTap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tap", stderr)
	natsConfig := natsFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON lines ({\"subject\",\"received_ns\",\"message\"}) instead of text")
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	maxSpikes := fs.Int("max-spikes", 6, "spikes listed per batch line in text output")
	durable := fs.String("durable", "", "read the rig's JetStream capture through this durable consumer: the first run starts at the oldest message, later runs resume after the last one printed")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline tap [--rig R] [--nats URL] [--json] [--count N] [SUBJECT ...]")
		fmt.Fprintln(stderr, "\nPrints the messages of a rig as they arrive, decoded. A SUBJECT is a full")
		fmt.Fprintln(stderr, "subject (spikeline.rig0.spikes, wildcards allowed) or one relative to the rig:")
		fmt.Fprintln(stderr, "spikes, decode.MODEL, decode.*, status, events, templates, raw.GROUP, raw.*.")
		fmt.Fprintln(stderr, "Default: "+strings.Join(tapDefaultTopics, " ")+". --rig '*' taps every rig.")
		fmt.Fprintln(stderr, "Subjects ending in .json are read as JSON, others as binary. docs/subjects.md")
		fmt.Fprintln(stderr, "lists the subjects, docs/schemas.md the message layouts. With --durable, tap")
		fmt.Fprintln(stderr, "reads the JetStream capture (spikes, decode.*, events, templates) and resumes.")
		fs.PrintDefaults()
	}
	// '*' is a valid rig for tap only: validate the rest with a placeholder.
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	rig := fs.Lookup("rig").Value.String()
	if rig == "*" {
		fs.Set("rig", stream.DefaultRig)
	}
	cfg, err := natsConfig()
	if err != nil {
		return err
	}
	if *count < 0 {
		return usageErrorf("--count %d: want >= 0", *count)
	}
	if *maxSpikes < 0 {
		return usageErrorf("--max-spikes %d: want >= 0", *maxSpikes)
	}
	if cfg.JetStream || cfg.JSON || cfg.StoreDir != "" {
		return usageErrorf("--jetstream, --jetstream-dir and --nats-json are for publishers, not tap")
	}
	cfg = readerCredentials(cfg, stderr, "tap")
	topics := fs.Args()
	if *durable != "" {
		if rig == "*" {
			return usageErrorf("--durable reads one rig's capture: give --rig")
		}
		if err := schema.ValidToken(*durable); err != nil {
			return usageErrorf("--durable: %v", err)
		}
		if len(topics) == 0 {
			topics = tapCapturedTopics
		}
	}
	subjects, err := tapSubjects(rig, topics)
	if err != nil {
		return err
	}

	nc, err := stream.Connect(ctx, cfg, "spikeline-tap")
	if err != nil {
		return err
	}
	defer nc.Close()

	p := tap.NewPrinter(stdout, *asJSON, *maxSpikes, *count)
	if *durable != "" {
		stop, err := tap.Durable(ctx, nc, rig, *durable, subjects, p)
		if err != nil {
			return err
		}
		defer stop()
	} else {
		for _, s := range subjects {
			if _, err := nc.Subscribe(s, p.Handle); err != nil {
				return fmt.Errorf("subscribe %s: %w", s, err)
			}
		}
	}
	url := "nats://127.0.0.1:4222"
	if len(cfg.URLs) > 0 {
		url = strings.Join(cfg.URLs, ",")
	}
	fmt.Fprintf(stderr, "spikeline tap: %s on %s\n", strings.Join(subjects, " "), stream.RedactURL(url))
	if nc.Flush() != nil {
		fmt.Fprintf(stderr, "spikeline tap: not connected yet; waiting for the server\n")
	}
	select {
	case <-ctx.Done():
	case <-p.Done():
	}
	return p.Stop()
}

// tapCapturedTopics are what a durable tap reads by default: the subjects
// the JetStream capture holds.
var tapCapturedTopics = []string{"spikes", "decode.*", "events", "templates"}

// tapSubjects turns the SUBJECT arguments into NATS subjects.
func tapSubjects(rig string, args []string) ([]string, error) {
	if len(args) == 0 {
		args = tapDefaultTopics
	}
	var out []string
	for _, a := range args {
		s := a
		if !strings.HasPrefix(a, schema.Prefix+".") {
			if a == "" || strings.ContainsAny(a, " \t") {
				return nil, usageErrorf("subject %q: empty or contains spaces", a)
			}
			s = schema.Prefix + "." + rig + "." + a
		}
		for _, tok := range strings.Split(s, ".") {
			if tok == "" {
				return nil, usageErrorf("subject %q: empty token", a)
			}
		}
		if i := strings.Index(s, ">"); i >= 0 && i != len(s)-1 {
			return nil, usageErrorf("subject %q: '>' must be the last token", a)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}
