// Package device turns bytes from a headstage, a file or a socket into
// checked Blocks of multichannel samples.
//
// Data enters as bytes: the spikeline wire protocol (docs/protocol.md) from
// a serial/USB port, a pseudo-terminal, a TCP socket or a file, or raw
// interleaved int16 (.dat/.bin) files. It leaves as Blocks through the
// one-method Source interface. Every frame is checked (sync word, CRC-32C,
// sample counter); anomalies are never skipped silently: each is counted in
// Stats and reported as an Event carrying its device sample position.
//
// # Opening devices
//
// [Open] opens a device from a specification "kind:arg" and [Options]
// through a registry of kinds: this package registers serial:PATH,
// usb:VID:PID[:SERIAL], tcp:HOST:PORT and file:PATH; package sim
// registers sim (sim, sim:pty, sim:tcp) and device/intan rhx:HOST[:PORT],
// each from its own init ([Register]). file: tries the formats other
// packages register ([RegisterFormat]: Intan .rhd/.rhs, Open Ephys
// recordings), then a wire-protocol capture, then a raw recording. A new
// kind is one file and one Register line. What a device can do beyond
// Next is an optional interface the caller asserts: [StatsReporter],
// [Commander], [Pinger], [ChannelNamer], [EventTaker], io.Closer and
// fmt.Stringer (its name). A bad specification is an [ErrSpec] error.
//
// # Wire protocol
//
// A frame is a 36-byte header (sync word A5 5A C3 3C, version, type,
// flags, payload length, channels, samples, rate, gain, 64-bit sample
// counter, header CRC-32C), a payload and a frame CRC-32C; docs/protocol.md
// has the byte tables. [AppendData], [AppendCommand] and [AppendReply]
// append frames to a buffer; an [Encoder] writes them to an io.Writer.
// Data frames carry int16 samples in time-major order; command frames
// carry a [Command] (start, stop, set rate, set channels, ping, stimulate,
// info) and reply frames a [Reply].
//
// Version 2 of the protocol adds what an implant's radio needs: a
// [Compressor] writes compressed data frames (lossless, each decodable on
// its own), and a device in spike-event or feature mode runs the
// [Detector] (integer arithmetic, the algorithm of the C reference) and
// sends [Spikes] ([AppendSpikes]) or [Features] ([AppendFeatures]), with
// its [Settings] ([AppendSettings]); the host picks the [Mode] and the
// thresholds by command ([OpSetMode], [OpSetThresholds]...). The Decoder
// reads every type; a [WireSource] turns compressed frames into Blocks of
// samples, and spike and feature frames into Blocks carrying them.
//
// # Where anomalies are detected
//
// The [Decoder] is the one place that checks a byte stream: it resyncs
// after garbage or a bad CRC, rejects impossible frames, and follows the
// sample counter and format of data frames, queueing an [Event] for every
// CRC failure, run of skipped bytes, bad frame, gap (with the exact number
// of samples lost), counter reset and format change, and counting them in
// [Stats]. Sources built on it ([WireSource], [WireFile], the serial
// source) attach those Events to the Block that follows them and add only
// what the Decoder cannot see (disconnects, reconnections, frames dropped
// on the host). [Decoder.Reconnect] carries the counter tracking across a
// new connection.
//
// # Files
//
// [OpenRaw] and [OpenRecording] read raw int16 recordings (with their
// recording.json sidecar, [Meta]); they refuse a file whose size does not
// fit the channel count or the sidecar before producing anything, with a
// [FrameError] naming the file and byte offset. [OpenWireFile] reads a
// capture of the wire protocol. [CreateRecording] returns a [RawWriter]
// that records Blocks crash-safely in the same raw layout. docs/formats.md
// describes the files.
//
// # Limits
//
// Every number that comes from outside (channels, rate and gain in
// sidecars, flags and wire frames; block and queue sizes; the size of the
// small files read whole) is checked against the constants of limits.go
// ([MaxChannels], [MaxRate], [MaxSidecarBytes], ...) and refused with a
// [RangeError] naming its source, field and allowed range.
// [ReadFileLimit], [OpenRegular] and [LineLimit] read outside files
// without letting their size or kind (a pipe, /dev/zero) decide what is
// allocated.
//
// # Pacing
//
// Sources read as fast as they can. A [Pacer] (or [Paced] around any
// Source, or RawConfig.Pace) releases Blocks at the rate the device
// produced them, from their sample index and rate, for real-time replay.
package device
