// Package offline sorts a recording file from start to end, as
// `spikeline sort` does: [Pass] runs a sorter (sort.Sorter on samples,
// sort.SnippetSorter on a file of spike events) over a device.Source and
// keeps its spikes, templates and noise; a two-pass sort first runs one
// with [LearnConfig] (more snippets, more frequent learning) and seeds the
// second with its templates. [WriteTables] writes spikes.csv and units.csv
// (quality metrics and good/mua labels, docs/quality.md), [Summary]
// draws summary.png from the recording's band-passed waveforms (package
// plots), and [Progress] shows how far a pass is on a terminal or in a
// log. A file of wire-protocol frames, an Intan .rhd/.rhs file or an Open
// Ephys recording is opened with [OpenFrames] after [ScanFrames] has read
// what it holds. docs/sorting.md describes the choices and their
// measurements.
package offline
