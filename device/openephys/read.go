package openephys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spikeline/spikeline/device"
)

// Names of the files of a continuous stream folder.
const (
	DataFile          = "continuous.dat"     // int16 little-endian, time-major
	SampleNumbersFile = "sample_numbers.npy" // int64 sample number of each sample
	TimestampsFile    = "timestamps.npy"     // float64 seconds of each sample
)

// ErrSampleCount is wrapped when a stream's sample_numbers.npy does not
// list one sample number per sample of its continuous.dat.
var ErrSampleCount = errors.New("sample_numbers.npy does not match continuous.dat")

// Config selects what Open reads. The zero value reads the electrode
// channels of the recording's only stream (or its only stream with
// electrode channels).
type Config struct {
	// Stream is the folder_name (e.g. "Acquisition_Board-100.Rhythm Data")
	// or stream_name of the continuous stream to read.
	Stream string
	// Channels are the channels to read, 0-based indexes within the
	// stream; nil reads every electrode channel (type 0, or in µV), so
	// that the AUX and ADC channels of an acquisition board are left out.
	// They must share one gain (bit_volts and units).
	Channels []int
	// BlockSamples is the number of samples per channel per Block
	// (device.DefaultBlockSamples if 0). Blocks also end at gaps.
	BlockSamples int
	// Pace, if > 0, releases Blocks at Pace times real time.
	Pace float64
}

// Source is a device.Source reading one continuous stream of an Open
// Ephys binary recording. Each Block has fresh Samples (it may be kept).
// Sample numbers (sample_numbers.npy) are the Blocks' device clock: a
// jump between two consecutive samples ends a Block, and the next one
// carries a device.EventGap with the number of samples missing (a
// sample number going backwards, a device.EventReset).
type Source struct {
	dir      string // the recording folder
	dataPath string
	info     Continuous
	chans    []int // the channels read, indexes in the stream
	all      bool  // chans is every channel in order
	gain     float64
	block    int
	dat      *os.File
	sn       *os.File
	snName   string
	snh      npyHeader
	total    int64 // samples per channel in continuous.dat
	next     int64 // index of the next sample to read
	prev     int64 // sample number of the last sample delivered
	started  bool
	nums     []int64
	numBuf   []byte
	buf      []byte
	pacer    device.Pacer
	newStyle bool // sample_numbers.npy (GUI 0.6+) rather than timestamps.npy
}

// Open opens a continuous stream of the Open Ephys binary recording at
// path (a recording folder, its structure.oebin, or a folder above it
// with a single recording: see FindRecording). Everything that can be
// checked before reading is: structure.oebin (channel counts, rate,
// gains), the files it names (their presence; continuous.dat a whole
// number of samples of num_channels; sample_numbers.npy one int64 per
// sample). Errors name the file, and where it applies the byte offset.
func Open(path string, cfg Config) (*Source, error) {
	dir, err := FindRecording(path)
	if err != nil {
		return nil, err
	}
	oebin := filepath.Join(dir, StructureFile)
	st, err := ReadStructure(oebin)
	if err != nil {
		return nil, err
	}
	idx, err := pickStream(st, cfg.Stream, oebin)
	if err != nil {
		return nil, err
	}
	info := st.Continuous[idx]
	s := &Source{dir: dir, info: info, block: cfg.BlockSamples, prev: -1}
	if s.block == 0 {
		s.block = device.DefaultBlockSamples
	}
	if cfg.Pace < 0 {
		return nil, fmt.Errorf("openephys: pace %g, want >= 0", cfg.Pace)
	}
	s.pacer.Speed = cfg.Pace
	if err := s.pickChannels(cfg.Channels, oebin, idx); err != nil {
		return nil, err
	}
	if err := device.CheckInt(oebin, "samples per block", int64(s.block), 1, int64(device.MaxBlockBytes/(2*info.NumChannels)), ""); err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	folder := filepath.Join(dir, "continuous", filepath.FromSlash(strings.TrimSuffix(info.FolderName, "/")))
	named := fmt.Sprintf("(named by %s continuous[%d].folder_name %q)", oebin, idx, info.FolderName)
	s.dataPath = filepath.Join(folder, DataFile)
	if s.dat, err = device.OpenRegular(s.dataPath); err != nil {
		return nil, fmt.Errorf("openephys: %v %s", err, named)
	}
	fi, err := s.dat.Stat()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("openephys: %w", err)
	}
	frame := int64(2 * info.NumChannels)
	if rem := fi.Size() % frame; rem != 0 {
		s.Close()
		return nil, &device.FrameError{Name: s.dataPath, Offset: fi.Size() - rem,
			Reason: fmt.Sprintf("%d bytes is not a whole number of %d-channel int16 samples (%s says num_channels=%d): %d trailing bytes",
				fi.Size(), info.NumChannels, StructureFile, info.NumChannels, rem),
			Err: device.ErrPartialSample}
	}
	s.total = fi.Size() / frame
	if err := s.openSampleNumbers(folder, named); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// pickStream returns the index of the continuous stream cfg names.
