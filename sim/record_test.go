package sim

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

func TestWriteRecording(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Channels: 6, Seed: 21, MinUnits: 1, MaxUnits: 3, ArtifactRate: 2}
	const samples = 2*30000 + 17
	var calls int
	var last uint64
	err := WriteRecording(context.Background(), dir, cfg, samples, func(done, total uint64) {
		calls++
		if done < last || total != samples {
			t.Errorf("progress(%d, %d) after %d", done, total, last)
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != samples {
		t.Errorf("progress called %d times, last %d", calls, last)
	}
	meta, err := device.ReadMeta(filepath.Join(dir, MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	if meta.Channels != 6 || meta.Rate != 30000 || meta.Gain != 0.195 || meta.Samples != samples || meta.Seed != 21 || meta.DataFile != DataFile {
		t.Errorf("meta = %+v", meta)
	}
	raw, err := os.ReadFile(filepath.Join(dir, DataFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2*6*samples {
		t.Fatalf("%s has %d bytes, want %d", DataFile, len(raw), 2*6*samples)
	}
	// The file holds exactly what the Source delivers.
	c := cfg
	c.Duration = samples
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	data, spikes, beh := collect(t, s)
	for i, v := range data {
		if got := int16(binary.LittleEndian.Uint16(raw[2*i:])); got != v {
			t.Fatalf("sample %d: file %d, source %d", i, got, v)
		}
	}
	f, err := os.Open(filepath.Join(dir, SpikesFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gt, err := sort.ReadSpikesCSV(f, SpikesFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(gt) != len(spikes) || len(gt) == 0 {
		t.Fatalf("%s has %d spikes, source %d", SpikesFile, len(gt), len(spikes))
	}
	for i := range gt {
		g, w := gt[i], spikes[i]
		if g.Unit != w.Unit || g.Sample != w.Sample || g.Channel != w.Channel {
			t.Fatalf("spike %d: file %+v, source %+v", i, g, w)
		}
	}
	bf, err := os.Open(filepath.Join(dir, BehaviourFile))
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	b, err := decode.ReadBehaviourCSV(bf, BehaviourFile)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Names, []string{"vx", "vy"}) || b.Len() != len(beh) {
		t.Fatalf("behaviour: names %v, %d rows, want vx,vy and %d", b.Names, b.Len(), len(beh))
	}
	units := readCSV(t, filepath.Join(dir, UnitsFile))
	if len(units)-1 != len(s.Units()) {
		t.Fatalf("%s has %d rows, want %d", UnitsFile, len(units)-1, len(s.Units()))
	}
	for i, u := range s.Units() {
		row := units[i+1]
		id, _ := strconv.Atoi(row[0])
		snr, err := strconv.ParseFloat(row[3], 64)
		if id != int(u.ID) || err != nil || snr <= 0 || row[7] != strconv.FormatBool(u.Tuned) {
			t.Errorf("units row %v for unit %+v", row, u.ID)
		}
	}
	tm := readCSV(t, filepath.Join(dir, TemplatesFile))
	if len(tm)-1 != len(s.Units()) || len(tm[1]) != 3+len(s.Units()[0].Template) {
		t.Errorf("%s: %d rows of %d fields", TemplatesFile, len(tm), len(tm[1]))
	}
	art := readCSV(t, filepath.Join(dir, ArtifactsFile))
	if len(art) < 2 {
		t.Errorf("%s: no artifacts at 2 per second", ArtifactsFile)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

func TestWriteRecordingErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteRecording(context.Background(), dir, Config{Channels: 1}, 0, nil); err == nil {
		t.Error("0 samples accepted")
	}
	if err := WriteRecording(context.Background(), dir, Config{}, 10, nil); err == nil {
		t.Error("0 channels accepted")
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if err := WriteRecording(context.Background(), filepath.Join(file, "x"), Config{Channels: 1}, 10, nil); err == nil {
		t.Error("directory under a file accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteRecording(ctx, dir, Config{Channels: 1}, 10, nil); err == nil {
		t.Error("cancelled context ignored")
	}
}

// TestWriteRecordingRuns writes a recording of many runs of chunks whose
// sizes are no multiple of the direct-I/O block (so that every run
// carries a tail to the next), by direct I/O and through the page cache:
// both files hold exactly what the Source delivers.
func TestWriteRecordingRuns(t *testing.T) {
	cfg := Config{Channels: 37, Seed: 5, ArtifactRate: 3}
	const samples = 200000 + 3 // 14.8 MB: 15 runs through the page cache, 4 by direct I/O
	c := cfg
	c.Duration = samples
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := collect(t, s)
	for _, direct := range []bool{false, true} {
		dir := t.TempDir()
		if err := WriteRecordingWith(context.Background(), dir, cfg, samples, RecordOptions{Direct: direct}, nil); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, DataFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != 2*len(want) {
			t.Fatalf("direct %t: %s has %d bytes, want %d", direct, DataFile, len(raw), 2*len(want))
		}
		for i, v := range want {
			if got := int16(binary.LittleEndian.Uint16(raw[2*i:])); got != v {
				t.Fatalf("direct %t: sample %d (channel %d): file %d, source %d", direct, i/37, i%37, got, v)
			}
		}
	}
}

// TestWriteRecordingCancel stops a recording from its progress callback:
// the simulation and the writer both stop and the error says why.
func TestWriteRecordingCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := WriteRecording(ctx, t.TempDir(), Config{Channels: 64, Seed: 1}, 30*30000, func(done, total uint64) {
		if done > 30000 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestWriteRecordingWriterFails stops the simulation when the data cannot
// be written, with the writer's error, by direct I/O or not.
func TestWriteRecordingWriterFails(t *testing.T) {
	for _, direct := range []bool{false, true} {
		s, err := New(Config{Channels: 64, Seed: 3, Duration: 300000})
		if err != nil {
			t.Fatal(err)
		}
		s.cfg.BlockSamples = s.n
		dir := t.TempDir()
		dat, err := os.Create(filepath.Join(dir, DataFile))
		if err != nil {
			t.Fatal(err)
		}
		w := &recordWriter{dat: dat, align: 1}
		if direct {
			w.align = directAlign
		}
		w.spk, w.beh = bufio.NewWriter(io.Discard), bufio.NewWriter(io.Discard)
		dat.Close() // every write fails
		err = record(context.Background(), s, 300000, RecordOptions{}, w)
		if err == nil || errors.Is(err, errRecordWriter) || !errors.Is(err, os.ErrClosed) {
			t.Errorf("direct %t: err = %v, want the writer's (file already closed)", direct, err)
		}
		if s.Emitted() == 300000 {
			t.Errorf("direct %t: the simulation ran to the end after the writer failed", direct)
		}
	}
}

// TestWriteDatDirectFallback writes by direct I/O from memory that is not
// aligned for it: a file system that refuses (EINVAL) gets the bytes
// without direct I/O, one that accepts gets them directly; either way
// the file holds them.
func TestWriteDatDirectFallback(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), DataFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !setDirect(f, true) {
		t.Skip("no direct I/O here")
	}
	w := &recordWriter{dat: f, align: directAlign, direct: true}
	buf := make([]byte, 3*directAlign)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	p := buf[1 : 1+directAlign] // misaligned in memory
	if err := w.writeDat(p); err != nil {
		t.Fatal(err)
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, p) {
		t.Errorf("file has %d bytes, not the %d written", len(got), len(p))
	}
}
