// Package stream publishes spikes, decoder output, link status and events
// on NATS and reads them back.
//
// It holds an embedded nats-server for zero-setup use, a publisher that
// never blocks the pipeline (drops are counted), a subscriber client for
// downstream decoders and displays, optional JetStream capture, and a
// control service on the NATS micro protocol. The subject names and the
// versioned message schemas (compact little-endian binary plus JSON) are
// package stream/schema, which depends on the standard library only: a
// subscriber with a NATS client of its own imports it alone.
// docs/subjects.md lists the subjects and docs/schemas.md every byte of
// every message.
//
// # Publishing
//
// [NewPublisher] connects as a [Config] says (starting an embedded
// [Server] on loopback when no URL is given; a server that refuses the
// credentials, or does not answer within Config.ConnectTimeout, is an
// error at start) and returns a [Publisher]
// whose PublishSpikes, PublishEstimate, PublishStatus, PublishEvents,
// PublishLinkEvents, PublishTemplates and PublishRaw never block: they
// encode into a recycled buffer and enqueue into a bounded queue that one
// goroutine drains into NATS. A full queue drops the message and counts
// it; while NATS is away nats.go buffers up to Config.ReconnectBufSize
// bytes and what it refuses is counted too. [Publisher.PublishStatus]
// fills the counters into the status, so a slow or absent NATS shows on
// the status subject, not as a stalled pipeline. [Publisher.Close] drains
// and flushes.
//
// With Config.JetStream, [EnsureStream] creates or updates the stream
// [StreamName](rig) capturing spikes, decoder output, events and
// templates.
//
// # Subscribing
//
// A [Client] ([Dial] or [NewClient]) delivers a rig's messages, decoded,
// to the callbacks of a [Handler]: live with [Client.Subscribe] (binary or
// JSON), or from JetStream through a durable consumer with
// [Client.SubscribeDurable], which resumes after the last acknowledged
// message when the subscriber restarts.
//
// # Control
//
// [StartService] registers the NATS micro service "spikeline" with the
// endpoints info, stats, refit, threshold and command under
// spikeline.<rig>.ctl, backed by a [Controller] the pipeline implements.
// [Call] is the client side. Every control call goes to
// ServiceOptions.Audit as a [ControlRecord] (who, what, carried out or
// not, why), which [Publisher.PublishControl] publishes as an event.
//
// # Authorization
//
// The embedded server always runs with authorization: a [Layout] of roles
// (pipeline, reader, operator, behaviour publisher) rendered as
// nats-server configuration by [Layout.ServerConfig], with fresh NKeys
// from [NewCredentials] at every start. Operators are in their own account
// and reach the control service through a service import, so the server
// stamps each request with the caller ([Caller], verified). Credentials
// are saved for the user's tools with [Credentials.Save] in
// [CredentialsDir] and found again with [ReadRunFile]. Clients the server
// refuses are reported ([Refusal]) and published as access_refused
// events. The same configuration serves an external server or cluster
// (docs/run.md, "Security").
//
// # Testing
//
// Package streamtest starts real nats-servers in tests (loopback, free
// port, JetStream in t.TempDir, restart on the same port).
package stream
