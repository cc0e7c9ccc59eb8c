package rig

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

// Recovered is what Recover did to one recording directory.
type Recovered struct {
	Dir       string
	Meta      device.Meta // the sidecar as it now reads
	Clean     bool        // it was closed cleanly: nothing done
	Cut       int64       // bytes of samples cut: written after the last sync, or torn
	SpikesCut int64       // bytes of a torn last line of spikes.csv cut
}

// Recover makes a recording of Config.Record — dir, then its segment-N
// folders in order — read like one closed cleanly: the samples after the
// last sync and a torn last sample are cut, n_samples is written
// (device.RecoverRecording), and spikes.csv loses a torn last line. A
// recording closed cleanly is left alone. report, if not nil, hears of
// each directory once it is done.
func Recover(dir string, report func(Recovered)) error {
	dirs := []string{dir}
	segs, _ := filepath.Glob(filepath.Join(dir, "segment-*", device.RecordingMeta))
	for _, s := range segs {
		dirs = append(dirs, filepath.Dir(s))
	}
	slices.SortFunc(dirs[1:], func(a, b string) int { return segmentNumber(a) - segmentNumber(b) })
	for _, d := range dirs {
		r, err := recoverOne(d)
		if err != nil {
			return err
		}
		if report != nil {
			report(r)
		}
	}
	return nil
}

// recoverOne recovers the recording in dir and its spikes.csv.
func recoverOne(dir string) (Recovered, error) {
	before, err := device.ReadMeta(filepath.Join(dir, device.RecordingMeta))
	if err != nil {
		return Recovered{}, err
	}
	m, cut, err := device.RecoverRecording(dir)
	if err != nil {
		return Recovered{}, err
	}
	r := Recovered{Dir: dir, Meta: m, Cut: cut, Clean: !before.InProgress && cut == 0 && before.Samples != 0}
	spikes := filepath.Join(dir, SpikesFile)
	if r.SpikesCut, err = cutTornLine(spikes); err != nil {
		return r, err
	}
	// A crash before the first sync can leave spikes.csv empty, its
	// header never written: give it back, a valid file of no spikes.
	if fi, err := os.Lstat(spikes); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		if err := os.WriteFile(spikes, []byte(sort.SpikesHeader+"\n"), 0o644); err != nil {
			return r, err
		}
		if err := syncFile(spikes); err != nil {
			return r, err
		}
	}
	return r, nil
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
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

// segmentNumber returns N of a path ending in segment-N (0 if none).
func segmentNumber(path string) int {
	var n int
	fmt.Sscanf(filepath.Base(path), "segment-%d", &n)
	return n
}
