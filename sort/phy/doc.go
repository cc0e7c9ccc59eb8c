// Package phy writes a sorting as a Phy (phylib TemplateModel) folder and
// reads and writes NumPy .npy files.
//
// Write takes the spikes and templates of a sort (sort.Spike,
// sort.Template), the per-channel noise and a description of the raw
// recording, and writes the files Phy's template-gui loads:
// spike_times.npy, spike_templates.npy, spike_clusters.npy,
// amplitudes.npy, templates.npy, similar_templates.npy, channel_map.npy,
// channel_positions.npy, whitening_mat.npy, whitening_mat_inv.npy,
// params.py, and the cluster labels and quality metrics (sort/quality) as
// Kilosort writes them (cluster_KSLabel.tsv, cluster_group.tsv,
// cluster_ContamPct.tsv, cluster_Amplitude.tsv) and as SpikeInterface's
// export_to_phy does (cluster_<metric>.tsv). docs/phy.md says how to open
// the result.
//
// ReadSorting reads such a folder back, or one Kilosort wrote, as
// []sort.Spike, so that other sorters' results can be scored (sort/score)
// with the same code as spikeline's.
//
// WriteNPY writes one array in the NPY format version 1.0 (little-endian,
// C order, header padded to a multiple of 64 bytes); ReadNPY reads one back
// and reports where a malformed file went wrong.
package phy
