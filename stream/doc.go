// Package stream publishes spikes, decoder output, link status and events
// on NATS and reads them back.
//
// It holds the subject names, the versioned message schemas (compact
// little-endian binary plus JSON), an embedded nats-server for zero-setup
// use, a publisher that never blocks the pipeline (drops are counted), a
// subscriber client for downstream decoders and displays, and optional
// JetStream capture.
package stream
