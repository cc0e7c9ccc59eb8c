package openephys

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

// GUIVersion is the "GUI version" a Writer puts in structure.oebin: the
// layout it writes is that of the GUI's BinaryRecording at this version
// (the same since 0.6).
const GUIVersion = "1.0.1"

// Spike waveform defaults: the GUI Spike Detector's 8 samples before the
// peak and 32 after.
const (
	DefaultSpikePre  = 8
	DefaultSpikePost = 32
)

// DefaultRecordNode is the folder a Writer records into below its
// directory, as the GUI's first Record Node does.
const DefaultRecordNode = "Record Node 101"

// WriterConfig describes what a Writer records. The zero value is
// usable: channels named CH1..CHn, processor "spikeline" (id 100),
// stream "spikeline", Record Node 101, experiment 1.
type WriterConfig struct {
	ChannelNames []string // one per channel; default "CH1".."CHn"
	Processor    string   // source processor name (default "spikeline")
	ProcessorID  int      // its node id (default 100)
	StreamName   string   // stream name (default "spikeline")
	RecordNode   string   // folder below the directory (default DefaultRecordNode)
	Experiment   int      // experiment number (default 1)
	// SpikePre and SpikePost are the samples of each spike waveform before
	// and from its sample (defaults DefaultSpikePre, DefaultSpikePost).
	SpikePre, SpikePost int
	// TTLLine is the TTL line (1..64) Stimulation marks (default 1).
	TTLLine int
}

