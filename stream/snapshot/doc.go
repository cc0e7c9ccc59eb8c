// Package snapshot collects a running rig's messages from NATS for a
// while and summarises them: per channel firing rate, noise and markers
// (quiet, noisy, silent), the sorted units with their SNR, every decoder
// model scored against the behaviour (R², r), and the link and pipeline
// health from the status messages.
//
// A [Collector] subscribes with [Collector.Handler] (stream.Client) and
// asks the rig's control service for its description ([Collector.AskInfo]);
// [Collector.Snapshot] turns what arrived into a [Snapshot], whose JSON is
// snapshot.json. Package plots draws its figures (plots.Snapshot);
// `spikeline snapshot` does both (docs/snapshot.md).
package snapshot
