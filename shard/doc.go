// Package shard sorts a rig's channels on other processes and machines
// over NATS: a rig splits its stream into channel groups, shards (Worker,
// the `spikeline shard` command) sort the groups they are given with the
// sort package, and the rig (Remote) merges their spike batches back into
// the one time-ordered stream that tiles the device clock.
//
// # Data in and out
//
// Remote.Send publishes each block's groups as raw blocks
// (spikeline.<rig>.raw.<group>, the raw schema, with a per-group sequence
// number header) and keeps the last Options.Retain of them, which a shard
// that missed some asks for again (Nak). A Worker sorts each group it
// holds and publishes, in order, the group's spike batches and templates
// on spikeline.<rig>.shard.out.<group> with a per-lease sequence number,
// keeping its last output for the rig to ask for again (Ask). Remote
// merges them (merge.go) and delivers the merged stream on
// Remote.Batches: batches that tile the device clock, spikes in (sample,
// channel) order, units numbered by the rig as one sorter would number
// them.
//
// # Who sorts what
//
// The rig decides (remote.go): it publishes a plan (which shard holds
// which group, under which lease epoch) five times a second; shards beat
// five times a second. A group's sorter state (filter, noise, templates)
// lives on one shard, so groups are leased to shards, never balanced per
// message as a NATS queue group would. A shard silent for
// Options.BeatTimeout, or a lease whose output falls Options.StallTimeout
// behind, loses its groups to other shards, seeded with the group's last
// templates; a group that has not delivered its spikes Options.Deadline
// after its block was sent is left out of the merged stream for those
// samples, reported exactly (samples and channels) as sort_lost events,
// so one dead shard never stalls the others. A shard that joins takes
// groups from the busiest shard without a gap: the old lease runs until
// the new one has warmed up, and the merge switches at the new lease's
// first sample.
//
// docs/scale-out.md argues the design and gives the measured costs.
package shard
