// Package schema encodes and decodes every message spikeline publishes on
// NATS, and names its subjects. It depends on Go's standard library only,
// so a subscriber that brings its own NATS client (or reads a capture)
// decodes with it alone.
//
// # Subjects
//
// Everything of one rig lives under spikeline.<rig>.: spikes, decode.<model>,
// status, events, templates, raw.<group> and ctl.<endpoint>. [Subjects]
// builds them after checking the names with [ValidToken]; [ParseSubject]
// takes one apart. A subject with [JSONSuffix] carries the JSON twin of
// the binary message.
//
// # Messages
//
// Every binary message starts with a 32-byte [Header]: magic "SPKL",
// [Version], [Type], flags, the device sample index, the sample rate and
// the publish time. The message types are [SpikeBatch] (the spikes of one
// block, batched), [EstimateMsg], [Status], [EventBatch], [TemplateBatch]
// and [RawBlock]; each has AppendBinary/UnmarshalBinary and
// MarshalJSON/UnmarshalJSON. [Decode], [DecodeJSON] and [DecodeSubject]
// decode any of them into a [Message]. Decoding never panics on input; it
// returns a [*DecodeError] naming the byte offset and field.
// [AppendSpikes] and [AppendRaw] encode without allocating.
//
// # Values
//
// The values messages carry are defined here, for every package that
// makes them: [Spike] and [Template] (the sorter's, as sort.Spike and
// sort.Template), [Unit], [Metrics] and [Label] (unit quality, as
// package sort/quality names them), [LinkStats] (a link's counters, the
// one list that device.Stats, the status, /metrics and the snapshot
// share) and [Event] with its [EventKind]s. A [ControlRecord] is the
// audit of a control call, carried in an event's detail.
//
// docs/schemas.md documents every byte; its Python decoder and byte
// tables are checked by this package's tests.
package schema
