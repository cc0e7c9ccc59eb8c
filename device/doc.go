// Package device turns bytes from a headstage, a file or a socket into
// checked Blocks of multichannel samples.
//
// Data enters as bytes: the spikeline wire protocol (docs/protocol.md) from
// a serial/USB port, a pseudo-terminal, a TCP socket or a file, or raw
// interleaved int16 (.dat/.bin) files. It leaves as Blocks through the
// one-method Source interface. Every frame is checked (sync word, CRC-32C,
// sample counter); anomalies are never skipped silently: each is counted in
// Stats and reported as an Event carrying its device sample position.
package device
