// Package rig is the live pipeline of spikeline as a library: a device's
// blocks are sorted on every channel, decoded into behaviour and published
// on NATS, with a control service, a live page, Prometheus metrics and a
// crash-safe recording. 'spikeline run' is a thin command over it: it
// turns flags into a [Config] and calls [New] and [Rig.Run].
//
//	r, err := rig.New(rig.Config{Device: "serial:/dev/ttyACM0", HTTP: "127.0.0.1:8080"})
//	if err != nil { ... }
//	err = r.Run(ctx) // until the device ends, Config.Duration, or ctx ends
//
// # The flow
//
// Four goroutines and two bounded hand-offs, so that a slow consumer never
// stalls the device:
//
//	reader ──(bounded queue of blocks, Config.Queue)──► loop ──► publisher queue ──► NATS
//	  device.Source.Next, raw recording            sorter (all cores), decoder,
//	  behaviour from the device                    status, spike recording, live page
//
// The reader copies each block into a recycled buffer and queues it; the
// loop (rig.go) is the only owner of the sorter's output and of the
// decoder, and publishes every spike batch, decoder estimate, status,
// event and template snapshot through a non-blocking stream.Publisher.
// Everything other goroutines read (status, R², counters) crosses as an
// atomic snapshot. When ctx ends the reader stops; the loop sorts what is
// queued, flushes the sorter and publishes the last batch before NATS is
// drained. A block's Received time starts every latency figure; OnBatch
// sees each batch as it is handed to the publisher.
//
// # Devices
//
// Config.Device names a device of the registry (device.Open: "sim",
// "sim:pty", "serial:PATH", "usb:VID:PID", "tcp:HOST:PORT",
// "rhx:HOST[:PORT]", "file:PATH"), opened with Config.DeviceOptions; or
// Config.Source is any device.Source the caller wrote (see
// examples/customdevice). What a device can do beyond Next is found by
// type assertion: link statistics (device.StatsReporter) go into the
// status, commands (device.Commander) reach it through the control
// service, stimulation only through Config.StimLimits.
//
// # Modes of protocol version 2
//
// A headstage that sends spike events or features instead of samples
// (docs/telemetry.md) is sorted and decoded all the same (modes.go): its
// spike events go through a sort.SnippetSorter in place of the sorter
// (templates learned on the snippets), its features become decoder
// records (decode.FeatureSpikes) under the features grouping, and no
// spikes are published. Config.Mode asks a headstage that takes commands
// for a mode after calibrating its thresholds on raw samples; a file of
// frames is read in the mode it holds.
//
// # Sessions and segments
//
// The session is cut into segments where the stream cannot go on as it
// was (device.Segmenter: a format change, a counter reset, a long gap):
// the sorter is flushed (and restarted for a new format), the decoder
// starts again on the new clock, a segment event is published, and with
// Config.Record each segment is a recording of its own ([SegmentDir]).
// After a crash, [Recover] makes the session's recordings read like ones
// closed cleanly (`spikeline recover`).
//
// # Decoding
//
// With Config.Model a fitted decoder runs from the first block. Without,
// the rig calibrates one live once templates are learned: Config.Decoder
// on Config.Grouping, fitted after Config.Calibrate seconds of spikes and
// behaviour, in the background, then refitted on request. Behaviour comes
// from a device that is a [BehaviourSource] (the simulator), from
// Config.Behaviour, or from the NATS subject Config.BehaviourSubject; the
// device's own is published as the model [BehaviourModel]. The decoder's
// R² against it over the last 30 s is in the status line, the page and
// /metrics.
//
// # Control
//
// A Rig is a stream.Controller: [Rig.Info], [Rig.Stats], [Rig.Refit],
// [Rig.SetThreshold] and [Rig.DeviceCommand] back the NATS micro service
// spikeline.<rig>.ctl, which Run starts; every call is audited and
// published as an event. The embedded NATS server runs with authorization
// (stream.Layout); its credentials are saved for the user's tools while
// the rig runs.
//
// # HTTP
//
// With Config.HTTP the rig serves the live page (package stream/view: a
// spike raster, rates, noise, decoder output, templates, events, the
// band-passed trace and waveforms of selected channels) at "/" and
// Prometheus metrics at "/metrics" (read at scrape time, nothing on the
// hot path), behind a Host check on loopback.
//
// # Files
//
// rig.go holds the Rig, Run's start-up and the reader; loop.go the sorter
// loop; control.go the control service's methods; config.go Config and
// New; source.go the opened device; segment.go, record*.go and
// recover.go the recording; http.go, view.go and metrics.go the page and metrics;
// security.go stimulation, credentials and the audit; r2.go and
// statusline.go what the person at the bench sees.
package rig
