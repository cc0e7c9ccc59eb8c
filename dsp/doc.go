// Package dsp designs digital filters.
//
// [Butterworth] designs a band-pass filter as second-order sections
// ([Section], scipy's sos layout), matching scipy.signal.butter to
// rounding; [Response] evaluates a cascade's frequency response. The
// filters that run these sections live where they are used: the sorter's
// multichannel float32 filter (sort.Filter, with its SIMD kernels), the
// simulator's calibration and the scorer's SNR measurement.
//
// testdata/butter_sos.json holds scipy's sections for the golden test
// (made by scripts/golden/butter.py; testdata/README.md).
package dsp
