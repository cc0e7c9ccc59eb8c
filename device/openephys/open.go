package openephys

import (
	"context"
	"os"
	"path/filepath"

	"github.com/spikeline/spikeline/device"
)

// An Open Ephys binary recording is a file format of the registry
// (device.Open("file:PATH", ...)): PATH is a recording folder or any
// folder above a single one. Options.Config may be a Config naming the
// stream; Options.Pace paces it.
func init() {
	device.RegisterFormat("openephys", func(path string, o device.Options) bool {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			if _, err := os.Stat(filepath.Join(path, device.RecordingMeta)); err == nil || o.Meta != "" {
				return false // a raw recording
			}
		}
		return IsRecording(path)
	}, openRecording)
}

func openRecording(_ context.Context, path string, o device.Options) (device.Source, error) {
	if o.Meta != "" || o.Channels > 0 {
		return nil, device.SpecErrorf("--device file:%s: an Open Ephys recording describes itself (no --meta or --channels)", path)
	}
	var cfg Config
	switch c := o.Config.(type) {
	case nil:
	case Config:
		cfg = c
	default:
		return nil, device.SpecErrorf("device file:%s: Options.Config is a %T, want an openephys.Config", path, o.Config)
	}
	cfg.Pace = o.Pace
	oes, err := Open(path, cfg)
	if err != nil {
		return nil, err
	}
	info := oes.Info()
	o.Log().Info("Open Ephys recording", "folder", oes.Dir(), "stream", info.FolderName, "channels", len(oes.ChannelNames()),
		"of", info.NumChannels, "rate_hz", info.SampleRate, "seconds", float64(oes.Samples())/info.SampleRate)
	return &recordingDevice{oes}, nil
}

type recordingDevice struct{ *Source }

func (d *recordingDevice) String() string { return "file:" + d.Dir() }
