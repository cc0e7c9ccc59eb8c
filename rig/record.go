package rig

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/schema"
)

// Files 'spikeline run --record DIR' writes beside the raw recording.
const (
	SpikesFile    = "spikes.csv"     // sorted spikes, the format of 'spikeline sort' (sort.SpikesHeader)
	TemplatesFile = "templates.json" // the latest templates, the JSON template schema of docs/schemas.md
)

// spikeRecorder appends the sorted spikes of a live run to DIR/spikes.csv
// and keeps DIR/templates.json current. Crash safety matches the raw
// recording's: sync flushes and fsyncs the spikes (the loop calls it every
// second of device time), so a crash loses at most the last second and
// at worst leaves a torn last line; templates.json is replaced atomically.
type spikeRecorder struct {
	dir string
	f   *os.File
	w   *bufio.Writer
	buf []byte
	n   int       // spikes added
	oe  *oeSpikes // --record-format openephys: the segment's spikes also go there (run_interop.go)
}

// newSpikeRecorder creates dir if needed and a new spikes.csv in it,
// exclusively: an existing file or a symbolic link there is refused.
func newSpikeRecorder(dir string) (*spikeRecorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("recording spikes: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, SpikesFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("recording spikes: %w", err)
	}
	r := &spikeRecorder{dir: dir, f: f, w: bufio.NewWriterSize(f, 1<<16)}
	r.w.WriteString(sort.SpikesHeader + "\n")
	return r, nil
}

// add appends spikes (one CSV line each, no allocation).
func (r *spikeRecorder) add(spikes []sort.Spike) error {
	for _, s := range spikes {
		r.buf = sort.AppendSpikeCSV(r.buf[:0], s)
		if _, err := r.w.Write(r.buf); err != nil {
			return fmt.Errorf("recording spikes: %w", err)
		}
	}
	r.n += len(spikes)
	if r.oe != nil {
		return r.oe.add(spikes)
	}
	return nil
}

// sync makes everything added so far durable.
func (r *spikeRecorder) sync() error {
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("recording spikes: %w", err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("recording spikes: fsync %s: %w", r.f.Name(), err)
	}
	return nil
}

// templates replaces templates.json with a full snapshot.
func (r *spikeRecorder) templates(sample uint64, rate float64, ts []sort.Template) error {
	b, err := (&schema.TemplateBatch{Header: schema.Header{Flags: schema.FlagFullSnapshot, Sample: sample, Rate: rate}, Templates: ts}).MarshalJSON()
	if err != nil {
		return err
	}
	if err := device.WriteFileAtomic(filepath.Join(r.dir, TemplatesFile), append(b, '\n')); err != nil {
		return fmt.Errorf("recording templates: %w", err)
	}
	return nil
}

func (r *spikeRecorder) close() error {
	err := r.sync()
	if r.oe != nil {
		if oerr := r.oe.finish(); err == nil {
			err = oerr
		}
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}
