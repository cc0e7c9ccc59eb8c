// Package plots draws every figure spikeline writes, with gonum/plot, as
// PNG files: the one place for rendering, so that the packages that
// compute (sort, decode, sim, stream) depend on no plotting library.
//
// # Figures
//
//   - [Summary]: summary.png of `spikeline sort`, one panel per channel
//     with sorted units ([ChoosePanels] picks the channels and the
//     spikes, [AlignWaves] aligns their waveforms on the template).
//   - [Evaluation]: a decoder's held-out evaluation (`spikeline decode
//     eval`), true behaviour black and decoded values blue;
//     [DrawTraces] lays out the same panels on any canvas (the
//     snapshot's decoder.png).
//   - [Simulation]: a few seconds of a simulated recording, raw and in the
//     spike band with the ground truth marked, and the units' templates
//     (`spikeline sim --plot`).
//
// # Building blocks
//
// [NewFigure] makes a white image with a title line, [Body] is the canvas
// below it, [Text] the text style of titles and notes, [SavePNG] writes
// the image. [UnitColor] gives the i-th unit of a channel the same colour
// in every figure.
package plots
