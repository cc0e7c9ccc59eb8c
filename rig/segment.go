package rig

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// A session of 'spikeline run' is cut into segments wherever the device's
// stream cannot continue as it was (device.Segmenter): a format change
// (channels, rate or gain — legal in the wire protocol), a counter reset,
// a gap longer than device.DefaultMaxGapSeconds, or more gaps than one
// recording lists. None of them ends the run: the sorter is flushed (and,
// after a format change, restarted for the new format), the decoder
// starts again on the new segment's clock, a "segment" event is
// published, and with --record each segment is a recording of its own:
// segment 1 in DIR, segment N in DIR/segment-N.

// SegmentDir returns the directory of segment n (1-based) of a session
// recorded into base.
func SegmentDir(base string, n int) string {
	if n <= 1 {
		return base
	}
	return filepath.Join(base, "segment-"+strconv.Itoa(n))
}

// segments numbers the segments of the stream, for the reader goroutine.
type segments struct {
	seg device.Segmenter
	n   int // current segment, 1-based; 0 before the first Block
}

// next returns the segment b belongs to and, if b starts a new one after
// the first, why.
func (s *segments) next(b *device.Block) (int, error) {
	if b.Len() == 0 && s.n > 0 {
		return s.n, nil
	}
	cut, why := s.seg.Next(b)
	if cut {
		s.n++
	}
	return s.n, why
}

// recordFiles are the files and folders --record writes in its directory;
// pre-flight refuses a directory that holds any of them.
var recordFiles = []string{device.RecordingData, device.RecordingMeta, SpikesFile, TemplatesFile, "segment-2"}

// openRecord is the pre-flight of --record DIR, run before any server or
// device starts: it refuses a directory holding a recording (never
// overwritten) and creates the first segment's files, so that a directory
// that cannot be written is reported before anything runs. The returned
// recorders are handed to the pipeline.
func openRecord(dir string) (*rawRecorder, *spikeRecorder, error) {
	for _, name := range recordFiles {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return nil, nil, configErrorf("--record %s: %s exists: a recording is never overwritten; choose a new directory", dir, filepath.Join(dir, name))
		}
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, nil, configErrorf("--record %s: not a directory", dir)
	}
	w, err := device.CreateRecording(dir)
	if err != nil {
		return nil, nil, configErrorf("--record: %v", err)
	}
	sr, err := newSpikeRecorder(dir)
	if err != nil {
		w.Close()
		return nil, nil, configErrorf("--record: %v", err)
	}
	return &rawRecorder{base: dir, seg: 1, w: w, dirs: []string{dir}, create: createSegment}, sr, nil
}

// segmentWriter records one segment: a *device.RawWriter.
type segmentWriter interface {
	Write(b *device.Block) error
	Sync() error
	Close() error
}

func createSegment(dir string) (segmentWriter, error) { return device.CreateRecording(dir) }

// rawRecorder writes the raw stream of every segment, for the reader
// goroutine: one device.RawWriter per segment, synced every second of
// device time. Every error, fsync included, is returned and ends the run.
type rawRecorder struct {
	base     string
	seg      int
	w        segmentWriter
	create   func(dir string) (segmentWriter, error)
	unsynced uint64   // samples written since the last Sync
	wrote    bool     // a Block has been recorded
	dirs     []string // the segments' directories, in order
}

// write records b, which belongs to segment seg.
func (r *rawRecorder) write(b *device.Block, seg int) error {
	if b.Len() == 0 {
		return nil
	}
	if seg != r.seg {
		if err := r.w.Close(); err != nil {
			return fmt.Errorf("recording: closing segment %d: %w", r.seg, err)
		}
		dir := SegmentDir(r.base, seg)
		w, err := r.create(dir)
		if err != nil {
			return fmt.Errorf("recording segment %d: %w", seg, err)
		}
		r.w, r.seg, r.unsynced = w, seg, 0
		r.dirs = append(r.dirs, dir)
	}
	if err := r.w.Write(b); err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	r.wrote = true
	r.unsynced += uint64(b.Len())
	if r.unsynced >= uint64(b.Rate) {
		// The data, then the sidecar, on disk every second.
		r.unsynced = 0
		if err := r.w.Sync(); err != nil {
			return fmt.Errorf("recording: %w", err)
		}
	}
	return nil
}

// close closes the current segment (its final sidecar, with n_samples).
func (r *rawRecorder) close() error {
	return r.w.Close()
}

