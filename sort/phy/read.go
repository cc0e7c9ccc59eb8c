package phy

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/sort"
)

// Sorting is a sorting read from a Phy or Kilosort folder.
type Sorting struct {
	Spikes []sort.Spike // in the folder's order (time order)

	// Shift was added to every cluster id to make unit ids positive
	// (spikeline's unit 0 means unsorted): 0 unless the folder has a
	// cluster 0 or negative ids, as Kilosort's do.
	Shift int32

	Dropped int // spikes of clusters labelled noise (cluster_group.tsv), left out
}

// ReadSorting reads the spikes of a Phy template-gui folder (Kilosort's
// output, or Write's): spike_times.npy (samples), spike_clusters.npy
// (spike_templates.npy when absent) and, when present, amplitudes.npy and
// the channel of each spike's template (its peak-to-peak largest channel
// in templates.npy, through template_ind.npy and channel_map.npy).
// Clusters labelled "noise" in cluster_group.tsv are left out. Errors name
// the file and, for malformed arrays, the byte offset.
func ReadSorting(dir string) (*Sorting, error) {
	open := func(name string) (*os.File, error) {
		return os.Open(filepath.Join(dir, name))
	}
	ints := func(name string) ([]int64, error) {
		f, err := open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		_, v, err := ReadNPYInt64(f, filepath.Join(dir, name))
		return v, err
	}
	times, err := ints("spike_times.npy")
	if err != nil {
		return nil, fmt.Errorf("phy: %w", err)
	}
	clusters, err := ints("spike_clusters.npy")
	if errors.Is(err, fs.ErrNotExist) {
		clusters, err = ints("spike_templates.npy")
	}
	if err != nil {
		return nil, fmt.Errorf("phy: %w", err)
	}
	if len(clusters) != len(times) {
		return nil, fmt.Errorf("phy: %s: %d spike clusters for %d spike times", dir, len(clusters), len(times))
	}
	tmplOf, err := ints("spike_templates.npy")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("phy: %w", err)
	}
	if tmplOf != nil && len(tmplOf) != len(times) {
		return nil, fmt.Errorf("phy: %s: %d spike templates for %d spike times", dir, len(tmplOf), len(times))
	}
	var amps []float64
	if f, err := open("amplitudes.npy"); err == nil {
		_, amps, err = ReadNPYFloat64(f, filepath.Join(dir, "amplitudes.npy"))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("phy: %w", err)
		}
		if len(amps) != len(times) {
			return nil, fmt.Errorf("phy: %s: %d amplitudes for %d spike times", dir, len(amps), len(times))
		}
	}
	peak, err := templateChannels(dir)
	if err != nil {
		return nil, err
	}
	noise, err := noiseClusters(filepath.Join(dir, "cluster_group.tsv"))
	if err != nil {
		return nil, err
	}

	out := &Sorting{}
	minID := int64(math.MaxInt64)
	for _, c := range clusters {
		minID = min(minID, c)
	}
	if len(clusters) > 0 && minID <= 0 {
		out.Shift = int32(1 - minID)
	}
	out.Spikes = make([]sort.Spike, 0, len(times))
	for i, t := range times {
		if t < 0 {
			return nil, fmt.Errorf("phy: %s: spike %d at negative sample %d", filepath.Join(dir, "spike_times.npy"), i, t)
		}
		c := clusters[i]
		if noise[c] {
			out.Dropped++
			continue
		}
		if c+int64(out.Shift) > math.MaxInt32 {
			return nil, fmt.Errorf("phy: %s: cluster id %d too large", dir, c)
		}
		s := sort.Spike{Sample: uint64(t), Unit: int32(c) + out.Shift, Channel: -1}
		if tmplOf != nil && tmplOf[i] >= 0 && tmplOf[i] < int64(len(peak)) {
			s.Channel = peak[tmplOf[i]]
		}
		if amps != nil {
			s.Amplitude = float32(amps[i])
		}
		out.Spikes = append(out.Spikes, s)
	}
	return out, nil
}

// templateChannels returns the recording channel of each template's
// largest peak-to-peak amplitude, or nil without templates.npy.
func templateChannels(dir string) ([]int32, error) {
	f, err := os.Open(filepath.Join(dir, "templates.npy"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("phy: %w", err)
	}
	h, data, err := ReadNPYFloat64(f, filepath.Join(dir, "templates.npy"))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("phy: %w", err)
	}
	if len(h.Shape) != 3 {
		return nil, fmt.Errorf("phy: %s: templates of shape %v, want (n_templates, n_samples, n_channels)", filepath.Join(dir, "templates.npy"), h.Shape)
	}
	nt, ns, nc := h.Shape[0], h.Shape[1], h.Shape[2]
	// Sparse templates name their channels; channel_map maps to the file.
	var ind []int64
	if f, err := os.Open(filepath.Join(dir, "template_ind.npy")); err == nil {
		_, ind, err = ReadNPYInt64(f, filepath.Join(dir, "template_ind.npy"))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("phy: %w", err)
		}
		if len(ind) != nt*nc {
			return nil, fmt.Errorf("phy: %s: %d entries for %d templates × %d channels", filepath.Join(dir, "template_ind.npy"), len(ind), nt, nc)
		}
	}
	var chanMap []int64
	if f, err := os.Open(filepath.Join(dir, "channel_map.npy")); err == nil {
		_, chanMap, err = ReadNPYInt64(f, filepath.Join(dir, "channel_map.npy"))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("phy: %w", err)
		}
	}
	out := make([]int32, nt)
	for t := range nt {
		best, bestAmp := -1, -1.0
		for c := range nc {
			lo, hi := math.Inf(1), math.Inf(-1)
			for s := range ns {
				v := data[(t*ns+s)*nc+c]
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			if hi-lo > bestAmp {
				best, bestAmp = c, hi-lo
			}
		}
		ch := int64(best)
		if ind != nil {
			ch = ind[t*nc+best]
		}
		if chanMap != nil && ch >= 0 && ch < int64(len(chanMap)) {
			ch = chanMap[ch]
		}
		if bestAmp <= 0 || ch < 0 || ch > math.MaxInt32 { // a flat template says nothing
			ch = -1
		}
		out[t] = int32(ch)
	}
	return out, nil
}

// noiseClusters reads the clusters labelled noise from a cluster_group.tsv
// (absent: none).
func noiseClusters(path string) (map[int64]bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("phy: %w", err)
	}
	defer f.Close()
	out := map[int64]bool{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Split(strings.TrimSpace(sc.Text()), "\t")
		if line == 1 || len(fields) < 2 || fields[0] == "" {
			continue
		}
		id, err := strconv.ParseInt(strings.TrimSpace(fields[0]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("phy: %s:%d: cluster id: %v", path, line, err)
		}
		if strings.EqualFold(strings.TrimSpace(fields[1]), "noise") {
			out[id] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("phy: %s: %w", path, err)
	}
	return out, nil
}
