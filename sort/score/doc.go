// Package score compares a spike sorting with ground truth the way
// SpikeInterface's GroundTruthComparison does.
//
// Spikes enter as two []sort.Spike (ground truth and tested sorting) and a
// sample rate; Compare returns a Comparison holding, per ground-truth unit,
// the paired sorted unit and its tp/fn/fp counts, accuracy, precision,
// recall and false discovery rate, plus the unit categories (well detected,
// redundant, overmerged, false positive, bad). Summary groups accuracy by
// SNR band and WriteReport prints it all as text.
//
// # Method
//
// Two spikes match when their sample indices differ by at most
// DeltaFrames = int(DeltaTime/1000 * rate) (0.4 ms by default). For every
// (ground-truth unit, sorted unit) pair the matched count is a one-to-one
// matching of the two trains: each spike is used at most once, and the
// count is the largest possible (a greedy earliest-first sweep, which is
// optimal when every spike's tolerance window has the same width). The
// agreement of a pair is
//
//	agreement = matches / (n_gt + n_sorted - matches)
//
// Units are paired with the Hungarian method (Assign) on the agreement
// matrix with entries below MatchScore set to zero, as SpikeInterface's
// make_hungarian_match does; a pairing below MatchScore is dropped. For a
// paired ground-truth unit tp = matches, fn = n_gt - tp, fp = n_sorted - tp
// and
//
//	accuracy  = tp / (tp + fn + fp)
//	recall    = tp / (tp + fn)
//	precision = tp / (tp + fp)
//	false discovery rate = fp / (tp + fp)
//	miss rate = fn / n_gt
//
// An unpaired ground-truth unit scores 0 everywhere. A sorted unit is well
// detected when it is paired with agreement >= WellDetectedScore (0.8),
// redundant when it is unpaired but its best ground-truth match (agreement
// >= ChanceScore) has agreement >= RedundantScore and prefers another
// sorted unit, overmerged when it has agreement > OvermergedScore with two
// or more ground-truth units, a false positive unit when unpaired and not
// redundant, and bad when unpaired. Unit 0 (detected but unsorted) is not
// a unit on either side and its spikes are ignored.
//
// # Geometry
//
// With Options.Positions (the probe's channel positions) two spikes match
// only when their channels are at most Options.RadiusUM apart (50 µm by
// default), so that on a dense probe, where one neuron shows on several
// channels, a detection on any channel near the true main channel counts
// and a coincidence across the probe does not. The greedy matching then
// skips pairs too far apart.
//
// # SNR
//
// Summary groups units by an SNR the caller supplies (the simulator's
// units.csv has it). MeasureSNR measures it from a recording instead:
// the extremum of each unit's mean band-passed waveform on its main channel
// over the channel's noise (MAD/0.6745 of the band-passed signal), with the
// sorter's causal Butterworth filter.
//
// ReadSorting reads a sorting from a spikes CSV file or a Phy folder;
// ReadUnitsSNR reads the SNR column of a units CSV (ReadUnitsSNRFile).
//
// # Cost
//
// The sweep costs O((n_gt + n_sorted) log n) to sort the spikes (skipped
// when they are already in time order) plus one step per coincidence, and
// the Hungarian step runs per connected component of the thresholded
// agreement graph: a million spikes of 300 units score in about a second
// (BenchmarkCompare1M).
package score
