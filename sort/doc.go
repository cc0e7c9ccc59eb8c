// Package sort is the real-time spike sorter: per channel, or, with probe
// geometry (Config.Probe), per neighbourhood of channels, so that a spike
// seen on several neighbouring channels is one spike of one unit.
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
//   - the Butterworth design (scipy-compatible second-order sections) is
//     package dsp; filter_test.go checks the filter against scipy.
//   - biquad.go: the filter's hot loop (scalar reference, and the fused
//     loop for three sections); biquad_amd64.s the AVX2 assembly filter
//     and 64-channel threshold scan used on amd64 CPUs with AVX2 in every
//     build; biquad_simd.go the simd/archsimd version built with
//     GOEXPERIMENT=simd (now the fallback for the last channels and for
//     float32 input). All are bit-identical to the scalar loops
//     (biquad_test.go checks them against a plain reference loop).
//   - sorter.go: Sorter, the steps over blocks, gaps, output ordering.
//   - shard.go: per-shard detection, alignment, matching, explaining
//     (template subtraction), tracking and noise.
//   - learn.go: template learning (PCA, k-means, unimodality merging) and
//     re-learning with stable unit ids; split.go the ISO-SPLIT-style merge
//     and split of whitened snippets.
//   - geo.go: sorting with probe geometry — one event per spike across
//     neighbouring channels, matching and subtraction of multi-channel
//     templates; geolearn.go their learning and the merging of units two
//     channels found; basis.go the principal subspace learning compares
//     clusters in.
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
