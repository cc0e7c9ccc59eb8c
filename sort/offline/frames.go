package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/openephys"
)

// A file of wire-protocol frames (spikeline encode, a capture of a
// headstage) is sorted as a recording is when its frames carry samples
// (raw or lossless); spike events from a headstage in spike-event mode
// are sorted from their snippets (sort.SnippetSorter).

// FrameInfo is what a scan of a file of frames found.
type FrameInfo struct {
	Channels  int
	Rate      float64
	Gain      float64
	Samples   uint64 // samples per channel covered
	Spikes    bool   // spike frames
	Features  bool   // feature frames
	Pre, Post int    // snippets
}

// ScanFrames reads a file of frames once: its format and what it carries.
// Damage in the file is an error naming its offset.
func ScanFrames(ctx context.Context, path string) (FrameInfo, error) {
	var w FrameInfo
	wf, err := OpenFrames(ctx, path)
	if err != nil {
		return w, err
	}
	defer device.Close(wf)
	for {
		b, err := wf.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return w, err
		}
		if w.Channels == 0 {
			w.Channels, w.Rate, w.Gain = b.Channels, b.Rate, b.Gain
		}
		if b.Channels != w.Channels || b.Rate != w.Rate {
			return w, fmt.Errorf("%s: sample %d: the format changes (%d channels at %g Hz after %d at %g Hz): sort one format at a time",
				path, b.First, b.Channels, b.Rate, w.Channels, w.Rate)
		}
		switch {
		case b.Spikes != nil:
			w.Spikes, w.Pre, w.Post = true, b.Spikes.Pre, b.Spikes.Post
			if !b.Spikes.Snippets {
				return w, fmt.Errorf("%s: the spike events carry no snippets: nothing to sort them by", path)
			}
		case b.Features != nil:
			w.Features = true
		}
		w.Samples += uint64(b.End() - b.First)
	}
	switch {
	case w.Channels == 0:
		return w, fmt.Errorf("%s: no frames of samples or spike events", path)
	case w.Features:
		return w, fmt.Errorf("%s: the frames carry features (threshold crossings and power), not spikes: decode them with 'spikeline decode fit --features %s'", path, path)
	}
	return w, nil
}

// IsInteropRecording reports whether path is an Intan .rhd/.rhs file or
// an Open Ephys recording: read as a file of frames is (OpenFrames), as
// recordings that describe themselves.
func IsInteropRecording(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".rhd", ".rhs":
		return true
	}
	if _, err := os.Stat(filepath.Join(path, device.RecordingMeta)); err == nil {
		return false // a raw recording's directory
	}
	return openephys.IsRecording(path)
}

// OpenFrames opens, to sort it, a file of wire-protocol frames
// (strictly: damage is an error) or an Intan or Open Ephys recording.
func OpenFrames(ctx context.Context, path string) (device.Source, error) {
	if IsInteropRecording(path) {
		return device.Open(ctx, "file:"+path, device.Options{})
	}
	wf, err := device.OpenWireFile(path)
	if err != nil {
		return nil, err
	}
	wf.Strict = true
	return wf, nil
}
