package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Names of the files a RawWriter creates in its directory.
const (
	RecordingData = "recording.dat"  // time-major int16 little-endian samples
	RecordingMeta = "recording.json" // the Meta sidecar
)

// Errors a RawWriter (and a Segmenter) returns, wrapped, when a Block
// cannot extend the recording: the Block starts a new segment, to be
// recorded in a new RawWriter.
var (
	ErrFormatChange = errors.New("block format differs from the recording's")
	ErrBackwards    = errors.New("block starts before the end of the recording")
	ErrGapTooLarge  = errors.New("gap too large to fill")
	ErrTooManyGaps  = errors.New("the recording lists the most gaps it may (MaxGaps)")
)

// DefaultMaxGapSeconds is the longest gap a RawWriter fills with zeros
// when RawWriter.MaxGap is 0, in seconds of samples.
const DefaultMaxGapSeconds = 60

// Segmenter cuts a stream of Blocks into segments, each of which one
// recording (and one sorter) can take whole: a Block continues the
// segment when it has the segment's channel count, rate and gain, starts
// at or after the end of the previous Block, leaves a gap of at most
// MaxGap samples (zero-filled in a recording), and the segment lists
// fewer than MaxGaps gaps. Anything else — a format change, a counter
// reset, a long gap — starts a new segment. The zero Segmenter is ready.
type Segmenter struct {
	// MaxGap is the largest gap, in samples per channel, a segment
	// spans (0: DefaultMaxGapSeconds of samples at the segment's rate).
	MaxGap uint64

	started  bool
	channels int
	rate     float64
	gain     float64
	next     uint64 // device sample index the next Block should start at
	gaps     int
}

// Check reports why b cannot continue the segment, as an error wrapping
// ErrFormatChange, ErrBackwards, ErrGapTooLarge or ErrTooManyGaps, or nil
// if it can (or is the first Block). It changes nothing.
func (s *Segmenter) Check(b *Block) error {
	if !s.started {
		return nil
	}
	switch {
	case b.Channels != s.channels || b.Rate != s.rate || b.Gain != s.gain:
		return fmt.Errorf("block at sample %d: %d channels at %g Hz, %g µV/count; segment has %d at %g Hz, %g: %w",
			b.First, b.Channels, b.Rate, b.Gain, s.channels, s.rate, s.gain, ErrFormatChange)
	case b.First < s.next:
		return fmt.Errorf("block at sample %d, segment ends at %d: %w", b.First, s.next, ErrBackwards)
	case b.First > s.next:
		gap := b.First - s.next
		if limit := s.maxGap(); gap > limit {
			return fmt.Errorf("gap of %d samples at sample %d exceeds %d: %w", gap, s.next, limit, ErrGapTooLarge)
		}
		if s.gaps >= MaxGaps {
			return fmt.Errorf("gap at sample %d: %w", s.next, ErrTooManyGaps)
		}
	}
	return nil
}

func (s *Segmenter) maxGap() uint64 {
	if s.MaxGap != 0 {
		return s.MaxGap
	}
	return uint64(DefaultMaxGapSeconds * s.rate)
}

// Next reports whether b starts a new segment, with the reason (an error
// from Check; nil for the very first Block, which starts the first
// segment), and makes b part of the current segment.
func (s *Segmenter) Next(b *Block) (bool, error) {
	first := !s.started
	why := s.Check(b)
	if why != nil {
		s.started, s.gaps = false, 0
	}
	s.add(b)
	return first || why != nil, why
}

// add extends the segment with b, which Check accepted.
func (s *Segmenter) add(b *Block) {
	if !s.started {
		s.started = true
		s.channels, s.rate, s.gain, s.next = b.Channels, b.Rate, b.Gain, b.First
	}
	if b.First > s.next {
		s.gaps++
	}
	s.next = b.First + uint64(b.Len())
}

