// Package tap prints a rig's NATS messages as they arrive, one line each:
// decoded and readable (times on the device clock, latency, gaps between
// spike batches), or as JSON lines. A [Printer] takes messages from
// subscriptions ([Printer.Handle]) or from JetStream through a durable
// consumer ([Durable]), which resumes after the last line printed;
// [Format] renders one message. It is `spikeline tap` (docs/cli.md).
package tap
