package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/device/openephys"
	"github.com/spikeline/spikeline/sort"
)

// Files written by WriteRecording, relative to its directory.
const (
	DataFile      = "recording.dat"  // int16 little-endian, time-major
	MetaFile      = "recording.json" // device.Meta sidecar
	SpikesFile    = "gt_spikes.csv"  // unit_id,sample_index,channel,amplitude_uv, by sample
	UnitsFile     = "units.csv"      // one row per unit, see UnitsHeader
	BehaviourFile = "behaviour.csv"  // sample_index,vx,vy (cm/s)
	TemplatesFile = "templates.csv"  // unit_id,channel,pre,t0..t{n-1} raw µV
	ArtifactsFile = "artifacts.csv"  // sample_index,n_samples,peak_uv,channel (-1: all channels)
	ConfigFile    = "sim_config.json"
)

// UnitsHeader is the header of units.csv. peak_uv is the raw template's
// trough (negative); snr is |band_peak_uv| / noise_uv, the scorer's
// definition (template extremum after the 300–6000 Hz band-pass over the
// channel's band noise rms).
const UnitsHeader = "unit_id,channel,peak_uv,snr,baseline_hz,modulation_hz,preferred_dir_rad,tuned,band_peak_uv,noise_uv,width_ms,kind,refractory_ms,burst_prob,band_lag_samples"

// WriteRecording simulates samples samples per channel of cfg into dir
// (created if needed): the raw data with its sidecar and the ground truth
// (see the *File constants). progress, if not nil, is called after each
// chunk with the samples per channel done so far.
func WriteRecording(ctx context.Context, dir string, cfg Config, samples uint64, progress func(done, total uint64)) error {
	return WriteRecordingWith(ctx, dir, cfg, samples, RecordOptions{}, progress)
}

// Formats of RecordOptions.Format.
const (
	FormatRaw       = "raw"       // recording.dat and its recording.json sidecar
	FormatOpenEphys = "openephys" // an Open Ephys binary recording (device/openephys)
)

// RecordOptions are the choices of WriteRecordingWith beyond the
// simulation itself.
type RecordOptions struct {
	// Format of the data: FormatRaw (default) or FormatOpenEphys, which
	// also holds the ground-truth spikes as sorted spikes (the units'
	// ids as clusters) and the stimulation trains as TTL events. The
	// ground-truth files are written beside it either way.
	Format string
	// StimEvery, if > 0, delivers Stim every StimEvery samples (at the
	// first chunk boundary after each period, from StimEvery on): its
	// artifact is in the data and in artifacts.csv.
	StimEvery uint64
	Stim      device.Stim
	// Direct writes the raw data by direct I/O where the file system
	// has it (see recordWriter) instead of through the page cache: far
	// less CPU where filling the page cache is dear, but the writing runs
	// at the device's speed and the first reader fetches the data from
	// it. The bytes are the same either way.
	Direct bool
}

