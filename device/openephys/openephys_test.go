package openephys_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/openephys"
	"github.com/spikeline/spikeline/sort"
)

// value is the test signal: a different count for every sample and
// channel, covering the whole int16 range.
func value(sample uint64, ch int) int16 {
	return int16(uint16(sample*7919 + uint64(ch)*104729))
}

func block(first uint64, n, channels int) device.Block {
	b := device.Block{First: first, Rate: 30000, Channels: channels, Gain: 0.195, Samples: make([]int16, n*channels)}
	for t := range n {
		for c := range channels {
			b.Samples[t*channels+c] = value(first+uint64(t), c)
		}
	}
	return b
}

// runs of a test recording: device sample index and length; a jump is a
// gap the device lost.
var testRuns = [][2]uint64{{1000, 700}, {1700, 300}, {2500, 1000}, {3500, 64}}

func writeTest(t *testing.T, dir string, channels int, spikes []sort.Spike) *openephys.Writer {
	t.Helper()
	w, err := openephys.Create(dir, openephys.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range testRuns {
		b := block(r[0], int(r[1]), channels)
		if err := w.Write(&b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Spikes(0, spikes); err != nil {
		t.Fatal(err)
	}
	if err := w.Stimulation(1200, 30, "stimulate channel 2"); err != nil {
		t.Fatal(err)
	}
	if err := w.Stimulation(2600, 45, "stimulate channel 1"); err != nil {
		t.Fatal(err)
	}
	return w
}

func recordingDir(dir string) string {
	return filepath.Join(dir, openephys.DefaultRecordNode, "experiment1", "recording1")
}

// TestRoundTrip: what the Writer records reads back sample for sample,
// with the gaps reported as events, the spikes with their waveforms and
// the stimulation as TTL events.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	const C = 6
	spikes := []sort.Spike{{Sample: 1003, Channel: 2, Unit: 5}, {Sample: 1500, Channel: 0, Unit: 0}, {Sample: 2502, Channel: 2, Unit: 7}, {Sample: 3560, Channel: 5, Unit: 1}}
	w := writeTest(t, dir, C, spikes)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := openephys.Open(dir, openephys.Config{BlockSamples: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if got := src.ChannelNames(); len(got) != C || got[0] != "CH1" || got[C-1] != "CH6" {
		t.Errorf("channel names %v", got)
	}
	var next uint64
	var gaps []device.Event
	for {
		b, err := src.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Gain != 0.195 || b.Rate != 30000 || b.Channels != C {
			t.Fatalf("block %+v", b)
		}
		gaps = append(gaps, b.Events...)
		if next != 0 && b.First != next && len(b.Events) == 0 {
			t.Errorf("block at %d after %d without an event", b.First, next)
		}
		for i := range b.Len() {
			for c := range C {
				if b.At(i, c) != value(b.First+uint64(i), c) {
					t.Fatalf("sample %d channel %d: %d, want %d", b.First+uint64(i), c, b.At(i, c), value(b.First+uint64(i), c))
				}
			}
		}
		next = b.End()
	}
	if next != 3564 || len(gaps) != 1 || gaps[0].Kind != device.EventGap || gaps[0].Sample != 2500 || gaps[0].Count != 500 {
		t.Errorf("ended at %d with events %v, want one gap of 500 at 2500", next, gaps)
	}

	rec := recordingDir(dir)
	got, err := openephys.ReadSpikes(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(spikes) {
		t.Fatalf("%d spikes read, want %d", len(got), len(spikes))
	}
	for _, g := range got {
		var s sort.Spike
		for _, w := range spikes {
			if w.Sample == g.Sample {
				s = w
			}
		}
		if int32(g.Channel) != s.Channel || int32(g.Cluster) != s.Unit || len(g.Waveform) != 40 {
			t.Errorf("spike %+v, want %+v", g, s)
			continue
		}
		for i, v := range g.Waveform {
			at := int64(g.Sample) - 8 + int64(i)
			want := value(uint64(at), g.Channel)
			inRun := false
			for _, r := range testRuns {
				inRun = inRun || uint64(at) >= r[0] && uint64(at) < r[0]+r[1]
			}
			// The run holding the spike ends at a gap: samples across it are zero.
			if (g.Sample >= 2500) != (at >= 2500) || !inRun {
				want = 0
			}
			if v != want {
				t.Errorf("spike at %d channel %d: waveform[%d] = %d, want %d", g.Sample, g.Channel, i, v, want)
				break
			}
		}
	}
	ttl, err := openephys.ReadTTL(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := []openephys.TTLEvent{{1200, 1, true}, {1230, 1, false}, {2600, 1, true}, {2645, 1, false}}
	if len(ttl) != len(want) {
		t.Fatalf("TTL %v, want %v", ttl, want)
	}
	for i := range want {
		if ttl[i] != want[i] {
			t.Errorf("TTL %d: %+v, want %+v", i, ttl[i], want[i])
		}
	}
}

// TestRestart: a Block going back in time (a device reset) starts the
// next recording folder, as a restart of acquisition does in the GUI.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	w, err := openephys.Create(dir, openephys.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, first := range []uint64{500, 600, 0} {
		b := block(first, 100, 3)
		if err := w.Write(&b); err != nil {
			t.Fatal(err)
		}
	}
	// The spikes of the first recording come late, as a sorter's do.
	if err := w.Spikes(1, []sort.Spike{{Sample: 650, Channel: 1, Unit: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Spikes(0, []sort.Spike{{Sample: 50, Channel: 2, Unit: 4}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for i, want := range [][2]uint64{{500, 200}, {0, 100}} {
		d := filepath.Join(dir, openephys.DefaultRecordNode, "experiment1", "recording"+string(rune('1'+i)))
		src, err := openephys.Open(d, openephys.Config{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := src.Next(context.Background())
		src.Close()
		if err != nil || b.First != want[0] || uint64(b.Len()) != want[1] {
			t.Errorf("%s: block at %d of %d (%v), want %v", d, b.First, b.Len(), err, want)
		}
		sp, err := openephys.ReadSpikes(d)
		if err != nil || len(sp) != 1 || sp[0].Sample != []uint64{650, 50}[i] || sp[0].Waveform[8] != value(sp[0].Sample, sp[0].Channel) {
			t.Errorf("%s: spikes %+v (%v)", d, sp, err)
		}
	}
}

// neoPython returns a python3 with neo, or skips.
func neoPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import neo.rawio, numpy").Run() == nil {
			return py
		}
	}
	t.Skip("no python3 with neo: apt-get install python3-neo to cross-check with neo's OpenEphysBinaryRawIO")
	return ""
}

type neoReport struct {
	Neo      string
	Segments []struct {
		Names  []string
		Gains  []float64
		Units  []string
		Rate   float64
		TStart float64 `json:"t_start"`
		Size   int
		Events []struct {
			Name      string
			Times     []float64
			Durations []float64
			Labels    []string
		}
	}
}

func runNeo(t *testing.T, dir string) (neoReport, string) {
	t.Helper()
	py := neoPython(t)
	out := filepath.Join(t.TempDir(), "neo")
	cmd := exec.Command(py, "testdata/neo_read.py", dir, out)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("neo: %v", err)
	}
	var r neoReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("neo output %q: %v", b, err)
	}
	return r, out
}

// TestNeoReadsWriter: neo's OpenEphysBinaryRawIO (python3-neo) reads
// what the Writer records: the same samples, channel names, gain, rate
// and start, and the stimulation as an epoch channel.
func TestNeoReadsWriter(t *testing.T) {
	dir := t.TempDir()
	const C = 5
	w := writeTest(t, dir, C, []sort.Spike{{Sample: 1010, Channel: 1, Unit: 2}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, out := runNeo(t, dir)
	if len(r.Segments) != 1 {
		t.Fatalf("neo %s sees %d segments", r.Neo, len(r.Segments))
	}
	s := r.Segments[0]
	total := 0
	for _, run := range testRuns {
		total += int(run[1])
	}
	if s.Size != total || s.Rate != 30000 || math.Abs(s.TStart-1000.0/30000) > 1e-12 || len(s.Names) != C || s.Names[2] != "CH3" || s.Gains[0] != 0.195 || s.Units[0] != "uV" {
		t.Errorf("neo %s: %+v", r.Neo, s)
	}
	raw, err := os.ReadFile(out + ".0")
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, run := range testRuns {
		for k := range run[1] {
			for c := range C {
				if got := int16(binary.LittleEndian.Uint16(raw[2*i:])); got != value(run[0]+k, c) {
					t.Fatalf("neo sample %d channel %d = %d, want %d", run[0]+k, c, got, value(run[0]+k, c))
				}
				i++
			}
		}
	}
	var stim, msg bool
	for _, e := range s.Events {
		switch {
		case strings.Contains(e.Name, "Stimulation"):
			stim = len(e.Times) == 2 && math.Abs(e.Times[0]-1200.0/30000) < 1e-12 && len(e.Durations) == 2 && math.Abs(e.Durations[1]-45.0/30000) < 1e-12
		case strings.Contains(e.Name, "Messages"):
			msg = len(e.Labels) == 3 && strings.HasPrefix(e.Labels[0], "spikeline: recording 1 started") && e.Labels[1] == "stimulate channel 2"
		}
	}
	if !stim || !msg {
		t.Errorf("neo events %+v: want the two trains as epochs and three messages", s.Events)
	}
}

// TestNeoSameSamples: neo and Open read the same samples from a
// recording with AUX and ADC channels in its stream, as the GUI writes
// for an acquisition board (Open keeps the electrode channels).
func TestNeoSameSamples(t *testing.T) {
	dir := t.TempDir()
	rec := makeBoardRecording(t, dir, 300)
	r, out := runNeo(t, rec)
	raw, err := os.ReadFile(out + ".0")
	if err != nil {
		t.Fatal(err)
	}
	s := r.Segments[0]
	const C = 6 // 4 electrode, 1 AUX, 1 ADC
	if len(s.Names) != C || s.Size != 300 {
		t.Fatalf("neo: %+v", s)
	}
	src, err := openephys.Open(rec, openephys.Config{BlockSamples: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if names := src.ChannelNames(); strings.Join(names, ",") != "CH1,CH2,CH3,CH4" {
		t.Errorf("electrode channels %v", names)
	}
	n := 0
	for {
		b, err := src.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range b.Len() {
			for c := range 4 {
				if want := int16(binary.LittleEndian.Uint16(raw[2*(C*(n+i)+c):])); b.At(i, c) != want {
					t.Fatalf("sample %d channel %d: spikeline %d, neo %d", n+i, c, b.At(i, c), want)
				}
			}
		}
		n += b.Len()
	}
	if n != 300 || s.Gains[4] != 3.74e-05 || s.Units[4] != "V" {
		t.Errorf("%d samples; neo gains %v units %v", n, s.Gains, s.Units)
	}
}

// makeBoardRecording writes, without the Writer, the folder the GUI
// writes for an Open Ephys acquisition board: one stream with electrode,
// AUX and ADC channels of different gains, headers padded to 128 bytes.
// It returns the recording folder.
func makeBoardRecording(t *testing.T, dir string, n int) string {
	t.Helper()
	rec := filepath.Join(dir, "Record Node 101", "experiment1", "recording1")
	stream := "Acquisition_Board-100.Rhythm Data"
	cont := filepath.Join(rec, "continuous", stream)
	if err := os.MkdirAll(cont, 0o755); err != nil {
		t.Fatal(err)
	}
	type ch struct {
		name  string
		bv    float64
		units string
		typ   int
	}
	chans := []ch{{"CH1", 0.195, "uV", 0}, {"CH2", 0.195, "uV", 0}, {"CH3", 0.195, "uV", 0}, {"CH4", 0.195, "uV", 0}, {"AUX1", 3.74e-05, "V", 1}, {"ADC1", 0.00019500000000000000, "V", 2}}
	var js []string
	for _, c := range chans {
		js = append(js, `{"channel_name": "`+c.name+`", "description": "", "identifier": "", "history": "", "bit_volts": `+
			jsonNum(c.bv)+`, "units": "`+c.units+`", "type": `+string(rune('0'+c.typ))+`}`)
	}
	oebin := `{"GUI version": "0.6.7", "continuous": [{"folder_name": "` + stream + `/", "sample_rate": 30000.0, "source_processor_name": "Acquisition Board", "source_processor_id": 100, "stream_name": "Rhythm Data", "recorded_processor": "Record Node", "recorded_processor_id": 101, "num_channels": 6, "channels": [` +
		strings.Join(js, ", ") + `]}], "events": [{"folder_name": "` + stream + `/TTL/", "channel_name": "Rhythm Data TTL Input", "description": "", "identifier": "", "sample_rate": 30000.0, "type": "int16", "source_processor": "Acquisition Board", "stream_name": "Rhythm Data", "initial_state": 0}], "spikes": []}`
	ttl := filepath.Join(rec, "events", stream, "TTL")
	if err := os.MkdirAll(ttl, 0o755); err != nil {
		t.Fatal(err)
	}
	writeNPY(t, filepath.Join(ttl, "states.npy"), "<i2", []int64{3, -3})
	writeNPY(t, filepath.Join(ttl, "sample_numbers.npy"), "<i8", []int64{4010, 4020})
	writeNPY(t, filepath.Join(ttl, "timestamps.npy"), "<f8", []int64{int64(math.Float64bits(4010.0 / 30000)), int64(math.Float64bits(4020.0 / 30000))})
	if err := os.WriteFile(filepath.Join(rec, "structure.oebin"), []byte(oebin), 0o644); err != nil {
		t.Fatal(err)
	}
	dat := make([]byte, 2*len(chans)*n)
	for i := range n * len(chans) {
		binary.LittleEndian.PutUint16(dat[2*i:], uint16(value(uint64(i/len(chans)), i%len(chans))))
	}
	if err := os.WriteFile(filepath.Join(cont, "continuous.dat"), dat, 0o644); err != nil {
		t.Fatal(err)
	}
	sn := make([]int64, n)
	for i := range sn {
		sn[i] = int64(4000 + i)
	}
	writeNPY(t, filepath.Join(cont, "sample_numbers.npy"), "<i8", sn)
	return rec
}

func jsonNum(v float64) string { b, _ := json.Marshal(v); return string(b) }

// writeNPY writes a 1-D array of <i8, <f8 (the bits given) or <i2 with a header padded to 128 bytes,
// as the GUI's NpyFile does.
func writeNPY(t *testing.T, path, descr string, v []int64) {
	t.Helper()
	dict := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + itoa(len(v)) + ",), }"
	h := append([]byte("\x93NUMPY\x01\x00\x76\x00"), dict...)
	for len(h) < 127 {
		h = append(h, ' ')
	}
	h = append(h, '\n')
	for _, x := range v {
		if descr == "<i2" {
			h = binary.LittleEndian.AppendUint16(h, uint16(x))
		} else {
			h = binary.LittleEndian.AppendUint64(h, uint64(x))
		}
	}
	if err := os.WriteFile(path, h, 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestBadInput: a recording that does not hold together is refused when
// it is opened, with an error naming the file (and byte offset) at fault.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(rec, cont string)
		want  []string
		is    error
	}{
		{"missing continuous.dat", func(rec, cont string) { os.Remove(filepath.Join(cont, "continuous.dat")) },
			[]string{"continuous.dat", "no such file", "named by", "structure.oebin"}, nil},
		{"oebin names a missing folder", func(rec, cont string) {
			b, _ := os.ReadFile(filepath.Join(rec, "structure.oebin"))
			os.WriteFile(filepath.Join(rec, "structure.oebin"), []byte(strings.Replace(string(b), "Rhythm Data/", "Other/", 1)), 0o644)
		}, []string{"Acquisition_Board-100.Other", "continuous.dat", "named by"}, nil},
		{"num_channels disagrees with the list", func(rec, cont string) {
			b, _ := os.ReadFile(filepath.Join(rec, "structure.oebin"))
			os.WriteFile(filepath.Join(rec, "structure.oebin"), []byte(strings.Replace(string(b), `"num_channels": 6`, `"num_channels": 5`, 1)), 0o644)
		}, []string{"structure.oebin", "num_channels is 5 but 6 channels are listed"}, nil},
		{"continuous.dat not whole samples", func(rec, cont string) {
			f, _ := os.OpenFile(filepath.Join(cont, "continuous.dat"), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{1, 2, 3})
			f.Close()
		}, []string{"continuous.dat", "byte 3600", "num_channels=6", "3 trailing bytes"}, device.ErrPartialSample},
		{"fewer sample numbers than samples", func(rec, cont string) {
			sn := make([]int64, 299)
			writeNPY(t, filepath.Join(cont, "sample_numbers.npy"), "<i8", sn)
		}, []string{"sample_numbers.npy", "byte 2520", "holds 299 sample numbers", "holds 300 samples"}, openephys.ErrSampleCount},
		{"sample_numbers.npy not NumPy", func(rec, cont string) {
			os.WriteFile(filepath.Join(cont, "sample_numbers.npy"), []byte("hello, world"), 0o644)
		}, []string{"sample_numbers.npy", "byte 0", "no NumPy magic"}, nil},
		{"bad rate", func(rec, cont string) {
			b, _ := os.ReadFile(filepath.Join(rec, "structure.oebin"))
			os.WriteFile(filepath.Join(rec, "structure.oebin"), []byte(strings.Replace(string(b), `30000.0`, `1e12`, 1)), 0o644)
		}, []string{"structure.oebin", "sample_rate = 1e+12"}, device.ErrRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := makeBoardRecording(t, t.TempDir(), 300)
			c.spoil(rec, filepath.Join(rec, "continuous", "Acquisition_Board-100.Rhythm Data"))
			src, err := openephys.Open(rec, openephys.Config{})
			if err == nil {
				src.Close()
				t.Fatal("opened")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
		})
	}
	// Channels of different gains together are refused.
	rec := makeBoardRecording(t, t.TempDir(), 10)
	if _, err := openephys.Open(rec, openephys.Config{Channels: []int{0, 4}}); err == nil || !strings.Contains(err.Error(), "CH1") || !strings.Contains(err.Error(), "AUX1") {
		t.Errorf("CH1 with AUX1: %v", err)
	}
}
