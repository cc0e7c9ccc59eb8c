package device

import (
	"encoding/json"
	"fmt"
	"os"
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
}

// MetaGap is a stretch of a recording filled with zeros because the
// device lost it: Count samples per channel starting at device sample
// index Sample.
type MetaGap struct {
	Sample uint64 `json:"sample"`
	Count  uint64 `json:"count"`
}

// Validate reports the first impossible field of m.
func (m Meta) Validate() error {
	switch {
	case m.Channels <= 0:
		return fmt.Errorf("n_channels = %d, want > 0", m.Channels)
	case m.Rate <= 0:
		return fmt.Errorf("sample_rate = %g, want > 0", m.Rate)
	case m.Gain <= 0:
		return fmt.Errorf("gain_uv_per_bit = %g, want > 0", m.Gain)
	case m.Dtype != "" && m.Dtype != "int16":
		return fmt.Errorf("dtype = %q, only int16 is supported", m.Dtype)
	}
	return nil
}

// ReadMeta reads and validates a recording sidecar.
func ReadMeta(path string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("device: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("device: %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("device: %s: %w", path, err)
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
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	return nil
}
