package device

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
)

// Limits on every number spikeline takes from outside: files, wire
// frames, flags and configuration. A number outside its limit is refused
// with a *RangeError naming where it came from, the field and the allowed
// range, before anything is allocated from it. Each limit leaves room for
// every real rig (the largest systems record a few thousand channels at
// up to 50 kHz) and keeps what one hostile number can make spikeline
// allocate in the tens of MB: the sorter needs about 8 KB per channel at
// 30 kHz and 13 KB at 200 kHz before it has seen any data.
// docs/formats.md lists them.
const (
	// MaxChannels is the most channels a Block, a recording, a wire
	// frame or a sorter may have.
	MaxChannels = 8192
	// MinRate and MaxRate bound a sample rate, in Hz.
	MinRate = 1
	MaxRate = 200_000
	// MaxGain bounds a gain, in µV per count (a count of 1 V would be
	// 10⁶: no amplifier is that coarse).
	MaxGain = 1e6

	// MaxBlockBytes bounds the samples of one Block read from a file.
	MaxBlockBytes = 64 << 20
	// MaxQueueBlocks bounds a queue of Blocks (spikeline run --queue),
	// and MaxQueueBytes the samples such a queue may hold: a longer
	// queue of large Blocks is shortened to fit.
	MaxQueueBlocks = 100_000
	MaxQueueBytes  = 1 << 30
	// MaxGaps bounds the gaps one recording lists in its sidecar; a
	// RawWriter refuses the gap after it (ErrTooManyGaps).
	MaxGaps = 65536

	// MaxSidecarBytes bounds a recording.json sidecar (a sidecar with
	// MaxGaps gaps is about 5 MB).
	MaxSidecarBytes = 16 << 20
	// MaxConfigBytes bounds a TOML configuration file.
	MaxConfigBytes = 1 << 20
	// MaxModelBytes bounds a decoder model file.
	MaxModelBytes = 256 << 20
	// MaxLineBytes bounds one line of a CSV input (spikes, behaviour,
	// units, gaps, positions); the file as a whole is read as a stream.
	MaxLineBytes = 1 << 20
)

// ErrRange is wrapped by every *RangeError.
var ErrRange = errors.New("out of range")

// RangeError is a number from outside spikeline that is out of its
// allowed range.
type RangeError struct {
	Source string // where it came from: a file, "wire frame at byte 4136"; "" for a flag
	Field  string // its name there: "sample_rate", "channels", "--queue"
	Value  string // the number as given
	Range  string // what is allowed: "1..200000 Hz"
}

func (e *RangeError) Error() string {
	s := fmt.Sprintf("%s = %s, want %s", e.Field, e.Value, e.Range)
	if e.Source != "" {
		s = e.Source + ": " + s
	}
	return s
}

func (e *RangeError) Unwrap() error { return ErrRange }

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// CheckChannels checks a channel count against 1..MaxChannels.
func CheckChannels(source, field string, n int) error {
	if n < 1 || n > MaxChannels {
		return &RangeError{source, field, strconv.Itoa(n), fmt.Sprintf("1..%d channels", MaxChannels)}
	}
	return nil
}

// CheckRate checks a sample rate against MinRate..MaxRate Hz.
func CheckRate(source, field string, hz float64) error {
	if !(hz >= MinRate && hz <= MaxRate) {
		return &RangeError{source, field, formatFloat(hz), fmt.Sprintf("%d..%d Hz", MinRate, MaxRate)}
	}
	return nil
}

// CheckGain checks a gain against (0, MaxGain] µV per count.
func CheckGain(source, field string, g float64) error {
	if !(g > 0 && g <= MaxGain) {
		return &RangeError{source, field, formatFloat(g), fmt.Sprintf("> 0 and <= %g µV/count", float64(MaxGain))}
	}
	return nil
}

// CheckInt checks an integer against lo..hi; unit names what it counts.
func CheckInt(source, field string, v, lo, hi int64, unit string) error {
	if v < lo || v > hi {
		r := fmt.Sprintf("%d..%d", lo, hi)
		if unit != "" {
			r += " " + unit
		}
		return &RangeError{source, field, strconv.FormatInt(v, 10), r}
	}
	return nil
}

// ReadFileLimit reads a small file (a sidecar, a configuration, a model)
// into memory, refusing one of more than limit bytes, a directory, or
// something that is not a regular file and does not end (/dev/zero): no
// more than limit+1 bytes are ever read. A named pipe is opened without
// blocking, so one nobody writes to reads as empty instead of hanging.
func ReadFileLimit(path string, limit int64) ([]byte, error) {
	f, err := openNoBlock(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	if fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, &RangeError{path, "size", strconv.FormatInt(fi.Size(), 10) + " bytes", fmt.Sprintf("at most %d bytes", limit)}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &RangeError{path, "size", fmt.Sprintf("more than %d bytes", limit), fmt.Sprintf("at most %d bytes", limit)}
	}
	return b, nil
}

// OpenRegular opens path for reading and checks that it is a regular
// file: a named pipe, a device (/dev/zero) or a directory is refused with
// an error saying what it is, without blocking on a pipe nobody writes to.
func OpenRegular(path string) (*os.File, error) {
	f, err := openNoBlock(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %s, not a regular file", path, FileKind(fi.Mode()))
	}
	return f, nil
}

// FileKind names the kind of file m describes ("a named pipe (FIFO)").
func FileKind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

// LineLimit returns a reader that passes r through but fails with a
// *RangeError once a line (the bytes between two newlines) exceeds max
// bytes, so that a CSV parser reading it never buffers more than max
// bytes of one line, whatever the input (/dev/zero, a binary file).
// Parsers wrap the error with the file name and line.
func LineLimit(r io.Reader, max int) io.Reader {
	return &lineLimiter{r: r, max: max}
}

type lineLimiter struct {
	r   io.Reader
	max int
	run int // bytes since the last newline
	err error
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for i, c := range p[:n] {
		if c == '\n' {
			l.run = 0
			continue
		}
		l.run++
		if l.run > l.max {
			l.err = &RangeError{"", "line length", fmt.Sprintf("more than %d bytes", l.max),
				fmt.Sprintf("at most %d bytes (is it a text file?)", l.max)}
			if i > 0 {
				return i, nil
			}
			return 0, l.err
		}
	}
	return n, err
}

// checkSpan reports whether first+n overflows a uint64 sample index.
func checkSpan(first, n uint64) bool { return n <= math.MaxUint64-first }
