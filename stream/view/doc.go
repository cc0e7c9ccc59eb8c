// Package view serves a live view of one rig's NATS streams to a web
// browser.
//
// A View subscribes (through a stream.Client and the stream.Handler that
// View.Handler returns) to a rig's spikes, decoder estimates, status,
// events and templates, aggregates them server-side and sends them to any
// number of browsers as Server-Sent Events. The page itself is one
// self-contained HTML file with plain JavaScript and canvas, embedded in
// the binary: no CDN, no build step. It draws
//
//   - a scrolling spike raster (channels × the last Window of device
//     time, one colour per unit, unit 0 grey, gaps shaded),
//   - per-channel firing rates and noise from the status subject, and the
//     link health: frames, CRC errors, gaps and lost samples, drops,
//     throughput, pipeline and publish latency,
//   - the decoder outputs (one panel per output name, e.g. vx and vy),
//     with the true behaviour overlaid when it is published as a decoder
//     model named in Config.Truth (default "behaviour", the name
//     "spikeline run" publishes it under, or "truth"),
//   - the current unit templates as small multiples,
//   - an events log (gaps, CRC bursts, reconnects, template changes).
//
// # Data flow
//
// NATS callbacks only append to bounded per-frame buffers under a mutex
// held for microseconds, so the subscription is never blocked. A ticker
// (View.Run) turns the buffers into one JSON frame every 1/FrameRate
// seconds (25 Hz by default): the spikes of the frame (reservoir-sampled
// down to MaxSpikesPerFrame when a large rig fires faster, with the true
// count sent along), the estimates, the latest status if a new one came,
// and new events. A frame is encoded once and shared by every browser.
// Each browser has a bounded queue; when it is full (a slow or background
// tab) frames are dropped for that browser only and counted, and the page
// shows the count. Frames of the last Window are kept so a browser that
// connects late sees the recent past at once.
//
// # HTTP endpoints
//
//	GET /         the page (text/html)
//	GET /events   the Server-Sent Events stream (text/event-stream)
//	GET /healthz  "ok" and the number of connected browsers
//
// The events stream carries five event types, each with a JSON document
// as data: "hello" (rig, settings, current templates, pipeline info,
// latest status and the events log, sent first; see Hello), "frame" (see
// Frame), "templates" (the current templates, whenever they changed, at
// most once a second), "info" (the stream.Info of the rig's control
// service, when View.SetInfo is called) and "lag" ({"dropped": N}, frames
// this browser missed because it read too slowly).
//
// The command "spikeline view" wires a View to a NATS connection and an
// HTTP listener on loopback; docs/view.md describes the page.
package view
