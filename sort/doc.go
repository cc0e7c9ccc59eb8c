// Package sort is the real-time per-channel spike sorter.
//
// Blocks (device.Block) enter Sorter.Process; each channel shard runs a
// causal band-pass filter (Butterworth second-order sections), an optional
// common reference, a robust noise estimate (MAD/0.6745, tracked slowly),
// threshold detection with dead time, trough alignment, snippet extraction,
// online template learning (PCA + clustering) and template matching. Spikes
// leave per block, in time order, as []Spike.
package sort
