package main

import (
	"flag"
	"os"

	"github.com/spikeline/spikeline/probe"
	"github.com/spikeline/spikeline/sort"
)

// registerProbeFlags adds run's --probe and --radius-um (as sort has
// them): the returned function sets the sorter's layout. A built-in layout
// needs the channel count (the simulator's, or --channels); a probe file
// carries its own, which the sorter checks against the device's when it
// starts.
func registerProbeFlags(fs *flag.FlagSet) func(cfg *sort.Config, channels int) error {
	spec := fs.String("probe", "", "probe layout: probeinterface JSON, CSV channel,x_um,y_um, or a built-in layout ("+probeBuiltins()+"). A spike seen on channels within --radius-um of each other is then one spike of one unit (docs/sorting.md). Default: every channel sorted alone")
	radius := fs.Float64("radius-um", 0, "with --probe: channels this close see one spike, µm (0: 50)")
	return func(cfg *sort.Config, channels int) error {
		if *spec == "" {
			if *radius != 0 {
				return usageErrorf("--radius-um needs --probe")
			}
			return nil
		}
		if *radius < 0 {
			return usageErrorf("--radius-um %g: want > 0", *radius)
		}
		var p *probe.Probe
		var err error
		if _, statErr := os.Stat(*spec); statErr == nil || channels > 0 {
			if channels > 0 {
				p, err = probe.Open(*spec, channels)
			} else {
				p, err = probe.ReadFile(*spec)
			}
		} else {
			return usageErrorf("--probe %q: a built-in layout needs --channels (or give a probe file)", *spec)
		}
		if err != nil {
			return usageErrorf("--probe: %v", err)
		}
		cfg.Probe, cfg.Radius = p, *radius
		return nil
	}
}
