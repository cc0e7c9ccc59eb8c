package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Errors a file source wraps (in a *FrameError naming the file and byte
// offset) so that callers can test for the kind of problem.
var (
	// ErrPartialSample: the file's size is not a whole number of
	// multichannel samples (2*channels bytes each).
	ErrPartialSample = errors.New("partial sample at end of file")
	// ErrSampleCount: the file holds a different number of samples than
	// its recording.json sidecar says.
	ErrSampleCount = errors.New("sample count does not match recording.json")
	// ErrTruncated: the file ended before its declared size while reading.
	ErrTruncated = errors.New("file truncated")
)

// DefaultBlockSamples is the number of samples per channel in the Blocks of
// a raw file source when RawConfig.BlockSamples is 0.
const DefaultBlockSamples = 1024

// RawConfig describes a raw recording: interleaved (time-major) int16
// little-endian samples with no header, the .dat/.bin layout Kilosort and
// SpikeInterface read. See docs/formats.md.
type RawConfig struct {
	Channels int     // channels per sample; required
	Rate     float64 // sample rate in Hz; required
	Gain     float64 // µV per count; required
	// Samples, if not 0, is the number of samples per channel the file
	// must hold (recording.json n_samples); a mismatch is an error.
	Samples uint64
	// BlockSamples is the number of samples per channel per Block
	// (DefaultBlockSamples if 0). The last Block may be shorter.
	BlockSamples int
	// First is the device sample index of the file's first sample.
	First uint64
	// Header is the number of bytes before the first sample (a file
	// header to skip; SpikeInterface's file_offset). Usually 0.
	Header int64
	// Gaps are stretches of the file that hold zeros in place of samples
	// the device lost (recording.json "gaps", in device sample indexes).
	// Blocks never include them: the Block after a gap starts past it and
	// carries an EventGap, as the live stream did.
	Gaps []MetaGap
	// Pace, if > 0, releases Blocks at Pace times real time (1 = the
	// rate the device recorded them); 0 reads as fast as possible.
	Pace float64
	// Unfinished reads a recording that was not closed (recording.json
	// in_progress): the file must hold at least Samples samples, which
	// are read; what follows them (samples written after the last sync,
	// perhaps a torn last sample) is ignored (RawSource.Ignored).
	Unfinished bool
	// SkipLayoutCheck reads the file with Channels channels even if its
	// first samples contradict that count (ErrLayout; see checkLayout).
	SkipLayoutCheck bool
	// Buffers, if > 0, makes Next fill that many Samples buffers in turn:
	// a Block's Samples are overwritten by the Buffers-th Next call after
	// it. 0: every Block has Samples of its own (a new allocation of
	// 2·Channels·BlockSamples bytes per Block).
	Buffers int
}

func (c *RawConfig) check() error {
	if err := CheckChannels("", "channels", c.Channels); err != nil {
		return err
	}
	if err := CheckRate("", "sample rate", c.Rate); err != nil {
		return err
	}
	if err := CheckGain("", "gain", c.Gain); err != nil {
		return err
	}
	if err := CheckInt("", "samples per block", int64(c.BlockSamples), 0, int64(MaxBlockBytes/(2*c.Channels)),
		fmt.Sprintf("(at most %d MiB of %d channels)", MaxBlockBytes>>20, c.Channels)); err != nil {
		return err
	}
	switch {
	case c.Header < 0:
		return fmt.Errorf("header of %d bytes, want >= 0", c.Header)
	case c.Pace < 0 || math.IsNaN(c.Pace) || math.IsInf(c.Pace, 0):
		return fmt.Errorf("pace %g, want >= 0", c.Pace)
	case c.Buffers < 0:
		return fmt.Errorf("%d sample buffers, want >= 0", c.Buffers)
	}
	return nil
}

// RawSource is a Source reading a raw int16 recording file. Each Block has
// fresh Samples (it may be kept) unless RawConfig.Buffers says how many
// are reused. Close the source when done.
type RawSource struct {
	f     *os.File
	name  string
	cfg   RawConfig
	total uint64 // samples per channel in the file
	next  uint64 // index (within the file) of the next sample to read
	gap   int    // index in cfg.Gaps of the first gap not yet passed
	buf   []byte
	pacer Pacer
	ring  [][]int16 // Samples buffers (RawConfig.Buffers)
	ringN int       // Blocks read, for the ring

	ignored int64 // bytes after the samples read (RawConfig.Unfinished)
}

// OpenRaw opens a raw int16 recording. The file's size must be a whole
// number of samples (2*cfg.Channels bytes each) and, if cfg.Samples is set,
// hold exactly that many: both are checked up front, and the error names
// the file and the byte offset where it goes wrong.
func OpenRaw(path string, cfg RawConfig) (*RawSource, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("device: %s: %w", path, err)
	}
	if cfg.BlockSamples == 0 {
		cfg.BlockSamples = DefaultBlockSamples
	}
	f, err := OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("device: %w", err)
	}
	size := fi.Size() - cfg.Header
	if size < 0 {
		f.Close()
		return nil, &FrameError{Name: path, Offset: fi.Size(),
			Reason: fmt.Sprintf("file of %d bytes is shorter than its %d-byte header", fi.Size(), cfg.Header),
			Err:    ErrTruncated}
	}
	frame := int64(2 * cfg.Channels)
	var ignored int64
	if cfg.Unfinished {
		if cfg.Samples > uint64(size/frame) {
			f.Close()
			return nil, &FrameError{Name: path, Offset: cfg.Header + size,
				Reason: fmt.Sprintf("recording.json says %d samples were synced but the file holds %d (%d bytes of %d channels): data lost after the sync",
					cfg.Samples, size/frame, size, cfg.Channels),
				Err: ErrSampleCount}
		}
		ignored = size - int64(cfg.Samples)*frame
		size = int64(cfg.Samples) * frame
	}
	if rem := size % frame; rem != 0 {
		f.Close()
		return nil, &FrameError{Name: path, Offset: cfg.Header + size - rem,
			Reason: fmt.Sprintf("%d bytes is not a whole number of %d-channel int16 samples (%d bytes each): %d trailing bytes (is the channel count right?)",
				size, cfg.Channels, frame, rem),
			Err: ErrPartialSample}
	}
	total := uint64(size / frame)
	if cfg.Samples != 0 && cfg.Samples != total {
		off := cfg.Header + size
		if cfg.Samples < total {
			off = cfg.Header + int64(cfg.Samples)*frame
		}
		f.Close()
		return nil, &FrameError{Name: path, Offset: off,
			Reason: fmt.Sprintf("recording.json says n_samples=%d but file holds %d (%d bytes of %d channels)",
				cfg.Samples, total, size, cfg.Channels),
			Err: ErrSampleCount}
	}
	if !cfg.SkipLayoutCheck {
		if err := checkLayout(f, path, cfg.Header, size, cfg.Channels); err != nil {
			f.Close()
			return nil, err
		}
	}
	if !checkSpan(cfg.First, total) {
		f.Close()
		return nil, fmt.Errorf("device: %s: first sample %d + %d samples overflows the 64-bit sample index", path, cfg.First, total)
	}
	end := cfg.First
	for i, g := range cfg.Gaps {
		if g.Count == 0 || g.Sample < end || !checkSpan(g.Sample, g.Count) || g.Sample+g.Count > cfg.First+total {
			f.Close()
			return nil, fmt.Errorf("device: %s: gap %d (%d samples at sample %d) is empty, out of order or outside the file's samples %d..%d",
				path, i, g.Count, g.Sample, cfg.First, cfg.First+total)
		}
		end = g.Sample + g.Count
	}
	s := &RawSource{f: f, name: path, cfg: cfg, total: total, ignored: ignored}
	s.pacer.Speed = cfg.Pace
	return s, nil
}

