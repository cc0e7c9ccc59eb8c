package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/rig"
)

func init() {
	register(command{
		name:    "recover",
		summary: "make recordings cut short by a crash or a power loss final (readers already read them up to their last sync)",
		run:     runRecover,
	})
}

func runRecover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("recover", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline recover DIR [DIR...]")
		fmt.Fprintln(stderr, "\nMakes each recording DIR (written by 'spikeline run --record'; its segment-N")
		fmt.Fprintln(stderr, "folders too) read like one closed cleanly: the data after the last sync (at most")
		fmt.Fprintln(stderr, "about a second, whose gaps the sidecar may not list) and a torn last sample are")
		fmt.Fprintln(stderr, "cut, n_samples is written, and spikes.csv loses a torn last line. A recording")
		fmt.Fprintln(stderr, "closed cleanly is left alone. See docs/formats.md.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, true); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageErrorf("give the recording directories to recover")
	}
	for _, dir := range fs.Args() {
		if fi, err := os.Stat(filepath.Join(dir, device.RecordingMeta)); err != nil || !fi.Mode().IsRegular() {
			return usageErrorf("%s: not a recording directory (no %s)", dir, device.RecordingMeta)
		}
		err := rig.Recover(dir, func(r rig.Recovered) {
			m := r.Meta
			if r.Clean {
				fmt.Fprintf(stdout, "%s: closed cleanly (%d samples, %.1f s): nothing to do\n", r.Dir, m.Samples, float64(m.Samples)/m.Rate)
			} else {
				fmt.Fprintf(stdout, "%s: recovered: %d samples (%.1f s) on %d channels, %d gaps listed; cut %d bytes (%.2f s) written after the last sync or torn\n",
					r.Dir, m.Samples, float64(m.Samples)/m.Rate, m.Channels, len(m.Gaps), r.Cut, float64(r.Cut)/float64(2*m.Channels)/m.Rate)
			}
			if r.SpikesCut > 0 {
				fmt.Fprintf(stdout, "%s: cut a torn last line (%d bytes)\n", filepath.Join(r.Dir, rig.SpikesFile), r.SpikesCut)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// warnUnfinished tells the person at the bench that a recording is read
// only up to its last sync (it was not closed: being written, or left by
// a crash), and how to make that final.
func warnUnfinished(w io.Writer, cmd, dir string, src *device.RawSource) {
	cfg := src.Config()
	if !cfg.Unfinished {
		return
	}
	fmt.Fprintf(w, "spikeline %s: %s was not closed (still being written, or cut by a crash): reading the %d samples (%.1f s) synced; %d bytes after them are ignored ('spikeline recover %s' makes this final)\n",
		cmd, dir, src.Samples(), float64(src.Samples())/cfg.Rate, src.Ignored(), dir)
}
