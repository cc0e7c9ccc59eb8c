// Package openephys reads and writes the Open Ephys GUI's binary format
// (GUI 0.6 and later; docs/openephys.md).
//
// A recording is a folder (Record Node 101/experiment1/recording1) with
// an index, structure.oebin ([Structure]), and per stream:
//
//	continuous/<processor>-<id>.<stream>/continuous.dat      int16, channels interleaved
//	continuous/<processor>-<id>.<stream>/sample_numbers.npy  int64, one per sample
//	continuous/<processor>-<id>.<stream>/timestamps.npy      float64 seconds, one per sample
//	events/<processor>-<id>.<stream>/TTL/states.npy          int16 +line on, -line off
//	events/.../TTL/sample_numbers.npy, timestamps.npy, full_words.npy
//	events/MessageCenter/text.npy, sample_numbers.npy, timestamps.npy
//	spikes/<processor>-<id>.<stream>/<electrode>/waveforms.npy, sample_numbers.npy,
//	    timestamps.npy, electrode_indices.npy, clusters.npy
//
// # Reading
//
// [Open] returns a [Source], a device.Source of one continuous stream:
// Blocks of the electrode channels (or the channels chosen), with the
// sample numbers as device clock, so that a jump in sample_numbers.npy
// is a device.EventGap of exactly the samples missing. Everything that
// can be checked is checked when the recording is opened (the channel
// counts of structure.oebin against each other and against the size of
// continuous.dat, one sample number per sample, rate and gains within
// the limits of package device), and refused with an error naming the
// file and byte offset. [ReadTTL] and [ReadSpikes] read the events and
// spikes.
//
// # Writing
//
// [Create] returns a [Writer] that records Blocks as the GUI's Record
// Node does (samples as received, gaps as jumps in the sample numbers, a
// new recording folder when acquisition restarts), sorted spikes as one
// spike folder per channel with their waveforms, and stimulation as TTL
// events with a text message. The layout follows the GUI's own writer,
// Source/Processors/RecordNode/BinaryFormat/BinaryRecording.cpp and
// NpyFile.cpp in github.com/open-ephys/plugin-GUI, down to the 128-byte
// .npy headers its File Reader expects; neo's OpenEphysBinaryRawIO reads
// what it writes (the tests check it, with Debian's python3-neo).
package openephys
