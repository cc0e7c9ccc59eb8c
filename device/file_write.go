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

// Errors a RawWriter returns (wrapped) when a Block cannot extend the
// recording; start a new recording instead.
var (
	ErrFormatChange = errors.New("block format differs from the recording's")
	ErrBackwards    = errors.New("block starts before the end of the recording")
	ErrGapTooLarge  = errors.New("gap too large to fill")
)

// DefaultMaxGapSeconds is the longest gap a RawWriter fills with zeros
// when RawWriter.MaxGap is 0, in seconds of samples.
const DefaultMaxGapSeconds = 60

// RawWriter records Blocks as a raw recording: RecordingData (time-major
// int16, the layout OpenRaw reads) and its RecordingMeta sidecar, in one
// directory. File position is device time: a gap between Blocks is filled
// with zeros and listed in Meta.Gaps, so nothing is papered over.
//
// Crash safety: Blocks are appended whole; the sidecar is replaced
// atomically (temporary file, fsync, rename) on the first Block, by Sync
// and by Close. Only Close writes n_samples, so a sidecar with n_samples
// marks a recording that was closed cleanly. A recording left by a crash
// (no n_samples, perhaps a torn last sample) is made readable by
// RecoverRecording.
type RawWriter struct {
	dir  string
	f    *os.File
	meta Meta
	buf  []byte

	started bool
	next    uint64 // device sample index the next Block should start at
	samples uint64 // samples per channel in the file, including zeros

	// MaxGap is the largest gap, in samples per channel, filled with zeros
	// (0: DefaultMaxGapSeconds of samples). Larger gaps are an error
	// wrapping ErrGapTooLarge.
	MaxGap uint64
}

// CreateRecording creates dir (if needed) and a new recording in it. It
// refuses to overwrite an existing recording.
func CreateRecording(dir string) (*RawWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, RecordingMeta)); err == nil {
		return nil, fmt.Errorf("device: %s: a recording exists already", filepath.Join(dir, RecordingMeta))
	}
	f, err := os.OpenFile(filepath.Join(dir, RecordingData), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	return &RawWriter{dir: dir, f: f}, nil
}

// Write appends b to the recording. The first Block sets the channel
// count, rate, gain and first sample; later Blocks must match them
// (ErrFormatChange), must not start before the end of the recording
// (ErrBackwards), and may leave a gap of at most MaxGap samples, written
// as zeros.
func (w *RawWriter) Write(b *Block) error {
	if !w.started {
		if b.Channels <= 0 || !(b.Rate > 0) || !(b.Gain > 0) {
			return fmt.Errorf("device: %s: first block has %d channels, %g Hz, gain %g", w.dir, b.Channels, b.Rate, b.Gain)
		}
		w.meta = Meta{Channels: b.Channels, Rate: b.Rate, Gain: b.Gain, First: b.First,
			DataFile: RecordingData, Dtype: "int16", Interleave: "time-major"}
		w.next = b.First
		w.started = true
		if err := w.writeMeta(false); err != nil {
			return err
		}
	}
	m := &w.meta
	switch {
	case b.Channels != m.Channels || b.Rate != m.Rate || b.Gain != m.Gain:
		return fmt.Errorf("device: %s: block at sample %d: %d channels at %g Hz, %g µV/count; recording has %d at %g Hz, %g: %w",
			w.dir, b.First, b.Channels, b.Rate, b.Gain, m.Channels, m.Rate, m.Gain, ErrFormatChange)
	case b.First < w.next:
		return fmt.Errorf("device: %s: block at sample %d, recording ends at %d: %w", w.dir, b.First, w.next, ErrBackwards)
	case b.First > w.next:
		gap := b.First - w.next
		limit := w.MaxGap
		if limit == 0 {
			limit = uint64(DefaultMaxGapSeconds * m.Rate)
		}
		if gap > limit {
			return fmt.Errorf("device: %s: gap of %d samples at sample %d exceeds %d: %w", w.dir, gap, w.next, limit, ErrGapTooLarge)
		}
		if err := w.zeros(gap); err != nil {
			return err
		}
		m.Gaps = append(m.Gaps, MetaGap{Sample: w.next, Count: gap})
		w.next += gap
	}
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
	w.next += uint64(n)
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

// Sync flushes the samples to stable storage and then rewrites the
// sidecar (with the gaps so far, without n_samples).
func (w *RawWriter) Sync() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if !w.started {
		return nil
	}
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
		m.Samples = w.samples
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

// WriteFileAtomic replaces path with data through a temporary file,
// fsync and rename: a reader sees the old or the new content, never a
// mixture, even after a crash or a power loss.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // make the rename durable; not all systems support it
		d.Close()
	}
	return nil
}

// RecoverRecording makes a recording whose writer did not Close (a crash,
// a power cut) readable: it cuts a torn trailing sample off the data file
// and writes n_samples into the sidecar. It returns the repaired sidecar
// and how many bytes were cut. A recording closed cleanly is left as is.
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
	fi, err := os.Stat(data)
	if err != nil {
		return m, 0, fmt.Errorf("device: %w", err)
	}
	frame := int64(2 * m.Channels)
	cut := fi.Size() % frame
	total := uint64(fi.Size() / frame)
	if m.Samples == total && cut == 0 {
		return m, 0, nil
	}
	if m.Samples > total {
		return m, 0, fmt.Errorf("device: %s: recording.json says n_samples=%d but %s holds %d: data lost, not a torn write",
			metaPath, m.Samples, data, total)
	}
	if cut != 0 {
		if err := os.Truncate(data, fi.Size()-cut); err != nil {
			return m, 0, fmt.Errorf("device: %w", err)
		}
	}
	m.Samples = total
	return m, cut, writeMetaAtomic(metaPath, m)
}
