package openephys

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// TTLEvent is one change of a TTL line (states.npy and sample_numbers.npy
// of an events/.../TTL folder).
type TTLEvent struct {
	Sample uint64
	Line   int  // 1..64
	On     bool // the line went high
}

// Spike is one spike of a spikes/ folder.
type Spike struct {
	Sample   uint64
	Channel  int     // the continuous channel it was cut from (source_channels[0].local_index)
	Cluster  int     // clusters.npy: the sorted unit, 0 = unsorted
	Waveform []int16 // channels × samples, as recorded (counts of bit_volts)
}

// ReadTTL reads the TTL events of a recording folder, all TTL event
// channels in structure.oebin order, each in its file order.
func ReadTTL(dir string) ([]TTLEvent, error) {
	st, err := ReadStructure(filepath.Join(dir, StructureFile))
	if err != nil {
		return nil, err
	}
	var out []TTLEvent
	for _, e := range st.Events {
		if !strings.Contains(e.FolderName, "TTL") {
			continue
		}
		d := filepath.Join(dir, "events", filepath.FromSlash(strings.TrimSuffix(e.FolderName, "/")))
		states, err := readInts(filepath.Join(d, "states.npy"))
		if err != nil {
			return nil, err
		}
		samples, err := readInts(filepath.Join(d, SampleNumbersFile))
		if err != nil {
			return nil, err
		}
		if len(states) != len(samples) {
			return nil, fmt.Errorf("openephys: %s: %d states but %d sample numbers", d, len(states), len(samples))
		}
		for i, s := range states {
			if s == 0 || s > 64 || s < -64 || samples[i] < 0 {
				return nil, fmt.Errorf("openephys: %s: event %d: state %d at sample %d", d, i, s, samples[i])
			}
			out = append(out, TTLEvent{Sample: uint64(samples[i]), Line: int(max(s, -s)), On: s > 0})
		}
	}
	return out, nil
}

// ReadSpikes reads every spike folder of a recording, in structure.oebin
// order.
func ReadSpikes(dir string) ([]Spike, error) {
	st, err := ReadStructure(filepath.Join(dir, StructureFile))
	if err != nil {
		return nil, err
	}
	var out []Spike
	for _, s := range st.Spikes {
		if len(s.SourceChannels) == 0 {
			return nil, fmt.Errorf("openephys: %s: spike channel %q has no source channels", dir, s.Name)
		}
		d := filepath.Join(dir, "spikes", filepath.FromSlash(strings.TrimSuffix(s.Folder, "/")))
		samples, err := readInts(filepath.Join(d, SampleNumbersFile))
		if err != nil {
			return nil, err
		}
		clusters, err := readInts(filepath.Join(d, "clusters.npy"))
		if err != nil {
			return nil, err
		}
		wpath := filepath.Join(d, "waveforms.npy")
		f, err := os.Open(wpath)
		if err != nil {
			return nil, fmt.Errorf("openephys: %w", err)
		}
		h, err := readNPYHeader(f, wpath)
		if err == nil && (h.Descr != "<i2" || h.records() != int64(len(samples)) || len(clusters) != len(samples)) {
			err = fmt.Errorf("openephys: %s: %s %v for %d spikes (%d clusters)", wpath, h.Descr, h.Shape, len(samples), len(clusters))
		}
		var raw []byte
		if err == nil {
			raw = make([]byte, h.recordSize()*h.records())
			_, err = f.ReadAt(raw, h.Data)
		}
		f.Close()
		if err != nil {
			return nil, err
		}
		per := int(h.recordSize() / 2)
		for i := range samples {
			w := make([]int16, per)
			for j := range w {
				w[j] = int16(binary.LittleEndian.Uint16(raw[2*(i*per+j):]))
			}
			out = append(out, Spike{Sample: uint64(samples[i]), Channel: s.SourceChannels[0].LocalIndex, Cluster: int(clusters[i]), Waveform: w})
		}
	}
	return out, nil
}

// readInts reads a whole 1-D integer .npy file.
func readInts(path string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	defer f.Close()
	h, err := readNPYHeader(f, path)
	if err != nil {
		return nil, err
	}
	if len(h.Shape) != 1 || h.records() > math.MaxInt32 {
		return nil, fmt.Errorf("openephys: %s: shape %v, want a 1-D array", path, h.Shape)
	}
	out := make([]int64, h.records())
	if _, err := readInt64s(f, h, 0, out, nil); err != nil {
		return nil, fmt.Errorf("openephys: %s: %w", path, err)
	}
	return out, nil
}
