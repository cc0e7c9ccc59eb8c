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
//
// # RHX over TCP
//
// [OpenRHX] returns an [RHXSource], a device.Source streaming from the
// Intan RHX software (docs/intan.md). It speaks RHX's text command port
// (default 5000): reads Type, SampleRateHertz, NotchFilterFreqHertz and
// RunMode, finds the ports' amplifier channels, stops a running RHX
// (never a recording one), executes clearalldataoutputs, enables the
// chosen channels' band (set A-010.TCPDataOutputEnabled true ...), sets
// TCPNumberDataBlocksPerWrite (1 by default, for latency), asks RHX to
// listen on its waveform port (default 5001) and runs. Every exchange
// ends with "get runmode", whose reply marks the end of RHX's otherwise
// undelimited replies; a peer that does not answer as RHX does is
// refused ([ErrNotRHX]) with what it said. The waveform port carries
// data blocks ([WaveformBlockBytes], [AppendWaveformBlock]): the magic
// number 0x2ef07a08 and 128 frames of a uint32 timestamp and one uint16
// per enabled output, offset binary at 0.195 µV. Timestamps are the
// device clock (gaps counted exactly, a restart a reset), a magic number
// not where a block starts is found again and the bytes skipped counted,
// and with Reconnect a lost waveform connection is re-established (RHX
// told to listen again) and reported. Every byte follows Intan's
// open-source RHX: Engine/Threads/tcpdataoutputthread.cpp,
// Engine/Processing/commandparser.cpp, GUI/Widgets/tcpdisplay.cpp,
// Engine/Processing/tcpcommunicator.cpp, Engine/API/Hardware/rhxglobals.h.
// sim.RHXEmulator serves any device.Source behind the same two ports.
package intan