func (c *WriterConfig) defaults() error {
	if c.Processor == "" {
		c.Processor = "spikeline"
	}
	if c.ProcessorID == 0 {
		c.ProcessorID = 100
	}
	if c.StreamName == "" {
		c.StreamName = "spikeline"
	}
	if c.RecordNode == "" {
		c.RecordNode = DefaultRecordNode
	}
	if c.Experiment == 0 {
		c.Experiment = 1
	}
	if c.SpikePre == 0 && c.SpikePost == 0 {
		c.SpikePre, c.SpikePost = DefaultSpikePre, DefaultSpikePost
	}
	if c.TTLLine == 0 {
		c.TTLLine = 1
	}
	switch {
	case c.Experiment < 0 || c.ProcessorID < 0:
		return fmt.Errorf("openephys: experiment %d, processor id %d: want > 0", c.Experiment, c.ProcessorID)
	case c.SpikePre < 0 || c.SpikePost < 1 || c.SpikePre+c.SpikePost > 1024:
		return fmt.Errorf("openephys: spike waveform of %d+%d samples, want 0..1024 in all with at least 1 from the peak", c.SpikePre, c.SpikePost)
	case c.TTLLine < 1 || c.TTLLine > 64:
		return fmt.Errorf("openephys: TTL line %d, want 1..64", c.TTLLine)
	case strings.ContainsAny(c.RecordNode, `/\`) || c.RecordNode == "." || c.RecordNode == "..":
		return fmt.Errorf("openephys: record node %q: want a folder name", c.RecordNode)
	}
	return nil
}

// folder returns the GUI's name for the stream's folders
// (BinaryRecording::getProcessorString): the processor name with spaces
// and @ replaced, "-", its id, ".", the stream name.
func (c *WriterConfig) folder() string {
	return strings.NewReplacer(" ", "_", "@", "_").Replace(c.Processor) + "-" + strconv.Itoa(c.ProcessorID) + "." + c.StreamName
}

// Writer records Blocks, sorted spikes and TTL events as an Open Ephys
// binary recording that the GUI's File Reader, open-ephys-python-tools,
// neo and SpikeInterface read: DIR/Record Node 101/experiment1/recording1
// with structure.oebin, continuous/, events/, spikes/ and
// sync_messages.txt (docs/openephys.md).
//
// As in the GUI, continuous.dat holds the samples received, in order,
// without filling gaps: sample_numbers.npy says where each sample
// belongs. A Block that goes back in time (a device reset) or changes
// format starts the next recording folder (recording2, ...), which is
// what the GUI does when acquisition restarts.
//
// Crash safety: samples are appended; Sync flushes them and rewrites the
// counts in the .npy headers, so after a crash the files hold everything
// up to the last Sync as valid arrays, listed in structure.oebin. Spikes
// are staged in one file per recording (.spikes.staging, 16 bytes each:
// sample, channel, unit) and split into the per-electrode spike folders
// by Close, since they may arrive after their recording has ended (a
// sorter lags its input).
//
// Write and EndRecording are called from one goroutine; Spikes, TTL,
// Stimulation and Message may be called from others.
type Writer struct {
	mu     sync.Mutex
	dir    string // the Record Node folder
	cfg    WriterConfig
	rec    *recording   // the recording being written, nil between recordings
	recs   []*recording // every recording started, in order
	closed bool
}

// Create makes dir (if needed) and a Writer recording into it. It
// refuses a directory that holds this experiment already.
func Create(dir string, cfg WriterConfig) (*Writer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	node := filepath.Join(dir, cfg.RecordNode)
	exp := filepath.Join(node, "experiment"+strconv.Itoa(cfg.Experiment))
	if _, err := os.Stat(exp); err == nil {
		return nil, fmt.Errorf("openephys: %s: a recording exists already", exp)
	}
	if err := os.MkdirAll(exp, 0o755); err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	return &Writer{dir: node, cfg: cfg}, nil
}

// Dir returns the folder of the recording being written, or of the last
// one ("" before the first Block).
func (w *Writer) Dir() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.recs) == 0 {
		return ""
	}
	return w.recs[len(w.recs)-1].dir
}

// Recordings returns the number of recordings started.
func (w *Writer) Recordings() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.recs)
}

// SetChannelNames names the channels of the recordings started from now
// on (nil: CH1..CHn).
func (w *Writer) SetChannelNames(names []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cfg.ChannelNames = append([]string(nil), names...)
	if names == nil {
		w.cfg.ChannelNames = nil
	}
}

// SetStream sets the source processor, its id and the stream name of the
// recordings started from now on (empty and 0 keep the current ones).
func (w *Writer) SetStream(processor string, id int, stream string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if processor != "" {
		w.cfg.Processor = processor
	}
	if id > 0 {
		w.cfg.ProcessorID = id
	}
	if stream != "" {
		w.cfg.StreamName = stream
	}
}

// Write appends b to the current recording, starting the next one on a
// change of format or a Block that starts before the end of the last
// (and after EndRecording).
func (w *Writer) Write(b *device.Block) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("openephys: write to a closed recording")
	}
	if b.Len() == 0 {
		return nil
	}
	if r := w.rec; r != nil && (b.Channels != r.channels || b.Rate != r.rate || b.Gain != r.gain || (r.samples > 0 && b.First < r.next)) {
		if err := w.end(); err != nil {
			return err
		}
	}
	if w.rec == nil {
		r, err := w.start(b)
		if err != nil {
			return err
		}
		w.rec = r
		w.recs = append(w.recs, r)
	}
	return w.rec.write(b)
}

// EndRecording ends the current recording: its continuous data and
// events are flushed and closed; the next Block starts the next
// recording folder. Its spikes are still taken (Spikes) until Close.
func (w *Writer) EndRecording() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.end()
}

func (w *Writer) end() error {
	if w.rec == nil {
		return nil
	}
	err := w.rec.end()
	w.rec = nil
	return err
}

// Spikes records sorted spikes (unit 0: detected, not sorted) of
// recording n (1-based; 0: the current or last one). Each waveform is
// cut from the recorded samples by Close.
func (w *Writer) Spikes(n int, spikes []sort.Spike) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(spikes) == 0 {
		return nil
	}
	if w.closed {
		return errors.New("openephys: spikes for a closed recording")
	}
	if n == 0 {
		n = len(w.recs)
	}
	if n < 1 || n > len(w.recs) {
		return fmt.Errorf("openephys: spikes of recording %d: %d recordings started", n, len(w.recs))
	}
	if w.recs[n-1].finished {
		return fmt.Errorf("openephys: spikes of recording %d after its spikes were finished", n)
	}
	return w.recs[n-1].spikes(spikes)
}

// TTL records TTL line (1..64) going on or off at sample.
func (w *Writer) TTL(sample uint64, line int, on bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rec == nil {
		return errors.New("openephys: TTL event before the first block")
	}
	if line < 1 || line > 64 {
		return fmt.Errorf("openephys: TTL line %d, want 1..64", line)
	}
	return w.rec.ttl(sample, line, on)
}

// Stimulation marks a stimulation train delivered from sample for
// samples samples: the configured TTL line goes on and off, and a text
// message (MessageCenter) says what it was.
func (w *Writer) Stimulation(sample, samples uint64, text string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rec == nil {
		return errors.New("openephys: stimulation before the first block")
	}
	if err := w.rec.ttl(sample, w.cfg.TTLLine, true); err != nil {
		return err
	}
	if err := w.rec.ttl(sample+max(samples, 1), w.cfg.TTLLine, false); err != nil {
		return err
	}
	if text != "" {
		return w.rec.message(sample, text)
	}
	return nil
}

// Message records a text message at sample (events/MessageCenter).
func (w *Writer) Message(sample uint64, text string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rec == nil {
		return errors.New("openephys: message before the first block")
	}
	return w.rec.message(sample, text)
}

// FinishSpikes writes the spike folders of recording n (1-based) and its
// final structure.oebin, once its spikes are all in; Close does it for
// the recordings left. It ends the recording if it is the current one.
// The work (reading every waveform back) is done without blocking Write.
func (w *Writer) FinishSpikes(n int) error {
	w.mu.Lock()
	if n < 1 || n > len(w.recs) {
		w.mu.Unlock()
		return nil // nothing was recorded in it
	}
	r := w.recs[n-1]
	if r == w.rec {
		if err := w.end(); err != nil {
			w.mu.Unlock()
			return err
		}
	}
	if r.finished {
		w.mu.Unlock()
		return nil
	}
	r.finished = true // Spikes refuses more from now on
	w.mu.Unlock()
	return r.finish()
}

// Sync makes everything written so far durable and readable: the
// samples, events and staged spikes are flushed and the .npy headers
// count them.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.recs {
		if r.finished {
			continue
		}
		if err := r.spkW.Flush(); err != nil {
			return fmt.Errorf("openephys: %s: %w", r.spkPath, err)
		}
	}
	if w.rec == nil {
		return nil
	}
	return w.rec.sync(true)
}

// Close ends the current recording and finishes every recording: the
// spikes are split into their electrode folders with their waveforms and
// structure.oebin lists everything written. A Writer that received no
// Block removes the empty folders it made.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.end()
	for _, r := range w.recs {
		if r.finished {
			continue
		}
		r.finished = true
		if ferr := r.finish(); err == nil {
			err = ferr
		}
	}
	if len(w.recs) == 0 {
		os.Remove(filepath.Join(w.dir, "experiment"+strconv.Itoa(w.cfg.Experiment)))
		os.Remove(w.dir)
	}
	return err
}

// run is a stretch of contiguous sample numbers in continuous.dat.
type run struct {
	first uint64 // sample number of its first sample
	index int64  // its index in continuous.dat
	n     int64
}

// recording is one recordingN folder being written.
type recording struct {
	cfg      *WriterConfig
	dir      string // .../experimentE/recordingN
	folder   string // the stream's folder name
	channels int
	rate     float64
	gain     float64
	names    []string

	dat     *os.File
	datW    *bufio.Writer
	datPath string
	sn, ts  *npyWriter
	next    uint64 // sample number after the last written
	samples int64  // samples per channel written
	runs    []run

	ttlSN, ttlTS, ttlStates, ttlWords *npyWriter
	word                              uint64
	msgSN, msgTS, msgText             *npyWriter

	ended    bool
	finished bool
	spk      *os.File // staged spikes: sample (8), channel (4), unit (4)
	spkW     *bufio.Writer
	spkPath  string
	nspk     int64

	buf []byte
}

// msgLen is the bytes of one text message (the GUI's text events are
// fixed-size byte strings).
const msgLen = 256

func (w *Writer) start(b *device.Block) (*recording, error) {
	if err := device.CheckChannels("", "channels", b.Channels); err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	names := w.cfg.ChannelNames
	if names == nil {
		for i := range b.Channels {
			names = append(names, "CH"+strconv.Itoa(i+1))
		}
	}
	if len(names) != b.Channels {
		return nil, fmt.Errorf("openephys: %d channel names for %d channels", len(names), b.Channels)
	}
	r := &recording{cfg: &w.cfg, channels: b.Channels, rate: b.Rate, gain: b.Gain, names: names, folder: w.cfg.folder(), next: b.First}
	r.dir = filepath.Join(w.dir, "experiment"+strconv.Itoa(w.cfg.Experiment), "recording"+strconv.Itoa(len(w.recs)+1))
	cont := filepath.Join(r.dir, "continuous", r.folder)
	if err := os.MkdirAll(cont, 0o755); err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	var err error
	r.datPath = filepath.Join(cont, DataFile)
	if r.dat, err = os.OpenFile(r.datPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	r.datW = bufio.NewWriterSize(r.dat, 1<<20)
	if r.sn, err = createNPY(filepath.Join(cont, SampleNumbersFile), "<i8"); err == nil {
		r.ts, err = createNPY(filepath.Join(cont, TimestampsFile), "<f8")
	}
	if err == nil {
		r.spkPath = filepath.Join(r.dir, ".spikes.staging")
		if r.spk, err = os.OpenFile(r.spkPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); err == nil {
			r.spkW = bufio.NewWriterSize(r.spk, 1<<16)
		}
	}
	if err == nil {
		sync := fmt.Sprintf("Software Time (milliseconds since midnight Jan 1st 1970 UTC): %d\r\nStart Time for %s (%d) - %s @ %s Hz: %d\r\n",
			time.Now().UnixMilli(), w.cfg.Processor, w.cfg.ProcessorID, w.cfg.StreamName, strconv.FormatFloat(b.Rate, 'f', -1, 64), b.First)
		err = os.WriteFile(filepath.Join(r.dir, "sync_messages.txt"), []byte(sync), 0o644)
	}
	if err == nil {
		// A first message marks the start: readers that need an event
		// stream in every recording (neo up to 0.12) find one.
		err = r.message(b.First, fmt.Sprintf("spikeline: recording %d started: %d channels at %s Hz", len(w.recs)+1, b.Channels, strconv.FormatFloat(b.Rate, 'f', -1, 64)))
	}
	if err == nil {
		err = r.writeStructure(nil)
	}
	if err != nil {
		r.abandon()
		return nil, fmt.Errorf("openephys: %w", err)
	}
	return r, nil
}

// abandon closes a recording's files after a failure to start it.
func (r *recording) abandon() {
	for _, f := range []*os.File{r.dat, r.spk} {
		if f != nil {
			f.Close()
		}
	}
	for _, n := range r.npys() {
		n.f.Close()
	}
}

func (r *recording) write(b *device.Block) error {
	n := b.Len()
	if r.samples > 0 && b.First == r.next && len(r.runs) > 0 {
		r.runs[len(r.runs)-1].n += int64(n)
	} else {
		if len(r.runs) >= device.MaxGaps {
			return fmt.Errorf("openephys: %s: more than %d gaps in one recording", r.dir, device.MaxGaps)
		}
		r.runs = append(r.runs, run{first: b.First, index: r.samples, n: int64(n)})
	}
	size := 2 * len(b.Samples)
	if cap(r.buf) < max(size, 16*n) {
		r.buf = make([]byte, max(size, 16*n))
	}
	p := r.buf[:size]
	for i, v := range b.Samples {
		binary.LittleEndian.PutUint16(p[2*i:], uint16(v))
	}
	if _, err := r.datW.Write(p); err != nil {
		return fmt.Errorf("openephys: %s: %w", r.datPath, err)
	}
	p = r.buf[:8*n]
	for i := range n {
		binary.LittleEndian.PutUint64(p[8*i:], b.First+uint64(i))
	}
	if err := r.sn.append(p, int64(n)); err != nil {
		return err
	}
	for i := range n {
		binary.LittleEndian.PutUint64(p[8*i:], math.Float64bits(float64(b.First+uint64(i))/r.rate))
	}
	if err := r.ts.append(p, int64(n)); err != nil {
		return err
	}
	r.samples += int64(n)
	r.next = b.End()
	return nil
}

func (r *recording) spikes(spikes []sort.Spike) error {
	var rec [16]byte
	for _, s := range spikes {
		if s.Channel < 0 || int(s.Channel) >= r.channels {
			return fmt.Errorf("openephys: spike on channel %d of a %d-channel recording", s.Channel, r.channels)
		}
		if s.Unit < 0 || s.Unit > math.MaxUint16 {
			return fmt.Errorf("openephys: spike of unit %d: clusters.npy holds 0..%d", s.Unit, math.MaxUint16)
		}
		binary.LittleEndian.PutUint64(rec[:], s.Sample)
		binary.LittleEndian.PutUint32(rec[8:], uint32(s.Channel))
		binary.LittleEndian.PutUint32(rec[12:], uint32(s.Unit))
		if _, err := r.spkW.Write(rec[:]); err != nil {
			return fmt.Errorf("openephys: %s: %w", r.spkPath, err)
		}
		r.nspk++
	}
	return nil
}

func (r *recording) eventDir(name string) (string, error) {
	d := filepath.Join(r.dir, "events", name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("openephys: %w", err)
	}
	return d, nil
}

func (r *recording) ttl(sample uint64, line int, on bool) error {
	if r.ttlSN == nil {
		d, err := r.eventDir(filepath.Join(r.folder, "TTL"))
		if err != nil {
			return err
		}
		if r.ttlStates, err = createNPY(filepath.Join(d, "states.npy"), "<i2"); err == nil {
			if r.ttlSN, err = createNPY(filepath.Join(d, SampleNumbersFile), "<i8"); err == nil {
				if r.ttlTS, err = createNPY(filepath.Join(d, TimestampsFile), "<f8"); err == nil {
					r.ttlWords, err = createNPY(filepath.Join(d, "full_words.npy"), "<u8")
				}
			}
		}
		if err != nil {
			return err
		}
	}
	state := int16(line)
	bit := uint64(1) << (line - 1)
	if on {
		r.word |= bit
	} else {
		state = -state
		r.word &^= bit
	}
	var p [8]byte
	binary.LittleEndian.PutUint16(p[:], uint16(state))
	if err := r.ttlStates.append(p[:2], 1); err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(p[:], sample)
	if err := r.ttlSN.append(p[:], 1); err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(p[:], math.Float64bits(float64(sample)/r.rate))
	if err := r.ttlTS.append(p[:], 1); err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(p[:], r.word)
	return r.ttlWords.append(p[:], 1)
}

func (r *recording) message(sample uint64, text string) error {
	if r.msgSN == nil {
		d, err := r.eventDir("MessageCenter")
		if err != nil {
			return err
		}
		if r.msgText, err = createNPY(filepath.Join(d, "text.npy"), "|S"+strconv.Itoa(msgLen)); err == nil {
			if r.msgSN, err = createNPY(filepath.Join(d, SampleNumbersFile), "<i8"); err == nil {
				r.msgTS, err = createNPY(filepath.Join(d, TimestampsFile), "<f8")
			}
		}
		if err != nil {
			return err
		}
	}
	var t [msgLen]byte
	copy(t[:msgLen-1], text) // null-terminated, as the GUI writes them
	if err := r.msgText.append(t[:], 1); err != nil {
		return err
	}
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], sample)
	if err := r.msgSN.append(p[:], 1); err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(p[:], math.Float64bits(float64(sample)/r.rate))
	return r.msgTS.append(p[:], 1)
}

func (r *recording) npys() []*npyWriter {
	var out []*npyWriter
	for _, n := range []*npyWriter{r.sn, r.ts, r.ttlStates, r.ttlSN, r.ttlTS, r.ttlWords, r.msgText, r.msgSN, r.msgTS} {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// sync flushes the samples (before the .npy files that count them) and
// the staged spikes.
func (r *recording) sync(fsync bool) error {
	if err := r.datW.Flush(); err != nil {
		return fmt.Errorf("openephys: %s: %w", r.datPath, err)
	}
	if err := r.spkW.Flush(); err != nil {
		return fmt.Errorf("openephys: %s: %w", r.spkPath, err)
	}
	if fsync {
		if err := r.dat.Sync(); err != nil {
			return fmt.Errorf("openephys: %s: %w", r.datPath, err)
		}
	}
	for _, n := range r.npys() {
		if err := n.sync(fsync); err != nil {
			return err
		}
	}
	return nil
}

// end flushes and closes the continuous data and events.
func (r *recording) end() error {
	if r.ended {
		return nil
	}
	r.ended = true
	err := r.sync(false)
	if cerr := r.dat.Sync(); err == nil && cerr != nil {
		err = fmt.Errorf("openephys: %s: %w", r.datPath, cerr)
	}
	if cerr := r.dat.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("openephys: %s: %w", r.datPath, cerr)
	}
	for _, n := range r.npys() {
		if cerr := n.close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = r.writeStructure(nil)
	}
	return err
}

// finish writes the spike folders and the final structure.oebin of a
// recording that has ended and takes no more spikes (finished).
func (r *recording) finish() error {
	err := r.spkW.Flush()
	var spikes []Spikes
	if err == nil {
		spikes, err = r.writeSpikes()
	}
	r.spk.Close()
	if err != nil {
		return err
	}
	os.Remove(r.spkPath)
	return r.writeStructure(spikes)
}

// maxOpenSpikeChannels bounds the electrode folders written at once when
// the staged spikes are split (five files each).
const maxOpenSpikeChannels = 64

// writeSpikes splits the staged spikes into one folder per channel that
// has spikes (the GUI's single electrodes), with waveforms cut from
// continuous.dat, in passes of at most maxOpenSpikeChannels channels.
func (r *recording) writeSpikes() ([]Spikes, error) {
	if r.nspk == 0 {
		return nil, nil
	}
	staged, err := os.Open(r.spkPath)
	if err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	defer staged.Close()
	counts := make([]int64, r.channels)
	if err := r.eachSpike(staged, func(sample uint64, ch, unit int) error { counts[ch]++; return nil }); err != nil {
		return nil, err
	}
	dat, err := os.Open(r.datPath)
	if err != nil {
		return nil, fmt.Errorf("openephys: %w", err)
	}
	defer dat.Close()
	var infos []Spikes
	index := make([]int, r.channels) // spike channel index of each channel, -1: none
	for ch := range r.channels {
		index[ch] = -1
		if counts[ch] > 0 {
			index[ch] = len(infos)
			name := "Electrode " + strconv.Itoa(ch+1)
			infos = append(infos, Spikes{
				Name: name, Description: "spikeline sorted spikes on " + r.names[ch], Identifier: "spikeline.spikes",
				SourceProcessorID: r.cfg.ProcessorID, StreamName: r.cfg.StreamName, SampleRate: r.rate, NumChannels: 1,
				PrePeakSamples: r.cfg.SpikePre, PostPeakSamples: r.cfg.SpikePost, Folder: r.folder + "/" + name + "/",
				SourceChannels: []SourceChannel{{Name: r.names[ch], LocalIndex: ch, BitVolts: r.gain}},
			})
		}
	}
	L := r.cfg.SpikePre + r.cfg.SpikePost
	wave := make([]byte, 2*L)
	row := make([]byte, 2*r.channels*L)
	for lo := 0; lo < r.channels; lo += maxOpenSpikeChannels {
		hi := min(lo+maxOpenSpikeChannels, r.channels)
		files := map[int]*[5]*npyWriter{}
		closeAll := func() error {
			var err error
			for _, fs := range files {
				for _, f := range fs {
					if cerr := f.close(); err == nil {
						err = cerr
					}
				}
			}
			return err
		}
		for ch := lo; ch < hi; ch++ {
			if index[ch] < 0 {
				continue
			}
			d := filepath.Join(r.dir, "spikes", r.folder, "Electrode "+strconv.Itoa(ch+1))
			if err := os.MkdirAll(d, 0o755); err != nil {
				closeAll()
				return nil, fmt.Errorf("openephys: %w", err)
			}
			var fs [5]*npyWriter
			var err error
			for i, spec := range []struct {
				name, descr string
				dims        []int64
			}{{"waveforms.npy", "<i2", []int64{1, int64(L)}}, {SampleNumbersFile, "<i8", nil}, {TimestampsFile, "<f8", nil},
				{"electrode_indices.npy", "<u2", nil}, {"clusters.npy", "<u2", nil}} {
				if fs[i], err = createNPY(filepath.Join(d, spec.name), spec.descr, spec.dims...); err != nil {
					for _, f := range fs[:i] {
						f.f.Close()
					}
					closeAll()
					return nil, err
				}
			}
			files[ch] = &fs
		}
		err := r.eachSpike(staged, func(sample uint64, ch, unit int) error {
			fs := files[ch]
			if fs == nil {
				return nil
			}
			if err := r.waveform(dat, sample, ch, wave, row); err != nil {
				return err
			}
			var p [8]byte
			if err := fs[0].append(wave, 1); err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(p[:], sample)
			if err := fs[1].append(p[:], 1); err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(p[:], math.Float64bits(float64(sample)/r.rate))
			if err := fs[2].append(p[:], 1); err != nil {
				return err
			}
			binary.LittleEndian.PutUint16(p[:], uint16(index[ch]))
			if err := fs[3].append(p[:2], 1); err != nil {
				return err
			}
			binary.LittleEndian.PutUint16(p[:], uint16(unit))
			return fs[4].append(p[:2], 1)
		})
		if cerr := closeAll(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	return infos, nil
}

// eachSpike calls fn for every staged spike, in the order staged.
func (r *recording) eachSpike(f *os.File, fn func(sample uint64, ch, unit int) error) error {
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, 16*r.nspk), 1<<16)
	var rec [16]byte
	for i := int64(0); i < r.nspk; i++ {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return fmt.Errorf("openephys: %s: spike %d: %w", r.spkPath, i, err)
		}
		if err := fn(binary.LittleEndian.Uint64(rec[:]), int(binary.LittleEndian.Uint32(rec[8:])), int(binary.LittleEndian.Uint32(rec[12:]))); err != nil {
			return err
		}
	}
	return nil
}

// waveform cuts channel ch's samples [sample-pre, sample+post) from
// continuous.dat into wave (int16 little-endian). Samples outside the
// run of contiguous sample numbers holding sample (before the start, in
// a gap, past the end) are zero.
func (r *recording) waveform(dat *os.File, sample uint64, ch int, wave, row []byte) error {
	clear(wave)
	L := r.cfg.SpikePre + r.cfg.SpikePost
	// The run holding sample.
	i := 0
	for lo, hi := 0, len(r.runs); lo < hi; {
		m := (lo + hi) / 2
		if r.runs[m].first <= sample {
			i, lo = m, m+1
		} else {
			hi = m
		}
	}
	run := r.runs[i]
	if sample < run.first || sample >= run.first+uint64(run.n) {
		return nil // not recorded: a zero waveform
	}
	start := int64(sample-run.first) - int64(r.cfg.SpikePre) // within the run
	from, to := max(start, 0), min(start+int64(L), run.n)
	C := int64(r.channels)
	n := to - from
	buf := row[:2*C*n]
	if _, err := dat.ReadAt(buf, 2*C*(run.index+from)); err != nil {
		return fmt.Errorf("openephys: %s: %w", r.datPath, err)
	}
	for t := int64(0); t < n; t++ {
		copy(wave[2*(from-start+t):], buf[2*(C*t+int64(ch)):2*(C*t+int64(ch))+2])
	}
	return nil
}

// writeStructure writes structure.oebin atomically.
func (r *recording) writeStructure(spikes []Spikes) error {
	electrode := TypeElectrode
	c := Continuous{
		FolderName: r.folder + "/", SampleRate: r.rate, SourceProcessorName: r.cfg.Processor, SourceProcessorID: r.cfg.ProcessorID,
		StreamName: r.cfg.StreamName, RecordedProcessor: "Record Node", RecordedProcessorID: 101, NumChannels: r.channels,
	}
	for _, name := range r.names {
		c.Channels = append(c.Channels, Channel{ChannelName: name, Description: "spikeline headstage channel",
			Identifier: "genericdata.continuous", History: r.cfg.Processor + " -> Record Node", BitVolts: r.gain, Units: "uV", Type: &electrode})
	}
	st := Structure{GUIVersion: GUIVersion, Continuous: []Continuous{c}, Events: []Events{}, Spikes: spikes}
	if st.Spikes == nil {
		st.Spikes = []Spikes{}
	}
	if r.ttlSN != nil {
		st.Events = append(st.Events, Events{FolderName: r.folder + "/TTL/", ChannelName: "Stimulation",
			Description: "spikeline stimulation trains: the line is on while a train is delivered", Identifier: "spikeline.stimulation",
			SampleRate: r.rate, Type: "int16", SourceProcessor: r.cfg.Processor, StreamName: r.cfg.StreamName})
	}
	if r.msgSN != nil {
		st.Events = append(st.Events, Events{FolderName: "MessageCenter/", ChannelName: "Messages", Description: "spikeline messages",
			Identifier: "messagecenter.events", SampleRate: r.rate, Type: "string", SourceProcessor: "Message Center", StreamName: r.cfg.StreamName})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("openephys: %w", err)
	}
	if err := device.WriteFileAtomic(filepath.Join(r.dir, StructureFile), append(b, '\n')); err != nil {
		return fmt.Errorf("openephys: %w", err)
	}
	return nil
}
