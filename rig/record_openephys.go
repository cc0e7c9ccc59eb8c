package rig

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/openephys"
	"github.com/spikeline/spikeline/sort"
)

// openRecordAs is openRecord for --record-format: raw (recording.dat and
// its sidecar) or openephys (an Open Ephys binary recording, beside the
// spikes.csv and templates.json of every format).
func openRecordAs(dir, format string) (*rawRecorder, *spikeRecorder, error) {
	switch format {
	case RecordRaw:
		return openRecord(dir)
	case RecordOpenEphys:
	default:
		return nil, nil, configErrorf("--record-format %q: want raw or openephys", format)
	}
	for _, name := range []string{SpikesFile, TemplatesFile, openephys.DefaultRecordNode} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return nil, nil, configErrorf("--record %s: %s exists: a recording is never overwritten; choose a new directory", dir, filepath.Join(dir, name))
		}
	}
	w, err := openephys.Create(dir, openephys.WriterConfig{})
	if err != nil {
		return nil, nil, configErrorf("--record: %v", err)
	}
	sr, err := newSpikeRecorder(dir)
	if err != nil {
		w.Close()
		return nil, nil, configErrorf("--record: %v", err)
	}
	sr.oe = &oeSpikes{w: w, rec: 1}
	// Every segment of the session is the next recording folder of the
	// same experiment (segment-N directories hold its spikes.csv).
	create := func(string) (segmentWriter, error) { return oeSegment{w}, nil }
	return &rawRecorder{base: dir, seg: 1, w: oeSegment{w}, dirs: []string{dir}, create: create}, sr, nil
}

// oeSegment is one segment of a session recorded in the Open Ephys
// format: one recording folder of the Writer.
type oeSegment struct{ w *openephys.Writer }

func (s oeSegment) Write(b *device.Block) error { return s.w.Write(b) }

func (s oeSegment) Sync() error { return s.w.Sync() }

// Close ends the segment's recording folder; a Writer that recorded
// nothing removes its folders.
func (s oeSegment) Close() error {
	if s.w.Recordings() == 0 {
		return s.w.Close()
	}
	return s.w.EndRecording()
}

// oeSpikes sends the sorted spikes of one segment to its Open Ephys
// recording folder, for the loop's spikeRecorder.
type oeSpikes struct {
	w   *openephys.Writer
	rec int // the recording (segment) number
}

func (o *oeSpikes) add(spikes []sort.Spike) error {
	if err := o.w.Spikes(o.rec, spikes); err != nil {
		return fmt.Errorf("recording spikes: %w", err)
	}
	return nil
}

// finish writes the segment's spike folders (waveforms cut from its
// samples) and its final structure.oebin.
func (o *oeSpikes) finish() error {
	if err := o.w.FinishSpikes(o.rec); err != nil {
		return fmt.Errorf("recording spikes: %w", err)
	}
	return nil
}

// next returns the oeSpikes of segment seg.
func (o *oeSpikes) next(seg int) *oeSpikes {
	if o == nil {
		return nil
	}
	return &oeSpikes{w: o.w, rec: seg}
}

// interopOpened wires the opened device into an Open Ephys recording:
// its channel names and stream, and its stimulation trains as TTL events.
func (p *Rig) interopOpened() {
	if p.spikeRec == nil || p.spikeRec.oe == nil {
		return
	}
	w := p.spikeRec.oe.w
	if n, ok := p.src.Source.(device.ChannelNamer); ok {
		w.SetChannelNames(n.ChannelNames())
	}
	if oe, ok := p.src.Source.(interface{ Info() openephys.Continuous }); ok {
		// An Open Ephys recording replayed keeps its processor and stream.
		c := oe.Info()
		w.SetStream(c.SourceProcessorName, c.SourceProcessorID, c.StreamName)
	}
	p.src.onStim = func(st device.Stim, counter uint64) {
		samples := uint64(st.TrainUs() * p.sorterNow.Load().Rate() / 1e6)
		text := fmt.Sprintf("stimulate channel=%d amplitude_ua=%s phase_us=%d pulses=%d period_us=%d biphasic=%t cathodic_first=%t",
			st.Channel, strconv.FormatFloat(float64(st.AmplitudeUA), 'g', -1, 32), st.PhaseUs, st.Pulses, st.PeriodUs, st.Biphasic, st.CathodicFirst)
		if err := w.Stimulation(counter, samples, text); err != nil {
			p.log.Warn("recording the stimulation as a TTL event", "err", err)
		}
	}
}
