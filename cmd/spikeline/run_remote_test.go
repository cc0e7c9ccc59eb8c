package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spikeline/spikeline/rig"
	"github.com/spikeline/spikeline/stream"
)

// TestRunSortRemote: `spikeline run --sort remote` on its embedded server
// with two `spikeline shard` commands (in this process, joining with the
// shard credential the run wrote) records exactly the spikes, units and
// amplitudes of `spikeline run` sorting locally, and the shards' spikes
// are published, recorded and decoded as the local sorter's are.
func TestRunSortRemote(t *testing.T) {
	if testing.Short() {
		t.Skip("two runs of 20 s of 48 channels")
	}
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	args := func(rec string) []string {
		return []string{"--rig", "remote", "--nats-port", "-1", "--http", "off", "--channels", "48", "--seed", "5",
			"--pace", "0", "--duration", "20s", "--learn", "4", "--calibrate", "8", "--record", rec}
	}
	deterministic := func(c *rig.Config) {
		// Learning inside Process, so both runs learn at the same samples;
		// it stops a shard for a while, so no real-time deadline, and
		// raw blocks are kept until the shards catch up with a rig that
		// reads as fast as it can (--pace 0).
		c.Sort.Deterministic = true
		if c.Shards != nil {
			c.Shards.Deadline, c.Shards.StallTimeout, c.Shards.Retain = time.Minute, time.Minute, time.Minute
		}
	}
	dir := t.TempDir()
	local, remote := filepath.Join(dir, "local"), filepath.Join(dir, "remote")
	var out syncBuffer
	if err := runRig(context.Background(), args(local), &out, &out, deterministic); err != nil {
		t.Fatalf("local run: %v\n%s", err, out.String())
	}

	// The remote run waits for two shards; they join once its run file
	// (with shard.nk) is written.
	credDir, err := stream.CredentialsDir("remote")
	if err != nil {
		t.Fatal(err)
	}
	shardCtx, stopShards := context.WithCancel(context.Background())
	defer stopShards()
	var shards sync.WaitGroup
	var shardOut syncBuffer
	shardErrs := make(chan error, 2)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if rf, err := stream.ReadRunFile(credDir); err == nil && rf.Shard != "" {
				for _, name := range []string{"s1", "s2"} {
					shards.Add(1)
					go func() {
						defer shards.Done()
						shardErrs <- runShard(shardCtx, []string{"--rig", "remote", "--name", name}, &shardOut, &shardOut)
					}()
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var rout syncBuffer
	err = runRig(context.Background(), append(args(remote), "--sort", "remote", "--sort-shards", "2", "--sort-group", "16"), &rout, &rout, deterministic)
	stopShards()
	shards.Wait()
	close(shardErrs)
	if err != nil {
		t.Fatalf("remote run: %v\n%s\nshards:\n%s", err, rout.String(), shardOut.String())
	}
	for err := range shardErrs {
		if err != nil {
			t.Errorf("shard: %v\n%s", err, shardOut.String())
		}
	}
	for _, want := range []string{"sorting shards shard.nk", "sorting on shards (channel groups of 16): waiting for 2"} {
		if !strings.Contains(rout.String(), want) {
			t.Errorf("the remote run does not say %q:\n%s", want, rout.String())
		}
	}
	if !strings.Contains(shardOut.String(), "as shard (") {
		t.Errorf("the shards did not use the shard credential:\n%s", shardOut.String())
	}

	read := func(d string) []string {
		b, err := os.ReadFile(filepath.Join(d, rig.SpikesFile))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	l, r := read(local), read(remote)
	if len(l) < 1000 {
		t.Fatalf("the local run recorded %d spikes: too few to compare", len(l)-1)
	}
	sorted := 0
	for i := 1; i < len(l); i++ {
		if !strings.HasPrefix(l[i], "0,") {
			sorted++
		}
	}
	if len(l) != len(r) {
		t.Errorf("%d spikes recorded by the remote run, %d by the local one", len(r)-1, len(l)-1)
	}
	bad := 0
	for i := range min(len(l), len(r)) {
		if l[i] != r[i] {
			if bad++; bad <= 5 {
				t.Errorf("line %d: remote %q, local %q", i+1, r[i], l[i])
			}
		}
	}
	t.Logf("%d spikes (%d sorted), %d differ", len(l)-1, sorted, bad)
}
