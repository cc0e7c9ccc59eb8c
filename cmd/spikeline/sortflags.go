package main

import (
	"flag"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/sort"
)

// registerSortFlags registers the sorter settings shared by the commands
// that sort (sort, run) on fs and returns a function that builds and checks
// the sort.Config after parsing. Zero values mean the sorter's defaults.
func registerSortFlags(fs *flag.FlagSet) func() (sort.Config, error) {
	threshold := fs.Float64("threshold", 0, "detection threshold in noise σ (0: sorter default, 4)")
	tthreshold := fs.Float64("template-threshold", 0, "lower threshold in noise σ on channels with templates: a crossing between it and --threshold is a spike only when a template explains it (0: sorter default, 0.75 × --threshold; --threshold or more: off)")
	band := fs.String("band", "", "band-pass corners in Hz, LOW-HIGH (default 300-6000)")
	reference := fs.String("reference", "none", "common reference: none, average (CAR) or median (CMR)")
	sign := fs.String("sign", "negative", "detection polarity: negative, positive or both")
	learn := fs.Float64("learn", 0, "seconds of spikes templates are learned from (0: sorter default, 10)")
	workers := fs.Int("workers", 0, "parallel channel shards (0: all cores)")
	return func() (sort.Config, error) {
		var c sort.Config
		switch {
		case *threshold < 0:
			return c, usageErrorf("--threshold %g: want > 0", *threshold)
		case *tthreshold < 0:
			return c, usageErrorf("--template-threshold %g: want > 0", *tthreshold)
		case *learn < 0:
			return c, usageErrorf("--learn %g: want > 0 seconds", *learn)
		case *workers < 0:
			return c, usageErrorf("--workers %d: want >= 0", *workers)
		}
		c.Threshold, c.TemplateThreshold, c.LearnSeconds, c.Workers = *threshold, *tthreshold, *learn, *workers
		var err error
		if c.Reference, err = sort.ParseReference(*reference); err != nil {
			return c, usageErrorf("--reference: %v", err)
		}
		if c.Sign, err = sort.ParseSign(*sign); err != nil {
			return c, usageErrorf("--sign: %v", err)
		}
		if *band != "" {
			lo, hi, ok := strings.Cut(*band, "-")
			l, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
			h, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
			if !ok || err1 != nil || err2 != nil || !(l > 0) || !(h > l) {
				return c, usageErrorf("--band %q: want LOW-HIGH in Hz with 0 < LOW < HIGH, e.g. 300-6000", *band)
			}
			c.Low, c.High = l, h
		}
		return c, nil
	}
}