// OpenRecording opens a recording described by a recording.json sidecar
// (see Meta): path is the sidecar or the directory holding it. The raw file
// is Meta.DataFile relative to the sidecar ("recording.dat" if empty), and
// its size is checked against Meta.Samples. A recording not closed
// (Meta.InProgress: being written, or left by a crash) is read up to its
// last sync (Meta.Synced samples); RawSource.Ignored says how many bytes
// follow them. cfg supplies BlockSamples and
// Pace, and First if the sidecar has no first_sample; Channels, Rate, Gain
// and Samples are taken from the sidecar.
func OpenRecording(path string, cfg RawConfig) (*RawSource, Meta, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "recording.json")
	}
	m, err := ReadMeta(path)
	if err != nil {
		return nil, m, err
	}
	if m.Interleave != "" && m.Interleave != "time-major" {
		return nil, m, fmt.Errorf("device: %s: layout = %q, only time-major is supported", path, m.Interleave)
	}
	data := m.DataFile
	if data == "" {
		data = "recording.dat"
	}
	if !filepath.IsAbs(data) {
		data = filepath.Join(filepath.Dir(path), data)
	}
	s, err := OpenRaw(data, m.RawConfig(cfg))
	return s, m, err
}

// RawConfig returns cfg with what the sidecar m says about its data file:
// channels, rate, gain, samples, gaps, and First if cfg has none; for a
// recording not closed, the synced samples and Unfinished.
func (m Meta) RawConfig(cfg RawConfig) RawConfig {
	cfg.Channels, cfg.Rate, cfg.Gain, cfg.Samples, cfg.Gaps = m.Channels, m.Rate, m.Gain, m.Samples, m.Gaps
	if m.InProgress {
		cfg.Samples, cfg.Unfinished = m.Synced, true
	}
	if cfg.First == 0 {
		cfg.First = m.First
	}
	return cfg
}

