package main

import (
	"flag"
	"time"

	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/shard"
)

// registerRemoteFlags registers the flags of remote sorting (--sort
// remote: rig.Config.Shards; docs/scale-out.md) and returns the function
// that checks them and sets them in a Config.
func registerRemoteFlags(fs *flag.FlagSet) func(cfg *rig.Config) error {
	where := fs.String("sort", "local", "where the sorter runs: local (this process, all cores) or remote (`spikeline shard` processes over NATS, docs/scale-out.md)")
	group := fs.Int("sort-group", shard.DefaultGroupChannels, "remote: channels per group, the unit of work a shard takes")
	shards := fs.Int("sort-shards", 1, "remote: shards to wait for before the groups are handed out")
	deadline := fs.Duration("sort-deadline", 500*time.Millisecond, "remote: how long the merged spike stream waits for a late group before it goes on without it, reporting the loss (sort_lost events)")
	return func(cfg *rig.Config) error {
		switch *where {
		case "local":
			return nil
		case "remote":
		default:
			return usageErrorf("--sort %q: want local or remote", *where)
		}
		if *group < 1 || *shards < 1 || *deadline <= 0 {
			return usageErrorf("--sort-group %d, --sort-shards %d, --sort-deadline %v: want >= 1, >= 1 and > 0", *group, *shards, *deadline)
		}
		cfg.Shards = &shard.Options{GroupChannels: *group, MinShards: *shards, Deadline: *deadline}
		return nil
	}
}
