package openephys

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spikeline/spikeline/device"
)

// StructureFile is the index of a recording folder.
const StructureFile = "structure.oebin"

// Structure is a recording's structure.oebin: what the GUI's
// BinaryRecording::openFiles writes.
type Structure struct {
	GUIVersion string       `json:"GUI version"`
	Continuous []Continuous `json:"continuous"`
	Events     []Events     `json:"events"`
	Spikes     []Spikes     `json:"spikes"`
}

// Continuous describes one continuous stream: its folder under
// continuous/ holds continuous.dat (int16, interleaved), sample_numbers.npy
// (int64, one per sample) and timestamps.npy (float64 seconds).
type Continuous struct {
	FolderName          string    `json:"folder_name"`
	SampleRate          float64   `json:"sample_rate"`
	SourceProcessorName string    `json:"source_processor_name"`
	SourceProcessorID   int       `json:"source_processor_id"`
	StreamName          string    `json:"stream_name"`
	RecordedProcessor   string    `json:"recorded_processor"`
	RecordedProcessorID int       `json:"recorded_processor_id"`
	NumChannels         int       `json:"num_channels"`
	Channels            []Channel `json:"channels"`
}

// Channel types of the GUI's ContinuousChannel::Type.
const (
	TypeElectrode = 0
	TypeAux       = 1
	TypeADC       = 2
)

// Channel describes one channel of a continuous stream. Type is absent
// (nil) in files of GUI versions before 0.6.
type Channel struct {
	ChannelName string  `json:"channel_name"`
	Description string  `json:"description"`
	Identifier  string  `json:"identifier"`
	History     string  `json:"history"`
	BitVolts    float64 `json:"bit_volts"`
	Units       string  `json:"units"`
	Type        *int    `json:"type,omitempty"`
}

// electrode reports whether c is a neural channel: type 0, or (without
// a type) in µV.
func (c Channel) electrode() bool {
	if c.Type != nil {
		return *c.Type == TypeElectrode
	}
	u := strings.ToLower(c.Units)
	return u == "uv" || u == "µv" || u == "μv" || u == ""
}

// Events describes one event channel; TTL lines live in
// events/<folder_name>/ as states.npy (int16: +line on, -line off, lines
// from 1), sample_numbers.npy (int64), timestamps.npy (float64) and
// full_words.npy (uint64).
type Events struct {
	FolderName      string  `json:"folder_name"`
	ChannelName     string  `json:"channel_name"`
	Description     string  `json:"description"`
	Identifier      string  `json:"identifier"`
	SampleRate      float64 `json:"sample_rate"`
	Type            string  `json:"type"`
	SourceProcessor string  `json:"source_processor"`
	StreamName      string  `json:"stream_name"`
	InitialState    int     `json:"initial_state"`
}

// Spikes describes one spike channel (an electrode: one, two or four
// channels); spikes/<folder>/ holds waveforms.npy (int16, records ×
// channels × samples), sample_numbers.npy (int64), timestamps.npy
// (float64), electrode_indices.npy (uint16) and clusters.npy (uint16,
// the sorted unit; 0 = unsorted).
type Spikes struct {
	Name              string          `json:"name"`
	Description       string          `json:"description"`
	Identifier        string          `json:"identifier"`
	SourceProcessorID int             `json:"source_processor_id"`
	StreamName        string          `json:"stream_name"`
	SampleRate        float64         `json:"sample_rate"`
	NumChannels       int             `json:"num_channels"`
	PrePeakSamples    int             `json:"pre_peak_samples"`
	PostPeakSamples   int             `json:"post_peak_samples"`
	Folder            string          `json:"folder"`
	SourceChannels    []SourceChannel `json:"source_channels"`
}

// SourceChannel is a continuous channel a spike channel is cut from.
type SourceChannel struct {
	Name       string  `json:"name"`
	LocalIndex int     `json:"local_index"`
	BitVolts   float64 `json:"bit_volts"`
}

// ReadStructure reads and checks a structure.oebin: at least one
// continuous stream, and in each the channel count, rate and gains within
// the limits of device (limits.go) and num_channels equal to the channels
// listed. Errors name the file and the stream.
func ReadStructure(path string) (*Structure, error) {
	b, err := device.ReadFileLimit(path, device.MaxSidecarBytes)
	if err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	var s Structure
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("openephys: %s: %w", path, err)
	}
	if len(s.Continuous) == 0 {
		return nil, fmt.Errorf("openephys: %s: no continuous stream", path)
	}
	for i, c := range s.Continuous {
		where := fmt.Sprintf("%s: continuous[%d] (%q)", path, i, c.FolderName)
		switch {
		case c.FolderName == "" || strings.Contains(c.FolderName, "..") || filepath.IsAbs(c.FolderName):
			return nil, fmt.Errorf("openephys: %s: folder_name %q: want a relative folder", where, c.FolderName)
		case c.NumChannels != len(c.Channels):
			return nil, fmt.Errorf("openephys: %s: num_channels is %d but %d channels are listed", where, c.NumChannels, len(c.Channels))
		}
		if err := device.CheckChannels(where, "num_channels", c.NumChannels); err != nil {
			return nil, fmt.Errorf("openephys: %w", err)
		}
		if err := device.CheckRate(where, "sample_rate", c.SampleRate); err != nil {
			return nil, fmt.Errorf("openephys: %w", err)
		}
		for j, ch := range c.Channels {
			if err := device.CheckGain(where, fmt.Sprintf("channels[%d] (%s) bit_volts", j, ch.ChannelName), ch.BitVolts); err != nil {
				return nil, fmt.Errorf("openephys: %w", err)
			}
		}
	}
	return &s, nil
}

// ErrAmbiguous is wrapped when a folder holds several recordings and
// none was chosen.
var ErrAmbiguous = errors.New("several recordings")

// FindRecording resolves path to a recording folder (the folder of a
// structure.oebin): path may be the structure.oebin itself, its folder,
// or any folder above it (a Record Node, the session) that holds exactly
// one recording. Several recordings are an error listing them.
func FindRecording(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("openephys: %w", err)
	}
	if !fi.IsDir() {
		if filepath.Base(path) != StructureFile {
			return "", fmt.Errorf("openephys: %s: want a recording folder or its %s", path, StructureFile)
		}
		return filepath.Dir(path), nil
	}
	var found []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.Count(strings.TrimPrefix(p, path), string(filepath.Separator)) > 4 {
			return filepath.SkipDir // sessions are Record Node/experimentN/recordingM deep
		}
		if !d.IsDir() && d.Name() == StructureFile {
			found = append(found, filepath.Dir(p))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("openephys: %w", err)
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("openephys: %s: no %s in it or in the folders below (is it an Open Ephys binary recording?)", path, StructureFile)
	case 1:
		return found[0], nil
	}
	slices.Sort(found)
	return "", fmt.Errorf("openephys: %s: %w: %s; give one of them", path, ErrAmbiguous, strings.Join(found, ", "))
}

// IsRecording reports whether path looks like an Open Ephys binary
// recording: a structure.oebin, or a folder with one at most four levels
// down.
func IsRecording(path string) bool {
	_, err := FindRecording(path)
	return err == nil || errors.Is(err, ErrAmbiguous)
}
