// Package intan reads Intan Technologies' data: .rhd and .rhs files, and
// the live stream of the Intan RHX software's TCP waveform port.
//
// # Files
//
// [OpenFile] returns a [FileSource], a device.Source of the amplifier
// channels of an .rhd (RHD recording controller, USB interface board) or
// .rhs (RHS stimulation/recording controller) file of any data file
// version from 1.0 to 3.x ([ReadHeader]: 60-sample data blocks before
// RHD version 2.0, 128 after; unsigned timestamps before 1.2, signed
// after; temperature sensors, board mode and reference channel as each
// version added them). Samples are the amplifiers' offset-binary words
// as int16 counts of [Gain] µV; timestamps are the device clock, so a
// jump is a device.EventGap of exactly the samples lost. The notch filter
// setting is reported (Header.NotchHz, NotchApplied), never applied.
//
// The layouts follow Intan's "RHD2000/RHS2000 data file formats"
// application notes and Intan's readers; testdata/make_intan.py builds
// test files from that description, and neo's IntanRawIO (Debian's
// python3-neo) must read the same samples as OpenFile from every one.
package intan