// RawWriter records Blocks as a raw recording: RecordingData (time-major
// int16, the layout OpenRaw reads) and its RecordingMeta sidecar, in one
// directory. File position is device time: a gap between Blocks is filled
// with zeros and listed in Meta.Gaps, so nothing is papered over. A
// RawWriter records one segment (see Segmenter): a Block that would start
// a new one is refused.
//
// Crash safety: Blocks are appended whole. While recording, the sidecar
// says "in_progress": true and "synced_samples": the samples (and gaps)
// made durable by the last Sync; it is replaced atomically (a temporary
// file created exclusively, fsync, rename, fsync of the directory) on the
// first Block, by Sync and by Close. Close writes the final sidecar, with
// n_samples and without in_progress. A reader of a recording left by a
// crash (or still being written) takes its synced samples, whose gaps
// the sidecar lists completely, and ignores what follows them (at most
// what was written since the last Sync, perhaps a torn last sample);
// RecoverRecording makes that final.
type RawWriter struct {
	dir  string
	f    *os.File
	meta Meta
	buf  []byte
	seg  Segmenter

	started bool
	samples uint64 // samples per channel in the file, including zeros

	// MaxGap is the largest gap, in samples per channel, filled with zeros
	// (0: DefaultMaxGapSeconds of samples). Larger gaps are an error
	// wrapping ErrGapTooLarge.
	MaxGap uint64
}

// CreateRecording creates dir (if needed) and a new recording in it. It
// refuses to overwrite an existing recording, and to write through a
// symbolic link planted where its files go.
func CreateRecording(dir string) (*RawWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, RecordingMeta)); err == nil {
		return nil, fmt.Errorf("device: %s: a recording exists already", filepath.Join(dir, RecordingMeta))
	}
	// O_EXCL: an existing file or symbolic link is refused, not followed.
	f, err := os.OpenFile(filepath.Join(dir, RecordingData), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	return &RawWriter{dir: dir, f: f}, nil
}

// Dir returns the recording's directory.
func (w *RawWriter) Dir() string { return w.dir }

// Write appends b to the recording. The first Block sets the channel
// count, rate, gain and first sample; later Blocks must continue the
// segment (Segmenter.Check: ErrFormatChange, ErrBackwards,
// ErrGapTooLarge, ErrTooManyGaps), a gap being written as zeros.
func (w *RawWriter) Write(b *Block) error {
	if !w.started {
		if err := CheckChannels("", "channels", b.Channels); err != nil {
			return fmt.Errorf("device: %s: first block: %w", w.dir, err)
		}
		if err := CheckRate("", "rate", b.Rate); err != nil {
			return fmt.Errorf("device: %s: first block: %w", w.dir, err)
		}
		if err := CheckGain("", "gain", b.Gain); err != nil {
			return fmt.Errorf("device: %s: first block: %w", w.dir, err)
		}
		w.meta = Meta{Channels: b.Channels, Rate: b.Rate, Gain: b.Gain, First: b.First,
			DataFile: RecordingData, Dtype: "int16", Interleave: "time-major", InProgress: true}
		w.started = true
		w.seg.MaxGap = w.MaxGap
		if err := w.writeMeta(false); err != nil {
			return err
		}
	}
	if err := w.seg.Check(b); err != nil {
		return fmt.Errorf("device: %s: %w", w.dir, err)
	}
	if b.First > w.seg.next && w.seg.started {
		gap := b.First - w.seg.next
		if err := w.zeros(gap); err != nil {
			return err
		}
		w.meta.Gaps = append(w.meta.Gaps, MetaGap{Sample: w.seg.next, Count: gap})
	}
	w.seg.add(b)
	n := b.Len()
	if n == 0 {
		return nil
	}
	size := 2 * len(b.Samples)
	if cap(w.buf) < size {
		w.buf = make([]byte, size)
	}
	p := w.buf[:size]
	encodeInt16(p, b.Samples)
	if _, err := w.f.Write(p); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	w.samples += uint64(n)
	return nil
}

// zeros appends n zero samples per channel.
func (w *RawWriter) zeros(n uint64) error {
	frame := uint64(2 * w.meta.Channels)
	chunk := max(uint64(1<<16)/frame, 1)
	z := make([]byte, min(n, chunk)*frame)
	for n > 0 {
		k := min(n, chunk)
		if _, err := w.f.Write(z[:k*frame]); err != nil {
			return fmt.Errorf("device: %w", err)
		}
		n -= k
		w.samples += k
	}
	return nil
}

// Samples returns the number of samples per channel written, zeros
// included.
func (w *RawWriter) Samples() uint64 { return w.samples }

