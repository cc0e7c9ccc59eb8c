// Package probe describes where a recording's channels sit: the position
// of each channel's contact on the probe, in µm.
//
// A Probe enters from a file — a probeinterface JSON file (the format
// SpikeInterface, Kilosort and Open Ephys users already have, ReadJSON),
// a CSV of channel,x_um,y_um (ReadCSV) — or from a built-in layout
// (Builtin: a linear shank, a Utah 10 × 10 array, 32-contact threads,
// Neuropixels 1.0 bank 0). Open takes any of them by name. Every reader
// refuses bad geometry — a channel given twice, a channel missing,
// positions that are not numbers, two channels at one place — with an
// *Error naming the file and line; Probe.Check refuses a probe whose
// channel count disagrees with the recording's.
//
// The sorter (package sort) uses Neighbours to make one event of a spike
// seen on several nearby channels; Phy's channel_positions.npy, the
// recording sidecar and the live page's probe view draw the same layout.
// Channels are 0-based, as everywhere in spikeline: channel c of the
// recording is Positions[c].
package probe
