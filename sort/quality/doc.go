// Package quality computes unit quality metrics with SpikeInterface's names
// and definitions, and labels units good or mua.
//
// The metrics are those of SpikeInterface 0.104.8
// (src/spikeinterface/metrics/quality/misc_metrics.py and
// src/spikeinterface/metrics/spiketrain/metrics.py), with its default
// parameters: num_spikes, firing_rate, presence_ratio, snr,
// isi_violations_ratio and isi_violations_count (Hill et al.),
// rp_contamination and rp_violations (Llobet et al.), amplitude_cutoff
// (Hill et al.) and amplitude_median. A metric that is undefined for a unit
// is NaN, as in SpikeInterface. docs/quality.md gives the formulas, the
// citations and where spikeline differs.
//
// # Offline
//
// [Params.Compute] measures one unit from its spike samples, amplitudes,
// template and channel noise; [Params.Sorting] measures every unit of a
// sort ([sort.Spike], [sort.Template], per-channel noise) and labels it
// ([Params.Label]); [WriteUnitsCSV] writes the result as units.csv.
// testdata/spikeinterface_metrics.json holds metrics computed by
// SpikeInterface itself (scripts/golden/quality.py); the tests require every
// value to match to the last bit.
//
// # Live
//
// A [Tracker] keeps, per unit, a few counters and a 1,024-bin amplitude
// histogram, updated in O(1) per spike without allocating ([Tracker.Add]),
// and computes the metrics from them when asked ([Tracker.Metrics];
// spikeline run does so when it publishes templates). Everything but
// amplitude_median and amplitude_cutoff is exact; those two come from the
// histogram (docs/quality.md says how close).
package quality
