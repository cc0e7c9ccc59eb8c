package phy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

func writeNPYFile[T Elem](t *testing.T, dir, name string, shape []int, data []T) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteNPY(f, shape, data); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestReadSortingRoundTrip(t *testing.T) {
	dir := t.TempDir()
	spikes, templates := testSorting()
	if _, err := Write(dir, Recording{Channels: 4, Rate: 30000}, spikes, templates, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSorting(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []sort.Spike
	for _, s := range spikes {
		if s.Unit != 0 {
			want = append(want, s)
		}
	}
	slices.SortStableFunc(want, func(a, b sort.Spike) int { return int(a.Sample) - int(b.Sample) })
	if got.Shift != 0 || got.Dropped != 0 || len(got.Spikes) != len(want) {
		t.Fatalf("shift %d dropped %d, %d spikes, want %d", got.Shift, got.Dropped, len(got.Spikes), len(want))
	}
	for i, s := range got.Spikes {
		w := want[i]
		// Unit 12 has no template (a flat one is written): no channel.
		if w.Unit == 12 {
			w.Channel = -1
		}
		if s.Sample != w.Sample || s.Unit != w.Unit || s.Amplitude != -w.Amplitude || s.Channel != w.Channel {
			t.Fatalf("spike %d: got %+v, want %+v", i, s, w)
		}
	}
}

func TestReadSortingKilosort(t *testing.T) {
	// A Kilosort-style folder: uint64 (n,1) times, cluster 0, sparse
	// templates on 2 local channels, a channel map that skips raw
	// channel 1, and a noise cluster.
	dir := t.TempDir()
	writeNPYFile(t, dir, "spike_times.npy", []int{4, 1}, []uint64{10, 20, 30, 40})
	writeNPYFile(t, dir, "spike_clusters.npy", []int{4}, []int32{0, 3, 0, 5})
	writeNPYFile(t, dir, "spike_templates.npy", []int{4}, []uint32{0, 1, 0, 1})
	writeNPYFile(t, dir, "amplitudes.npy", []int{4}, []float64{11, 12, 13, 14})
	// templates (2, 3 samples, 2 local channels): template 0 peaks on
	// local channel 1, template 1 on local channel 0.
	writeNPYFile(t, dir, "templates.npy", []int{2, 3, 2}, []float32{
		0, 0, 1, -5, 0, 4, // template 0: samples × channels
		-9, 0, 8, 1, 0, 0, // template 1
	})
	writeNPYFile(t, dir, "template_ind.npy", []int{2, 2}, []int64{0, 2, 1, 2}) // indices into channel_map
	writeNPYFile(t, dir, "channel_map.npy", []int{3}, []int32{0, 2, 3})        // raw channels
	os.WriteFile(filepath.Join(dir, "cluster_group.tsv"), []byte("cluster_id\tgroup\n0\tgood\n3\tmua\n5\tnoise\n"), 0o644)

	got, err := ReadSorting(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Shift != 1 || got.Dropped != 1 || len(got.Spikes) != 3 {
		t.Fatalf("%+v", got)
	}
	// Template 0: local channel 1 → template_ind 2 → channel_map[2] = 3.
	// Template 1: local channel 0 → template_ind 1 → channel_map[1] = 2.
	want := []sort.Spike{
		{Sample: 10, Unit: 1, Channel: 3, Amplitude: 11},
		{Sample: 20, Unit: 4, Channel: 2, Amplitude: 12},
		{Sample: 30, Unit: 1, Channel: 3, Amplitude: 13},
	}
	if !slices.Equal(got.Spikes, want) {
		t.Fatalf("spikes %+v, want %+v", got.Spikes, want)
	}
}

func TestReadSortingErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadSorting(dir); err == nil || !strings.Contains(err.Error(), "spike_times.npy") {
		t.Errorf("empty folder: %v", err)
	}
	writeNPYFile(t, dir, "spike_times.npy", []int{2}, []int64{1, 2})
	writeNPYFile(t, dir, "spike_clusters.npy", []int{3}, []int32{1, 2, 3})
	if _, err := ReadSorting(dir); err == nil || !strings.Contains(err.Error(), "3 spike clusters for 2 spike times") {
		t.Errorf("length mismatch: %v", err)
	}
	writeNPYFile(t, dir, "spike_clusters.npy", []int{2}, []float32{1, 2})
	if _, err := ReadSorting(dir); err == nil || !strings.Contains(err.Error(), "not an integer") {
		t.Errorf("float clusters: %v", err)
	}
	writeNPYFile(t, dir, "spike_clusters.npy", []int{2}, []int32{1, 2})
	os.WriteFile(filepath.Join(dir, "cluster_group.tsv"), []byte("cluster_id\tgroup\nx\tnoise\n"), 0o644)
	if _, err := ReadSorting(dir); err == nil || !strings.Contains(err.Error(), "cluster_group.tsv:2") {
		t.Errorf("bad tsv: %v", err)
	}
}
