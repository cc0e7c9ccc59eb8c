package intan

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spikeline/spikeline/device"
)

// The Intan inputs as device kinds of the registry (device.Open):
//
//	rhx:HOST[:PORT]  the RHX software's TCP command port (default 5000)
//	                 and its waveform port; Options.Config is an RHXConfig
//	                 for the channels, band and blocks per write
//	file:PATH.rhd    an .rhd or .rhs data file (also .rhs)
func init() {
	device.Register("rhx", openRHX)
	device.RegisterFormat("intan", func(path string, _ device.Options) bool {
		ext := strings.ToLower(filepath.Ext(path))
		return ext == ".rhd" || ext == ".rhs"
	}, openFile)
}

// openRHX opens rhx:HOST[:PORT] with reconnection.
func openRHX(ctx context.Context, addr string, o device.Options) (device.Source, error) {
	if addr == "" {
		return nil, device.SpecErrorf("--device rhx: want rhx:HOST[:PORT], e.g. rhx:127.0.0.1 (RHX's command port, default 5000)")
	}
	var cfg RHXConfig
	switch c := o.Config.(type) {
	case nil:
	case RHXConfig:
		cfg = c
	default:
		return nil, device.SpecErrorf("device rhx: Options.Config is a %T, want an intan.RHXConfig", o.Config)
	}
	cfg.Addr, cfg.Reconnect, cfg.Logf = addr, true, o.Logf()
	rs, err := OpenRHX(ctx, cfg)
	if err != nil {
		return nil, err
	}
	info := rs.Info()
	o.Log().Info("Intan RHX", "address", addr, "controller", info.Type, "rate_hz", info.SampleRate, "run_mode", info.RunMode,
		"channels", len(rs.ChannelNames()), "blocks_per_write", info.BlocksPerWrite, "notch_hz", info.Notch)
	return &rhxDevice{rs, "rhx:" + addr}, nil
}

type rhxDevice struct {
	*RHXSource
	name string
}

func (d *rhxDevice) String() string { return d.name }

// openFile opens an .rhd or .rhs file as file:PATH.
func openFile(_ context.Context, path string, o device.Options) (device.Source, error) {
	if o.Meta != "" || o.Channels > 0 {
		return nil, device.SpecErrorf("--device file:%s: an Intan file describes itself (no --meta or --channels)", path)
	}
	fs, err := OpenFile(path, FileConfig{Pace: o.Pace})
	if err != nil {
		return nil, err
	}
	h := fs.Header()
	log := o.Log()
	log.Info("Intan data file", "file", path, "version", fmt.Sprintf("%d.%d", h.Major, h.Minor), "channels", len(h.Amplifier),
		"rate_hz", h.SampleRate, "seconds", float64(h.Samples())/h.SampleRate, "notch_hz", h.NotchHz, "notch_applied", h.NotchApplied)
	if h.NotchHz > 0 && !h.NotchApplied {
		log.Warn("the recording was made with a notch filter the data do not have (Intan's readers apply it; spikeline's band-pass makes it moot for spikes)", "notch_hz", h.NotchHz)
	}
	return &fileDevice{fs, "file:" + path}, nil
}

type fileDevice struct {
	*FileSource
	name string
}

func (d *fileDevice) String() string { return d.name }
