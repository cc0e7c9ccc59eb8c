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
//   - the probe as a grid of channels coloured by firing rate, with a bar
//     for the noise and markers for silent, saturated and disconnected
//     channels (ProbeJSON, with every status); a click selects channels,
//   - the link health: samples/s, dropped samples, CRC errors,
//     reconnects, latency p50/p99, and every other counter of the status,
//   - the decoder outputs (one panel per output name, e.g. vx and vy),
//     with the true behaviour overlaid when it is published as a decoder
//     model named in Config.Truth (default "behaviour", the name
//     "spikeline run" publishes it under, or "truth"), and the R²,
//   - the current unit templates as small multiples,
//   - an events log (gaps, CRC bursts, reconnects, template changes),
//   - with a Live attached (the view of "spikeline run"): the band-passed
//     trace of the selected channels with the threshold line, and their
//     last few hundred waveforms coloured by unit under the templates.
//
// Every panel has a button that saves its canvas as PNG in the browser.
//
// # In-process detail
//
// NATS carries spikes, status, templates and decoder output, but not the
// filtered signal. A view inside the pipeline gets the rest through a
// Live (View.AttachLive): the pipeline calls Live.Feed after the sorter
// for every block, which scans a stripe of channels for samples at the
// int16 rails and flat lines, counts sorted spikes per channel (the
// default channel is the busiest) and queues the spikes of watched
// channels; it does not allocate and holds a lock only to append. At
// DetailRate (10 Hz) the view's goroutine reads what the watched channels
// gained from the sorter (Tracer: sort.Sorter's Watch and Trace), turns
// the trace into min/max columns aligned on the device clock (column k
// covers samples [k·spp, (k+1)·spp)), cuts the new waveforms around their
// spikes, and sends one "detail" event (DetailJSON) to every browser with
// only what is new. A browser that connects gets a full snapshot.
//
// Browsers select channels with POST /select (their id from the hello
// event); the sorter watches the union of the selections, most recent
// first, and the default channel, at most MaxWatch channels; a browser
// that leaves is forgotten.
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
//	POST /select  a browser's channel selection (form: client, ch); with a Live
//	GET /healthz  "ok" and the number of connected browsers
//
// The events stream carries six event types, each with a JSON document
// as data: "hello" (the browser's id, rig, settings, current templates,
// pipeline info, latest status and probe markers, the Live's settings and
// the events log, sent first; see Hello), "frame" (see Frame), "detail"
// (see DetailJSON; with a Live only), "templates" (the current
// templates, whenever they changed, at most once a second), "info" (the
// stream.Info of the rig's control service, when View.SetInfo is called)
// and "lag" ({"dropped": N}, frames this browser missed because it read
// too slowly). Detail events go through the same bounded queue as frames
// and are dropped with them for a slow browser.
//
// The command "spikeline view" wires a View to a NATS connection and an
// HTTP listener on loopback; "spikeline run" serves one with a Live on
// its --http address. docs/view.md describes the page.
package view