// WriteRecordingWith is WriteRecording in a format, with stimulation.
func WriteRecordingWith(ctx context.Context, dir string, cfg Config, samples uint64, opts RecordOptions, progress func(done, total uint64)) error {
	oe := opts.Format == FormatOpenEphys
	if opts.Format != "" && opts.Format != FormatRaw && !oe {
		return fmt.Errorf("sim: format %q, want %s or %s", opts.Format, FormatRaw, FormatOpenEphys)
	}
	if samples == 0 {
		return errors.New("sim: WriteRecording of 0 samples")
	}
	cfg.Duration = samples
	s, err := New(cfg)
	if err != nil {
		return err
	}
	// Blocks of one internal chunk: no copying (the data do not depend
	// on the block size).
	s.cfg.BlockSamples = s.n
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	files := map[string]*os.File{}
	writers := map[string]*bufio.Writer{}
	open := func(name string) (*bufio.Writer, error) {
		f, err := device.CreateFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		files[name] = f
		w := bufio.NewWriterSize(f, 1<<20)
		writers[name] = w
		return w, nil
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var dat *os.File
	var oew *openephys.Writer
	if oe {
		if oew, err = openephys.Create(dir, openephys.WriterConfig{StreamName: "sim"}); err != nil {
			return err
		}
		defer oew.Close()
	} else {
		// Written straight from the generator's memory in large writes,
		// not through a bufio.Writer.
		if dat, err = device.CreateFile(filepath.Join(dir, DataFile)); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		files[DataFile] = dat
	}
	spk, err := open(SpikesFile)
	if err != nil {
		return err
	}
	beh, err := open(BehaviourFile)
	if err != nil {
		return err
	}
	spk.WriteString(sort.SpikesHeader + "\n")
	beh.WriteString("sample_index,vx,vy\n")

	// The simulation runs on this goroutine (its chunks on all cores)
	// while a writer goroutine writes the previous run of chunks: see
	// recordSlot. With opts.Direct the raw data go to the device by
	// direct I/O where the file system has it: see recordWriter.
	wr := &recordWriter{dat: dat, oew: oew, spk: spk, beh: beh, stim: opts.Stim, samples: samples, progress: progress, align: 1}
	if dat != nil && opts.Direct && littleEndian && setDirect(dat, true) {
		wr.align, wr.direct = directAlign, true
	}
	if err := record(ctx, s, samples, opts, wr); err != nil {
		return err
	}
	if err := writeUnits(open, s); err != nil {
		return err
	}
	if err := writeTemplates(open, s); err != nil {
		return err
	}
	art, err := open(ArtifactsFile)
	if err != nil {
		return err
	}
	art.WriteString("sample_index,n_samples,peak_uv,channel\n")
	for _, a := range s.artifacts {
		if a.Sample < samples {
			fmt.Fprintf(art, "%d,%d,%.2f,%d\n", a.Sample, a.Samples, a.PeakUV, a.Channel)
		}
	}
	for name, w := range writers {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("sim: %s: %w", name, err)
		}
		if err := files[name].Close(); err != nil {
			return fmt.Errorf("sim: %s: %w", name, err)
		}
	}
	clear(files)
	c := s.Config()
	conf, err := json.MarshalIndent(configJSON(c), "", "  ")
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := device.WriteFile(filepath.Join(dir, ConfigFile), append(conf, '\n')); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if oew != nil {
		// The spikes split into their electrode folders, structure.oebin
		// final: the recording is complete.
		return oew.Close()
	}
	// The sidecar last: its presence says the recording is complete.
	return device.WriteMeta(filepath.Join(dir, MetaFile), device.Meta{
		Channels: c.Channels,
		Rate:     c.Rate,
		Gain:     c.Gain,
		Samples:  samples,
		Seed:     c.Seed,
		DataFile: DataFile,
	})
}

func writeUnits(open func(string) (*bufio.Writer, error), s *Sim) error {
	w, err := open(UnitsFile)
	if err != nil {
		return err
	}
	w.WriteString(UnitsHeader + "\n")
	for _, u := range s.units {
		fmt.Fprintf(w, "%d,%d,%.3f,%s,%.4f,%.4f,%.6f,%t,%.3f,%.4f,%.3f,%s,%.3f,%.3f,%d\n",
			u.ID, u.Channel, u.PeakUV, ftoa(u.SNR), u.BaselineHz, u.ModulationHz, u.PreferredDir, u.Tuned,
			u.BandPeakUV, u.NoiseUV, u.WidthMs, u.Kind, u.RefractoryMs, u.BurstProb, u.BandLag)
	}
	return nil
}

