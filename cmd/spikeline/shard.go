package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spikeline/spikeline/shard"
	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/schema"
)

func init() {
	register(command{
		name:    "shard",
		summary: "a sorting shard: sorts the channel groups a rig running --sort remote gives it (docs/scale-out.md)",
		run:     runShard,
	})
}

func runShard(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := newFlagSet("shard", stderr)
	natsConfig := natsFlags(fl)
	name := fl.String("name", "", "the shard's name, unique among the rig's shards (default: HOST-PID)")
	capacity := fl.Int("capacity", 0, "the most channel groups this shard takes (0: no limit)")
	workers := fl.Int("workers", 1, "cores each channel group's sorter uses (1: the groups are the shard's parallelism)")
	logCfg := logFlags(fl)
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline shard [--nats URL] [--rig R] [--nats-nkey shard.nk] [--name N] [--capacity G]")
		fmt.Fprintln(stderr, "\nSorts channel groups for a rig that runs `spikeline run --sort remote`: takes the")
		fmt.Fprintln(stderr, "groups the rig's plan gives it, sorts their raw blocks with the sorter configuration")
		fmt.Fprintln(stderr, "the rig sends, and publishes spikes and templates back. Without --nats and")
		fmt.Fprintln(stderr, "credentials flags it joins the rig's embedded server on this machine with its shard")
		fmt.Fprintln(stderr, "credential (shard.nk). Stop it with Ctrl-C: it hands its groups over first.")
		fl.PrintDefaults()
	}
	if err := parseFlags(fl, args, false); err != nil {
		return err
	}
	log, err := logCfg(stderr)
	if err != nil {
		return err
	}
	cfg, err := natsConfig()
	if err != nil {
		return err
	}
	warnSecretFlags(fl, stderr)
	if *capacity < 0 || *workers < 1 {
		return usageErrorf("--capacity %d, --workers %d: want >= 0 and >= 1", *capacity, *workers)
	}
	if *name == "" {
		*name = shard.DefaultName()
	}
	if err := schema.ValidToken(*name); err != nil {
		return usageErrorf("--name: %v", err)
	}
	cfg = shardCredentials(cfg, stderr)
	if len(cfg.URLs) == 0 {
		cfg.URLs = []string{"nats://127.0.0.1:4222"}
	}
	nc, err := stream.Connect(ctx, cfg, "spikeline shard "+*name)
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := shard.NewWorker(nc, shard.WorkerConfig{Name: *name, Rig: cfg.Rig, Capacity: *capacity, Workers: *workers, Logger: log})
	if err != nil {
		return usageErrorf("%v", err)
	}
	fmt.Fprintf(stdout, "spikeline shard %s: sorting for rig %s on %s\n", w.Name(), cfg.Rig, stream.RedactURL(nc.ConnectedUrl()))
	start := time.Now()
	err = w.Run(ctx)
	fmt.Fprintf(stdout, "spikeline shard %s: stopped after %v\n", w.Name(), time.Since(start).Round(time.Second))
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// shardCredentials completes the NATS configuration of a shard on the
// rig's machine: without credentials flags, the shard credential of the
// rig's running 'spikeline run' (and, without --nats, its embedded
// server), as readerCredentials does for readers.
func shardCredentials(cfg stream.Config, stderr io.Writer) stream.Config {
	return runCredential(cfg, stderr, "shard", "shard", func(rf stream.RunFile) (string, bool) { return rf.Shard, rf.Shard != "" })
}