// segmentReason names why a segment started (why from Segmenter; nil:
// the first), for the log and the segment event.
func segmentReason(why error) string {
	switch {
	case why == nil:
		return "start"
	case errors.Is(why, device.ErrFormatChange):
		return "format change"
	case errors.Is(why, device.ErrBackwards):
		return "counter reset"
	case errors.Is(why, device.ErrGapTooLarge):
		return "long gap"
	case errors.Is(why, device.ErrTooManyGaps):
		return "too many gaps"
	}
	return "discontinuity"
}

// closeRecord closes the recording of a run that has ended: the last
// segment's raw data and spikes. A run that recorded nothing leaves
// nothing behind, so the directory can be used again.
func (p *Rig) closeRecord() error {
	err := p.rec.close()
	if err != nil {
		err = fmt.Errorf("closing the recording: %w", err)
	}
	if p.spikeRec != nil {
		if serr := p.spikeRec.close(); serr != nil && err == nil {
			err = fmt.Errorf("closing the recorded spikes: %w", serr)
		}
		if !p.rec.wrote && p.spikeRec.n == 0 {
			os.Remove(filepath.Join(p.spikeRec.dir, SpikesFile))
		}
	}
	if err != nil {
		p.log.Error("recording", "dir", p.cfg.Record, "err", err)
		return err
	}
	if len(p.rec.dirs) > 1 {
		fmt.Fprintf(p.stdout, "spikeline: recorded %d segments: %s\n", len(p.rec.dirs), strings.Join(p.rec.dirs, ", "))
	}
	return nil
}

// newCalibrator returns the live decoder's calibrator for a segment at
// rate Hz.
func (p *Rig) newCalibrator(rate float64) (*decode.Calibrator, error) {
	return decode.NewCalibrator(decode.CalibratorConfig{
		Rate: rate, Outputs: p.cfg.Outputs, Grouping: p.cfg.Grouping,
		Seconds: p.cfg.Calibrate, Fit: decode.FitConfig{Kind: p.cfg.Decoder},
		// Refits use the recent past; a fixed window keeps memory flat on
		// a large probe (1,024 channels sort ~16,000 spikes/s: 120 s is
		// ~50 MB of spikes).
		MaxSeconds: max(2*p.cfg.Calibrate, 120),
	})
}

// startSegment starts segment seg at block b, for the loop: it reports
// the segment (log and a "segment" event), moves the recorded spikes to
// the segment's directory and, if b's format is not the sorter's, starts
// a sorter for it, which it returns (nil when the sorter goes on).
func (p *Rig) startSegment(b *device.Block, seg int, why error) (*sort.Sorter, error) {
	reason := segmentReason(why)
	p.log.Warn("a new segment of the session", "segment", seg, "reason", reason, "at_sample", b.First, "detail", why)
	p.pub.PublishEvents(b.First, b.Rate, []schema.Event{{Kind: schema.EventSegment, Sample: b.First, Count: uint64(seg),
		Unit: -1, Channel: -1, Detail: fmt.Sprintf("%s: %v", reason, why)}})
	if p.spikeRec != nil {
		if err := p.spikeRec.close(); err != nil {
			return nil, err
		}
		dir := SegmentDir(p.cfg.Record, seg)
		sr, err := newSpikeRecorder(dir)
		if err != nil {
			return nil, err
		}
		sr.oe = p.spikeRec.oe.next(seg)
		p.spikeRec = sr
	}
	if b.Channels == p.sorter.Channels() && b.Rate == p.sorter.Rate() {
		return nil, nil // the sorter handles resets and gaps itself
	}
	cfg := p.cfg.Sort
	cfg.Threshold = math.Float64frombits(p.thresh.Load())
	ns, err := sort.New(cfg, b.Channels, b.Rate, b.Gain)
	if err != nil {
		return nil, fmt.Errorf("segment %d (%d channels at %g Hz): %w", seg, b.Channels, b.Rate, err)
	}
	old := p.sorter
	if p.live != nil {
		// The live page's trace follows the first sorter: it keeps it
		// (closed at the end) and stops at the format change.
		p.live = nil
		p.viewSorter = old
		p.log.Warn("the live page's trace and waveforms stop at the format change; the other panels go on")
	} else {
		old.Close()
	}
	p.sorter = ns
	p.sorterNow.Store(ns)
	p.units.Store(0)
	p.log.Info("sorter restarted for the new format", "segment", seg, "channels", b.Channels, "rate", b.Rate)
	return ns, nil
}