func ftoa(v float64) string {
	if math.IsInf(v, 1) {
		return "inf"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

func writeTemplates(open func(string) (*bufio.Writer, error), s *Sim) error {
	w, err := open(TemplatesFile)
	if err != nil {
		return err
	}
	w.WriteString("unit_id,channel,pre")
	for j := 0; j < s.tlen; j++ {
		fmt.Fprintf(w, ",t%d", j)
	}
	w.WriteString("\n")
	var line []byte
	for _, u := range s.units {
		line = fmt.Appendf(line[:0], "%d,%d,%d", u.ID, u.Channel, u.Pre)
		for _, v := range u.Template {
			line = append(line, ',')
			line = strconv.AppendFloat(line, float64(v), 'f', 3, 32)
		}
		line = append(line, '\n')
		w.Write(line)
	}
	return nil
}

// configJSON is Config with durations in readable form.
func configJSON(c Config) any {
	type beh struct {
		Model string  `json:"model"`
		Speed float64 `json:"speed_cm_s"`
		Tau   string  `json:"tau"`
		Lead  string  `json:"lead"`
		Rate  float64 `json:"rate_hz"`
	}
	type conf struct {
		Config
		Behaviour beh
	}
	b := c.Behaviour
	return conf{Config: c, Behaviour: beh{b.Model, b.Speed, b.Tau.String(), b.Lead.String(), b.Rate}}
}

// recordSlots and recordSlotBytes size the pipeline between the
// simulation and the writer: three runs of chunks, one being filled, one
// being written and one spare, so that neither side waits for the other
// on a short hiccup. A run is one write(2) of the data file. Through the
// page cache a run is about 1 MiB (one chunk at 1,024 channels), so that
// the kernel copies it from the cache the simulation left it in: with
// 4 MiB runs BenchmarkWriteRecording took 19 % more CPU, with 16 MiB 40 %
// more. By direct I/O the device reads the memory itself and the runs are
// 4 MiB, for fewer and larger transfers.
const (
	recordSlots           = 3
	recordSlotBytes       = 1 << 20
	recordDirectSlotBytes = 4 << 20
)

// recordSlot is a run of consecutive chunks on their way to the files:
// their samples back to back in data (the simulator generates straight
// into it, see Sim.generateInto) and what was delivered with them.
type recordSlot struct {
	// buf starts at an address aligned for direct I/O; data is buf from
	// lead on, and the writer puts the tail of the previous run that did
	// not fill a whole aligned block (lead samples) in front of it.
	buf    []int16
	lead   int
	data   []int16
	used   int            // samples of data filled
	blocks []device.Block // each chunk, Samples within data
	spikes []sort.Spike   // the chunks' ground-truth spikes, in order
	ends   []int          // per chunk, the end of its spikes in spikes
	beh    []BehaviourSample
	stims  []recordStim
}

// newRecordSlot returns a slot for samples samples whose buf is aligned
// to align bytes (a power of two) with room for a tail of align bytes.
func newRecordSlot(samples, align int) *recordSlot {
	pad := align / 2
	raw := make([]int16, pad+samples+pad)
	k := 0
	for uintptr(unsafe.Pointer(&raw[k]))%uintptr(align) != 0 {
		k++
	}
	return &recordSlot{buf: raw[k : k+pad+samples]}
}

// record runs the simulation of s to samples samples per channel on
// this goroutine and w on another, and returns the first error of either
// once both have stopped, after w's last data.
func record(ctx context.Context, s *Sim, samples uint64, opts RecordOptions, w *recordWriter) error {
	free, full := make(chan *recordSlot, recordSlots), make(chan *recordSlot, recordSlots)
	chunk := s.cfg.Channels * s.n
	size := recordSlotBytes
	if w.direct {
		size = recordDirectSlotBytes
	}
	per := max(1, size/(2*chunk))
	for range recordSlots {
		free <- newRecordSlot(per*chunk, w.align)
	}
	done := make(chan error, 1)
	go func() { done <- w.run(full, free) }()
	err := simulate(ctx, s, samples, opts, w.align, free, full)
	close(full)
	if werr := <-done; err == nil || err == errRecordWriter {
		err = werr
	}
	if err == nil {
		err = w.finish()
	}
	return err
}

// recordStim is a stimulation delivered before chunk chunk of a slot,
// for the Open Ephys events.
type recordStim struct {
	chunk       int
	at, samples uint64
}

// simulate runs s to samples samples per channel, one chunk per Next,
// filling the slots it takes from free and handing them to full in order.
// It delivers the stimulation of opts at chunk boundaries. align is the
// writer's (recordWriter.align).
func simulate(ctx context.Context, s *Sim, samples uint64, opts RecordOptions, align int, free <-chan *recordSlot, full chan<- *recordSlot) error {
	chunk := s.cfg.Channels * s.n
	nextStim := opts.StimEvery
	var slot *recordSlot
	var bytes uint64 // of data before slot
	for s.Emitted() < samples {
		if err := ctx.Err(); err != nil {
			return err
		}
		if slot == nil {
			select {
			case slot = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			if slot == nil {
				return errRecordWriter // the writer failed: it reports why
			}
			slot.lead = int(bytes%uint64(align)) / 2
			slot.data, slot.used = slot.buf[slot.lead:], 0
			slot.blocks, slot.spikes, slot.ends = slot.blocks[:0], slot.spikes[:0], slot.ends[:0]
			slot.beh, slot.stims = slot.beh[:0], slot.stims[:0]
		}
		if nextStim > 0 && s.Emitted() >= nextStim {
			at := s.Emitted()
			if err := s.Stimulate(opts.Stim); err != nil {
				return err
			}
			st := opts.Stim
			slot.stims = append(slot.stims, recordStim{chunk: len(slot.blocks), at: at, samples: uint64(math.Ceil(st.TrainUs() * s.cfg.Rate / 1e6))})
			for nextStim <= at {
				nextStim += opts.StimEvery
			}
		}
		s.generateInto(slot.data[slot.used : slot.used+chunk])
		b, err := s.Next(ctx)
		if err != nil {
			return err
		}
		slot.used += len(b.Samples)
		slot.blocks = append(slot.blocks, b)
		slot.spikes = s.TakeSpikes(slot.spikes)
		slot.ends = append(slot.ends, len(slot.spikes))
		slot.beh = s.TakeBehaviour(slot.beh)
		if slot.used+chunk > len(slot.data) || b.End() == samples {
			bytes += 2 * uint64(slot.used)
			full <- slot
			slot = nil
		}
	}
	return nil
}

// errRecordWriter stops the simulation when the writer has failed; the
// writer's own error is the one returned.
var errRecordWriter = errors.New("sim: writer stopped")

// recordWriter writes the slots of a recording to its files, in order.
//
// With RecordOptions.Direct the raw data go by direct I/O (O_DIRECT) where
// the file system has it: from the slots straight to the device, in whole
// aligned blocks, with the tail that does not fill one carried in front of
// the next slot and the last tail written normally. On a virtual machine
// whose memory the host backs lazily, copying 1.2 GB into fresh page-cache
// pages cost up to 2.5 CPU-seconds in the kernel, more than simulating
// them; direct I/O costs about 0.25. But the writing then runs at the
// device's speed, slower than the page cache when its pages are cheap
// (docs/performance.md), and the first reader fetches the data from the
// device.
type recordWriter struct {
	dat      *os.File          // raw data, or nil
	oew      *openephys.Writer // or Open Ephys
	spk, beh *bufio.Writer
	stim     device.Stim
	samples  uint64
	progress func(done, total uint64)
	line     []byte
	le       []byte // the data as little-endian bytes on big-endian machines
	align    int    // bytes of the data blocks written: directAlign for direct I/O, else 1
	direct   bool   // dat is in direct I/O mode
	carry    []byte // data not yet written (less than align bytes)
}

// run writes the slots from full and returns them to free until full is
// closed. After an error it writes nothing more, closes free so that the
// simulation stops, and returns the error once full is closed.
func (w *recordWriter) run(full <-chan *recordSlot, free chan<- *recordSlot) error {
	var err error
	for slot := range full {
		if err == nil {
			if err = w.write(slot); err != nil {
				close(free)
				continue
			}
			free <- slot
		}
	}
	return err
}

func (w *recordWriter) write(slot *recordSlot) error {
	if w.oew != nil {
		k, start := 0, 0
		for i := range slot.blocks {
			for ; k < len(slot.stims) && slot.stims[k].chunk == i; k++ {
				st, m := w.stim, slot.stims[k]
				text := fmt.Sprintf("stimulate channel=%d amplitude_ua=%g phase_us=%d pulses=%d period_us=%d biphasic=%t cathodic_first=%t",
					st.Channel, st.AmplitudeUA, st.PhaseUs, st.Pulses, st.PeriodUs, st.Biphasic, st.CathodicFirst)
				if err := w.oew.Stimulation(m.at, m.samples, text); err != nil {
					return err
				}
			}
			if err := w.oew.Write(&slot.blocks[i]); err != nil {
				return err
			}
			if err := w.oew.Spikes(1, slot.spikes[start:slot.ends[i]]); err != nil {
				return err
			}
			start = slot.ends[i]
		}
	} else if err := w.writeData(slot); err != nil {
		return err
	}
	line := w.line
	for _, sp := range slot.spikes {
		line = sort.AppendSpikeCSV(line[:0], sp)
		w.spk.Write(line)
	}
	for _, x := range slot.beh {
		line = strconv.AppendUint(line[:0], x.Sample, 10)
		line = append(line, ',')
		line = strconv.AppendFloat(line, x.VX, 'g', 8, 64)
		line = append(line, ',')
		line = strconv.AppendFloat(line, x.VY, 'g', 8, 64)
		line = append(line, '\n')
		w.beh.Write(line)
	}
	w.line = line
	if w.progress != nil {
		w.progress(slot.blocks[len(slot.blocks)-1].End(), w.samples)
	}
	return nil
}

// writeData writes the slot's samples to the raw data file: all of them,
// or with direct I/O the whole aligned blocks, behind the carry.
func (w *recordWriter) writeData(slot *recordSlot) error {
	if w.align == 1 {
		var p []byte
		p, w.le = bytesLE(slot.data[:slot.used], w.le)
		return w.writeDat(p)
	}
	// align > 1 only on little-endian machines: the samples' memory is
	// the file's bytes.
	if len(w.carry) != 2*slot.lead {
		return fmt.Errorf("sim: %s: internal error: %d bytes carried for a slot led by %d", DataFile, len(w.carry), 2*slot.lead)
	}
	all := slot.buf[:slot.lead+slot.used]
	p := unsafe.Slice((*byte)(unsafe.Pointer(&all[0])), 2*len(all))
	copy(p, w.carry)
	n := len(p) / w.align * w.align
	if err := w.writeDat(p[:n]); err != nil {
		return err
	}
	w.carry = append(w.carry[:0], p[n:]...)
	return nil
}

// writeDat writes p to the raw data file. A file system that accepted
// direct I/O but refuses a write of it gets the rest without.
func (w *recordWriter) writeDat(p []byte) error {
	n, err := w.dat.Write(p)
	if err != nil && w.direct && errors.Is(err, syscall.EINVAL) {
		w.direct = false
		if setDirect(w.dat, false) {
			_, err = w.dat.Write(p[n:])
		}
	}
	if err != nil {
		return fmt.Errorf("sim: %s: %w", DataFile, err)
	}
	return nil
}

// finish writes the data not yet written (the last tail, normally: it
// is not a whole block).
func (w *recordWriter) finish() error {
	if len(w.carry) == 0 {
		return nil
	}
	if w.direct {
		w.direct = false
		if !setDirect(w.dat, false) {
			return fmt.Errorf("sim: %s: cannot leave direct I/O for the last %d bytes", DataFile, len(w.carry))
		}
	}
	return w.writeDat(w.carry)
}