// Meta returns the recording's sidecar as it stands.
func (w *RawWriter) Meta() Meta {
	m := w.meta
	m.Gaps = append([]MetaGap(nil), m.Gaps...)
	m.Samples = w.samples
	return m
}

// Sync makes the samples written so far durable (fsync) and then
// rewrites the sidecar with them as synced_samples, and the gaps so far.
// Every fsync error is returned.
func (w *RawWriter) Sync() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("device: fsync %s: %w", w.f.Name(), err)
	}
	if !w.started {
		return nil
	}
	w.meta.Synced = w.samples
	return w.writeMeta(false)
}

// Close syncs the samples, writes the final sidecar with n_samples and
// closes the file. A recording that received no Block is removed.
func (w *RawWriter) Close() error {
	if !w.started {
		w.f.Close()
		return os.Remove(filepath.Join(w.dir, RecordingData))
	}
	err := w.f.Sync()
	if err != nil {
		err = fmt.Errorf("fsync %s: %w", w.f.Name(), err)
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("device: %w", err)
	}
	return w.writeMeta(true)
}

func (w *RawWriter) writeMeta(final bool) error {
	m := w.meta
	if final {
		m.Samples, m.Synced, m.InProgress = w.samples, 0, false
	}
	return writeMetaAtomic(filepath.Join(w.dir, RecordingMeta), m)
}

// writeMetaAtomic replaces path with m: a reader sees the old or the new
// sidecar, never a mixture, even after a crash.
func writeMetaAtomic(path string, m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if err := WriteFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	return nil
}

// RecoverRecording makes final a recording whose writer did not Close
// (a crash, a power cut), so that it reads like one closed cleanly: for a
// sidecar in_progress, it cuts the data file after the synced samples
// (what was written after the last sync is not known to be complete: a
// gap there may be unlisted) and writes n_samples; for an older sidecar
// without n_samples, it cuts a torn trailing sample. It returns the
// repaired sidecar and how many bytes were cut. A recording closed cleanly
// is left as is.
func RecoverRecording(dir string) (Meta, int64, error) {
	metaPath := filepath.Join(dir, RecordingMeta)
	m, err := ReadMeta(metaPath)
	if err != nil {
		return m, 0, err
	}
	data := m.DataFile
	if data == "" {
		data = RecordingData
	}
	if !filepath.IsAbs(data) {
		data = filepath.Join(dir, data)
	}
	fi, err := os.Lstat(data)
	if err != nil {
		return m, 0, fmt.Errorf("device: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return m, 0, fmt.Errorf("device: %s: %s, not a regular file", data, FileKind(fi.Mode()))
	}
	frame := int64(2 * m.Channels)
	keep := fi.Size() - fi.Size()%frame // a torn trailing sample goes
	switch {
	case m.InProgress:
		if int64(m.Synced) > fi.Size()/frame {
			return m, 0, fmt.Errorf("device: %s: recording.json says %d samples were synced but %s holds %d: data lost, not a crash while writing",
				metaPath, m.Synced, data, fi.Size()/frame)
		}
		keep = int64(m.Synced) * frame
	case m.Samples == uint64(fi.Size()/frame) && keep == fi.Size():
		return m, 0, nil // closed cleanly
	case m.Samples > uint64(fi.Size()/frame):
		return m, 0, fmt.Errorf("device: %s: recording.json says n_samples=%d but %s holds %d: data lost, not a torn write",
			metaPath, m.Samples, data, fi.Size()/frame)
	case m.Samples != 0:
		return m, 0, fmt.Errorf("device: %s: recording.json says n_samples=%d but %s holds %d bytes (%d samples): closed cleanly, then changed; not recovering",
			metaPath, m.Samples, data, fi.Size(), fi.Size()/frame)
	}
	cut := fi.Size() - keep
	if cut != 0 {
		if err := os.Truncate(data, keep); err != nil {
			return m, 0, fmt.Errorf("device: %w", err)
		}
		f, err := os.OpenFile(data, os.O_WRONLY, 0)
		if err != nil {
			return m, 0, fmt.Errorf("device: %w", err)
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return m, 0, fmt.Errorf("device: fsync %s: %w", data, err)
		}
	}
	m.Samples, m.Synced, m.InProgress = uint64(keep/frame), 0, false
	return m, cut, writeMetaAtomic(metaPath, m)
}
