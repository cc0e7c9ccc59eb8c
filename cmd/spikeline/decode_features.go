package main

import (
	"context"
	"math"

	"github.com/spikeline/spikeline/decode"
)

// loadFeatures reads --features, if given, and checks that decoder bins
// of binMS are a whole number of its bins.
func (in *decodeInputs) loadFeatures(ctx context.Context, binMS float64) error {
	if in.features == "" {
		return nil
	}
	ff, err := decode.ReadFeatures(ctx, in.features)
	if err != nil {
		return err
	}
	rate := ff.Rate
	if in.rate > 0 {
		rate = in.rate
	}
	width := decode.BinSamples(binMS/1000, rate)
	if width%ff.BinSamples != 0 {
		return usageErrorf("--bin-ms %g (%d samples at %g Hz) is not a whole number of the features' %d-sample bins (%g ms)",
			binMS, width, rate, ff.BinSamples, math.Round(1e6*float64(ff.BinSamples)/rate)/1e3)
	}
	if in.rate > 0 && in.rate != ff.Rate {
		return usageErrorf("--rate %g, but %s was recorded at %g Hz", in.rate, in.features, ff.Rate)
	}
	in.feature = ff
	return nil
}