// Samples returns the number of samples per channel in the file (that
// are read: for an unfinished recording, those synced).
func (s *RawSource) Samples() uint64 { return s.total }

// Ignored returns the bytes of an unfinished recording (RawConfig.Unfinished)
// after the samples read: written after the last sync, or torn.
func (s *RawSource) Ignored() int64 { return s.ignored }

// Config returns the source's configuration, with defaults filled in.
func (s *RawSource) Config() RawConfig { return s.cfg }

// Seek makes the next Block start at sample index i within the file
// (0 = the first sample), clamped to the end. Pacing restarts from there.
func (s *RawSource) Seek(i uint64) {
	s.next = min(i, s.total)
	s.gap = 0
	s.pacer.reset()
}

// Next returns the next Block, io.EOF after the last one, or ctx.Err().
// If the file shrinks while being read, it returns a *FrameError wrapping
// ErrTruncated with the offset where the data ended.
func (s *RawSource) Next(ctx context.Context) (Block, error) {
	if err := ctx.Err(); err != nil {
		return Block{}, err
	}
	// Step over zero-filled gaps, reporting them.
	var events []Event
	limit := s.total // the Block ends at the next gap or the end of file
	for s.gap < len(s.cfg.Gaps) {
		g := s.cfg.Gaps[s.gap]
		gs, ge := g.Sample-s.cfg.First, g.Sample-s.cfg.First+g.Count
		if s.next >= ge {
			s.gap++
			continue
		}
		if s.next >= gs {
			events = append(events, Event{Kind: EventGap, Sample: s.cfg.First + ge, Count: ge - s.next,
				Offset: s.cfg.Header + int64(s.next)*int64(2*s.cfg.Channels), Detail: "zero-filled in the recording"})
			s.next = ge
			s.gap++
			continue
		}
		limit = gs
		break
	}
	if s.next >= s.total {
		return Block{}, io.EOF
	}
	ch := s.cfg.Channels
	n := int(min(uint64(s.cfg.BlockSamples), limit-s.next))
	size := 2 * ch * n
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	buf := s.buf[:size]
	off := s.cfg.Header + int64(s.next)*int64(2*ch)
	got, err := s.f.ReadAt(buf, off)
	if got < size {
		if err == nil || errors.Is(err, io.EOF) {
			err = ErrTruncated
		}
		return Block{}, &FrameError{Name: s.name, Offset: off + int64(got),
			Reason: fmt.Sprintf("read %d of %d bytes of samples %d..%d", got, size, s.next, s.next+uint64(n)),
			Err:    err}
	}
	b := Block{
		First:    s.cfg.First + s.next,
		Rate:     s.cfg.Rate,
		Channels: ch,
		Gain:     s.cfg.Gain,
		Events:   events,
	}
	if k := s.cfg.Buffers; k > 0 {
		if s.ring == nil {
			s.ring = make([][]int16, k)
		}
		r := &s.ring[s.ringN%k]
		s.ringN++
		if cap(*r) < ch*n {
			*r = make([]int16, ch*n)
		}
		b.Samples = (*r)[:ch*n]
	} else {
		b.Samples = make([]int16, ch*n)
	}
	decodeInt16(b.Samples, buf)
	s.next += uint64(n)
	if err := s.pacer.Wait(ctx, &b); err != nil {
		return Block{}, err
	}
	b.Received = time.Now()
	return b, nil
}

// Close closes the file.
func (s *RawSource) Close() error { return s.f.Close() }
