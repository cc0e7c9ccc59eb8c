package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

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
	var dat *bufio.Writer
	var oew *openephys.Writer
	if oe {
		if oew, err = openephys.Create(dir, openephys.WriterConfig{StreamName: "sim"}); err != nil {
			return err
		}
		defer oew.Close()
	} else if dat, err = open(DataFile); err != nil {
		return err
	}
	nextStim := opts.StimEvery
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

	var (
		buf    []byte
		line   []byte
		spikes []sort.Spike
		bs     []BehaviourSample
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if nextStim > 0 && s.Emitted() >= nextStim && s.Emitted() < samples {
			at := s.Emitted()
			if err := s.Stimulate(opts.Stim); err != nil {
				return err
			}
			if oew != nil {
				st := opts.Stim
				text := fmt.Sprintf("stimulate channel=%d amplitude_ua=%g phase_us=%d pulses=%d period_us=%d biphasic=%t cathodic_first=%t",
					st.Channel, st.AmplitudeUA, st.PhaseUs, st.Pulses, st.PeriodUs, st.Biphasic, st.CathodicFirst)
				if err := oew.Stimulation(at, uint64(math.Ceil(st.TrainUs()*s.cfg.Rate/1e6)), text); err != nil {
					return err
				}
			}
			for nextStim <= at {
				nextStim += opts.StimEvery
			}
		}
		b, err := s.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if oew != nil {
			if err := oew.Write(&b); err != nil {
				return err
			}
		} else {
			buf = appendLE(buf[:0], b.Samples)
			if _, err := dat.Write(buf); err != nil {
				return fmt.Errorf("sim: %s: %w", DataFile, err)
			}
		}
		spikes = s.TakeSpikes(spikes[:0])
		if oew != nil {
			if err := oew.Spikes(1, spikes); err != nil {
				return err
			}
		}
		for _, sp := range spikes {
			line = sort.AppendSpikeCSV(line[:0], sp)
			spk.Write(line)
		}
		bs = s.TakeBehaviour(bs[:0])
		for _, x := range bs {
			line = strconv.AppendUint(line[:0], x.Sample, 10)
			line = append(line, ',')
			line = strconv.AppendFloat(line, x.VX, 'g', 8, 64)
			line = append(line, ',')
			line = strconv.AppendFloat(line, x.VY, 'g', 8, 64)
			line = append(line, '\n')
			beh.Write(line)
		}
		if progress != nil {
			progress(b.End(), samples)
		}
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
