package device

import (
	"encoding/json"
	"fmt"
)

// Meta is a recording's JSON sidecar (recording.json): what is needed to
// read the raw int16 file beside it. See docs/formats.md.
type Meta struct {
	Channels   int     `json:"n_channels"`
	Rate       float64 `json:"sample_rate"`
	Gain       float64 `json:"gain_uv_per_bit"`
	Samples    uint64  `json:"n_samples,omitempty"` // samples per channel, 0 if unknown
	Seed       int64   `json:"seed,omitempty"`      // simulator seed, when simulated
	DataFile   string  `json:"data_file,omitempty"` // raw file name, relative to the sidecar
	Dtype      string  `json:"dtype,omitempty"`     // always "int16" for now
	Interleave string  `json:"layout,omitempty"`    // always "time-major" for now
	// First is the device sample index of the file's first sample (a
	// recording of a live device starts wherever its counter was).
	First uint64 `json:"first_sample,omitempty"`
	// Gaps lists stretches the device lost while recording, which the
	// file holds as zeros so that file position stays device time.
	Gaps []MetaGap `json:"gaps,omitempty"`
	// InProgress marks a recording whose writer has not closed it: one
	// being written, or left by a crash. Only its first Synced samples
	// per channel were made durable, with every gap before them listed;
	// readers take those and ignore the rest of the file (see RawWriter).
	InProgress bool   `json:"in_progress,omitempty"`
	Synced     uint64 `json:"synced_samples,omitempty"`
}

// MetaGap is a stretch of a recording filled with zeros because the
// device lost it: Count samples per channel starting at device sample
// index Sample.
type MetaGap struct {
	Sample uint64 `json:"sample"`
	Count  uint64 `json:"count"`
}

// Validate reports the first impossible or out-of-range field of m (see
// the limits in limits.go).
func (m Meta) Validate() error {
	if err := CheckChannels("", "n_channels", m.Channels); err != nil {
		return err
	}
	if err := CheckRate("", "sample_rate", m.Rate); err != nil {
		return err
	}
	if err := CheckGain("", "gain_uv_per_bit", m.Gain); err != nil {
		return err
	}
	switch {
	case m.Dtype != "" && m.Dtype != "int16":
		return fmt.Errorf("dtype = %q, only int16 is supported", m.Dtype)
	case !checkSpan(m.First, m.Samples):
		return fmt.Errorf("first_sample %d + n_samples %d overflows the 64-bit sample index", m.First, m.Samples)
	case m.InProgress && m.Samples != 0:
		return fmt.Errorf("in_progress with n_samples = %d: a recording is either closed (n_samples) or not (in_progress)", m.Samples)
	case !m.InProgress && m.Synced != 0:
		return fmt.Errorf("synced_samples = %d without in_progress", m.Synced)
	case !checkSpan(m.First, m.Synced):
		return fmt.Errorf("first_sample %d + synced_samples %d overflows the 64-bit sample index", m.First, m.Synced)
	case len(m.Gaps) > MaxGaps:
		return &RangeError{"", "gaps", fmt.Sprintf("%d entries", len(m.Gaps)), fmt.Sprintf("at most %d", MaxGaps)}
	}
	return nil
}

// ReadMeta reads and validates a recording sidecar. A sidecar larger than
// MaxSidecarBytes, or something that is not a file (/dev/zero), is
// refused without reading more than that.
func ReadMeta(path string) (Meta, error) {
	var m Meta
	b, err := ReadFileLimit(path, MaxSidecarBytes)
	if err != nil {
		return m, fmt.Errorf("device: %w", err)
	}
	return ParseMeta(b, path)
}

// ParseMeta decodes and validates a sidecar's JSON; name labels errors.
func ParseMeta(b []byte, name string) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("device: %s: %w", name, err)
	}
	if err := m.Validate(); err != nil {
		return Meta{}, fmt.Errorf("device: %s: %w", name, err)
	}
	return m, nil
}

// WriteMeta writes m as indented JSON to path.
func WriteMeta(path string, m Meta) error {
	if m.Dtype == "" {
		m.Dtype = "int16"
	}
	if m.Interleave == "" {
		m.Interleave = "time-major"
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	return nil
}
