package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

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
		dirs := []string{dir}
		segs, _ := filepath.Glob(filepath.Join(dir, "segment-*", device.RecordingMeta))
		for _, s := range segs {
			dirs = append(dirs, filepath.Dir(s))
		}
		slices.SortFunc(dirs[1:], func(a, b string) int { return segmentNumber(a) - segmentNumber(b) })
		for _, d := range dirs {
			if err := recoverOne(d, stdout); err != nil {
				return err
			}
		}
	}
	return nil
}

// recoverOne recovers the recording in dir and its spikes.csv.
func recoverOne(dir string, stdout io.Writer) error {
	before, err := device.ReadMeta(filepath.Join(dir, device.RecordingMeta))
	if err != nil {
		return err
	}
	m, cut, err := device.RecoverRecording(dir)
	if err != nil {
		return err
	}
	switch {
	case !before.InProgress && cut == 0 && before.Samples != 0:
		fmt.Fprintf(stdout, "%s: closed cleanly (%d samples, %.1f s): nothing to do\n", dir, m.Samples, float64(m.Samples)/m.Rate)
	default:
		fmt.Fprintf(stdout, "%s: recovered: %d samples (%.1f s) on %d channels, %d gaps listed; cut %d bytes (%.2f s) written after the last sync or torn\n",
			dir, m.Samples, float64(m.Samples)/m.Rate, m.Channels, len(m.Gaps), cut, float64(cut)/float64(2*m.Channels)/m.Rate)
	}
	torn, err := cutTornLine(filepath.Join(dir, rig.SpikesFile))
	if err != nil {
		return err
	}
	if torn > 0 {
		fmt.Fprintf(stdout, "%s: cut a torn last line (%d bytes)\n", filepath.Join(dir, rig.SpikesFile), torn)
	}
	return nil
}

// cutTornLine cuts a file after its last newline, if it does not end with
// one (a line torn by a crash), and returns how many bytes were cut. A
// missing file is not an error.
func cutTornLine(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, err
	}
	size := fi.Size()
	// Look back from the end for the last newline, 64 KiB at a time.
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end == size {
		return 0, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync %s: %w", path, err)
	}
	return size - end, nil
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

// segmentNumber returns N of a path ending in segment-N (0 if none).
func segmentNumber(path string) int {
	var n int
	fmt.Sscanf(filepath.Base(path), "segment-%d", &n)
	return n
}
