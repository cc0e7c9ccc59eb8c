// Package decode bins sorted spikes and runs linear decoders (ridge/Wiener
// filters with causal lags, Kalman filters) that map binned counts to
// behaviour such as 2-D hand velocity.
//
// Spikes (sort.Spike, or CSV files) enter; models are fitted on a
// chronological split, evaluated by R² and correlation, saved as versioned
// JSON, and run online to emit one Estimate per closed bin.
//
// # Bins
//
// Bin k covers device samples [k·B, (k+1)·B): bins are aligned to the
// device sample clock, never host time. [BinSpikes] counts spikes per unit
// ([ByUnit]), per channel ([ByChannel], the threshold-crossing baseline)
// or both ([ByUnitAndUnsorted]); a bin overlapping a [Gap] is not
// observed. [Behaviour] (from [ReadBehaviourCSV]) is averaged into the
// same bins; [NewDataset] does both.
//
// # Fitting and evaluation
//
// [Fit] fits a [Wiener] filter (ridge on z-scored lagged counts, λ chosen
// by blocked chronological cross-validation) or a [Kalman] filter (least
// squares A, W, H, Q; optional steady-state gain) on the first part of a
// [Dataset]. [Evaluate] decodes the whole dataset causally and scores the
// held-out rows ([R2], [Correlation]); plots.Evaluation draws true vs
// decoded traces. A [Model] is saved with [Model.Save] and read with
// [Load]; [Model.CheckKeys] reports units missing from or extra to a
// stream as a [UnitMismatchError].
//
// # Live decoding
//
// [Online] takes spikes as they arrive ([Online.Add]), gaps
// ([Online.MarkGap]) and the device sample up to which all spikes have
// been delivered ([Online.Advance]), and emits one [Estimate] per closed
// bin, flagged Degraded when made without full data. A spike adds its
// unit's row of the decoder's projection to its bin's accumulator, so a
// bin closes in O(lags·outputs) or O(state²) time regardless of the
// number of units, without allocating. [Model.Predict] runs the same
// arithmetic over binned counts; tests check the two agree bin for bin.
//
// [Calibrator] collects spikes and behaviour in the live pipeline, fits
// after the first N seconds (in the background if wanted) and returns an
// Online; [Calibrator.CatchUp] brings a freshly fitted Online up to date
// without losing or double-counting spikes.
//
// See docs/decoding.md for file formats, the command line and measured
// accuracy and speed.
package decode
