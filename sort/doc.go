// Package sort is the real-time per-channel spike sorter.
//
// Blocks (device.Block) enter Sorter.Process; each channel shard runs a
// causal band-pass filter (Butterworth second-order sections), an optional
// common reference, a robust noise estimate (MAD/0.6745, tracked slowly),
// threshold detection with dead time, trough alignment, snippet extraction,
// online template learning (PCA + clustering) and template matching. Spikes
// leave per block, in time order, as []Spike.
//
// # Where things are
//
//   - config.go: Config and its defaults.
//   - filter.go: Butterworth design (scipy-compatible second-order sections).
//   - biquad.go: the filter's hot loop (scalar reference); biquad_simd.go
//     the AVX2 version built with GOEXPERIMENT=simd.
//   - sorter.go: Sorter, the steps over blocks, gaps, output ordering.
//   - shard.go: per-shard detection, alignment, matching, explaining
//     (template subtraction), tracking and noise.
//   - learn.go: template learning (PCA, k-means, unimodality merging) and
//     re-learning with stable unit ids.
//   - csv.go: the spikes CSV format.
//
// # Offline sorting
//
// With Config.Deterministic the results do not depend on timing or block
// sizes. Run a first pass, take Templates, and give them to a second pass
// in Config.Templates to sort every spike from the first sample.
//
// docs/sorting.md describes the algorithm, the parameters and how to
// choose them, and the measured speed.
package sort