func pickStream(st *Structure, want, oebin string) (int, error) {
	var names []string
	for _, c := range st.Continuous {
		names = append(names, fmt.Sprintf("%q", strings.TrimSuffix(c.FolderName, "/")))
	}
	if want != "" {
		for i, c := range st.Continuous {
			if strings.TrimSuffix(c.FolderName, "/") == strings.TrimSuffix(want, "/") || c.StreamName == want {
				return i, nil
			}
		}
		return 0, fmt.Errorf("openephys: %s: no continuous stream %q (the streams: %s)", oebin, want, strings.Join(names, ", "))
	}
	if len(st.Continuous) == 1 {
		return 0, nil
	}
	found := -1
	for i, c := range st.Continuous {
		for _, ch := range c.Channels {
			if ch.electrode() {
				if found >= 0 {
					return 0, fmt.Errorf("openephys: %s: %d continuous streams (%s): choose one", oebin, len(st.Continuous), strings.Join(names, ", "))
				}
				found = i
				break
			}
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("openephys: %s: none of the streams %s has electrode channels: choose one", oebin, strings.Join(names, ", "))
	}
	return found, nil
}

// unitScale returns the factor from a channel's units to µV.
func unitScale(units string) (float64, bool) {
	switch strings.ToLower(units) {
	case "uv", "µv", "μv", "":
		return 1, true
	case "mv":
		return 1e3, true
	case "v":
		return 1e6, true
	}
	return 0, false
}

func (s *Source) pickChannels(want []int, oebin string, idx int) error {
	chans := s.info.Channels
	if want == nil {
		for i, c := range chans {
			if c.electrode() {
				s.chans = append(s.chans, i)
			}
		}
		if len(s.chans) == 0 {
			return fmt.Errorf("openephys: %s: continuous[%d] %q has no electrode channels: choose channels", oebin, idx, s.info.FolderName)
		}
	} else {
		if err := device.CheckChannels(oebin, "channels chosen", len(want)); err != nil {
			return fmt.Errorf("openephys: %w", err)
		}
		seen := map[int]bool{}
		for _, c := range want {
			if c < 0 || c >= len(chans) {
				return fmt.Errorf("openephys: %s: channel %d: stream %q has channels 0..%d", oebin, c, s.info.FolderName, len(chans)-1)
			}
			if seen[c] {
				return fmt.Errorf("openephys: %s: channel %d chosen twice", oebin, c)
			}
			seen[c] = true
		}
		s.chans = append([]int(nil), want...)
	}
	s.all = len(s.chans) == len(chans)
	for i, c := range s.chans {
		s.all = s.all && c == i
		ch := chans[c]
		scale, ok := unitScale(ch.Units)
		if !ok {
			return fmt.Errorf("openephys: %s: channel %d (%s): units %q, want uV, mV or V", oebin, c, ch.ChannelName, ch.Units)
		}
		g := ch.BitVolts * scale
		if i == 0 {
			s.gain = g
			continue
		}
		if g != s.gain {
			first := chans[s.chans[0]]
			return fmt.Errorf("openephys: %s: channels %s (%g %s per bit) and %s (%g %s per bit) differ in gain: choose channels that share one",
				oebin, first.ChannelName, first.BitVolts, first.Units, ch.ChannelName, ch.BitVolts, ch.Units)
		}
	}
	return device.CheckGain(oebin, "bit_volts (µV)", s.gain)
}

func (s *Source) openSampleNumbers(folder, named string) error {
	s.snName = filepath.Join(folder, SampleNumbersFile)
	s.newStyle = true
	f, err := device.OpenRegular(s.snName)
	if errors.Is(err, os.ErrNotExist) {
		// GUI versions before 0.6 wrote the sample numbers as
		// timestamps.npy (int64); later ones write seconds there.
		old := filepath.Join(folder, TimestampsFile)
		if g, oerr := device.OpenRegular(old); oerr == nil {
			if h, herr := readNPYHeader(g, old); herr == nil && strings.Contains(h.Descr, "i") {
				f, err, s.snName, s.newStyle = g, nil, old, false
			} else {
				g.Close()
			}
		}
	}
	if err != nil {
		return fmt.Errorf("openephys: %v %s", err, named)
	}
	s.sn = f
	if s.snh, err = readNPYHeader(f, s.snName); err != nil {
		return err
	}
	h := s.snh
	if len(h.Shape) != 1 || !strings.Contains(h.Descr, "i") && !strings.Contains(h.Descr, "u") {
		return fmt.Errorf("openephys: %s: byte 0: %w: shape %v of %s, want one integer per sample", s.snName, errNPY, h.Shape, h.Descr)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("openephys: %w", err)
	}
	size := int64(itemSize(h.Descr))
	held := (fi.Size() - h.Data) / size // records physically present
	switch {
	case h.records() > s.total:
		return fmt.Errorf("openephys: %s: %w: it lists %d samples, %s holds %d (%d channels)",
			s.snName, ErrSampleCount, h.records(), s.dataPath, s.total, s.info.NumChannels)
	case held < s.total:
		// The GUI updates the header's count as it goes, so a recording
		// cut short by a crash may count fewer than it holds; fewer
		// records than samples is a real mismatch.
		return fmt.Errorf("openephys: %s: byte %d: %w: it holds %d sample numbers, %s holds %d samples (%d channels)",
			s.snName, h.Data+held*size, ErrSampleCount, held, s.dataPath, s.total, s.info.NumChannels)
	}
	return nil
}

// Info returns the stream's description from structure.oebin.
func (s *Source) Info() Continuous { return s.info }

// Dir returns the recording folder.
func (s *Source) Dir() string { return s.dir }

// ChannelNames returns the names of the channels read, in Block order.
func (s *Source) ChannelNames() []string {
	names := make([]string, len(s.chans))
	for i, c := range s.chans {
		names[i] = s.info.Channels[c].ChannelName
	}
	return names
}

// Channels returns the indexes, within the stream, of the channels read.
func (s *Source) Channels() []int { return append([]int(nil), s.chans...) }

// Gain returns the µV per count of the channels read.
func (s *Source) Gain() float64 { return s.gain }

// Samples returns the number of samples per channel in the stream.
func (s *Source) Samples() int64 { return s.total }

// Next returns the next Block, io.EOF after the last one, or ctx.Err().
func (s *Source) Next(ctx context.Context) (device.Block, error) {
	if err := ctx.Err(); err != nil {
		return device.Block{}, err
	}
	if s.next >= s.total {
		return device.Block{}, io.EOF
	}
	n := int(min(int64(s.block), s.total-s.next))
	if cap(s.nums) < n {
		s.nums = make([]int64, n)
	}
	nums := s.nums[:n]
	var err error
	if s.numBuf, err = readInt64s(s.sn, s.snh, s.next, nums, s.numBuf); err != nil {
		return device.Block{}, fmt.Errorf("openephys: %s: %w", s.snName, err)
	}
	first := nums[0]
	if first < 0 {
		return device.Block{}, fmt.Errorf("openephys: %s: byte %d: sample number %d of sample %d is negative",
			s.snName, s.snh.Data+8*s.next, first, s.next)
	}
	for i := 1; i < n; i++ {
		if nums[i] != first+int64(i) {
			n = i // the Block ends before the jump
			break
		}
	}
	var events []device.Event
	off := s.next * int64(2*s.info.NumChannels)
	if s.started && first != s.prev+1 {
		if first > s.prev {
			events = append(events, device.Event{Kind: device.EventGap, Sample: uint64(first), Count: uint64(first - s.prev - 1),
				Offset: off, Detail: fmt.Sprintf("sample numbers jump from %d to %d in %s", s.prev, first, s.snName)})
		} else {
			events = append(events, device.Event{Kind: device.EventReset, Sample: uint64(first), Offset: off,
				Detail: fmt.Sprintf("sample numbers go back from %d to %d in %s", s.prev, first, s.snName)})
		}
	}
	C := s.info.NumChannels
	size := 2 * C * n
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	buf := s.buf[:size]
	if got, err := s.dat.ReadAt(buf, off); got < size {
		if err == nil || errors.Is(err, io.EOF) {
			err = device.ErrTruncated
		}
		return device.Block{}, &device.FrameError{Name: s.dataPath, Offset: off + int64(got),
			Reason: fmt.Sprintf("read %d of %d bytes of samples %d..%d", got, size, s.next, s.next+int64(n)), Err: err}
	}
	k := len(s.chans)
	b := device.Block{First: uint64(first), Rate: s.info.SampleRate, Channels: k, Gain: s.gain,
		Samples: make([]int16, k*n), Events: events}
	if s.all {
		for i := range b.Samples {
			b.Samples[i] = int16(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	} else {
		for t := 0; t < n; t++ {
			row := buf[2*C*t:]
			out := b.Samples[k*t : k*t+k]
			for j, c := range s.chans {
				out[j] = int16(binary.LittleEndian.Uint16(row[2*c:]))
			}
		}
	}
	s.next += int64(n)
	s.prev = first + int64(n) - 1
	s.started = true
	if err := s.pacer.Wait(ctx, &b); err != nil {
		return device.Block{}, err
	}
	b.Received = time.Now()
	return b, nil
}

// Close closes the files.
func (s *Source) Close() error {
	var err error
	for _, f := range []*os.File{s.dat, s.sn} {
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	return err
}
