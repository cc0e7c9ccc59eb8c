package main

import (
	"flag"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/rig"
)

// registerModeFlags registers the flags that ask a headstage for a mode
// of protocol version 2 (rig.Config.Mode; docs/run.md, "--mode") and
// returns the function that checks them and sets them in a Config for a
// device of the given kind.
func registerModeFlags(fs *flag.FlagSet) func(cfg *rig.Config, kind string) error {
	mode := fs.String("mode", "raw", "what the headstage sends (protocol v2, docs/telemetry.md): raw, lossless, spikes (events sorted from their snippets) or features (decoded directly); the simulator is then served over loopback TCP")
	calib := fs.Duration("mode-calibrate", 10*time.Second, "spikes, features: raw samples read first to set the device's thresholds from each channel's noise")
	featThr := fs.String("feature-thresholds", "3.5,5,7,10", "features: thresholds the device counts crossings at, in noise σ, one per level (1 to 4)")
	return func(cfg *rig.Config, kind string) error {
		m, err := device.ParseMode(*mode)
		if err != nil {
			return usageErrorf("--mode: %v", err)
		}
		switch {
		case m != device.ModeRaw && kind != "sim" && kind != "serial" && kind != "usb" && kind != "tcp":
			return usageErrorf("--mode %s is for headstages the host commands (sim, serial, usb, tcp); a file of frames is in its own mode", m)
		case !(*calib > 0):
			return usageErrorf("--mode-calibrate %v: want > 0", *calib)
		}
		var levels []float64
		for _, f := range strings.Split(*featThr, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v == 0 || math.IsInf(v, 0) || math.Abs(v) > 100 {
				return usageErrorf("--feature-thresholds %q: want 1 to %d non-zero numbers of σ", *featThr, device.MaxLevels)
			}
			levels = append(levels, v)
		}
		if len(levels) > device.MaxLevels {
			return usageErrorf("--feature-thresholds %q: at most %d levels", *featThr, device.MaxLevels)
		}
		cfg.Mode, cfg.ModeCalibrate, cfg.FeatureLevels = m, *calib, levels
		return nil
	}
}
