package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
)

func init() {
	register(command{
		name:    "encode",
		summary: "convert a recording into what a headstage sends in lossless, spike-event or feature mode (protocol v2), or restore one",
		run:     runEncode,
	})
}

// encodeJob is a validated `spikeline encode` invocation.
type encodeJob struct {
	meta    string // recording.json (or its directory)
	out     string
	restore string
	cfg     device.EncodeConfig
	levels  []float64 // features: σ of each level's threshold
}

func runEncode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("encode", stderr)
	var j encodeJob
	fs.StringVar(&j.meta, "meta", "", "recording.json sidecar (or its directory) of the raw recording to encode")
	mode := fs.String("mode", "lossless", "what the headstage sends: lossless (compressed samples), spikes (events with snippets), features (threshold crossings and spike-band power per bin) or raw")
	fs.StringVar(&j.out, "out", "", "file of frames to write (encode), or directory to restore into (--restore)")
	fs.StringVar(&j.restore, "restore", "", "restore the recording a lossless (or raw) file of frames carries into --out (recording.dat + recording.json)")
	frameMs := fs.Float64("frame-ms", 1, "lossless, spikes and raw: length of a frame in ms (the latency a device adds; longer frames compress better)")
	dth := sort.Default().Threshold
	sigmas := fs.Float64("threshold", dth, fmt.Sprintf("spikes: detection threshold in noise σ of each channel's band-passed signal, measured on the first --calibrate seconds (troughs; negative: peaks); %g is the sorter's (the σ multiple travels in the file's settings frames)", dth))
	calib := fs.Float64("calibrate", 10, "spikes, features: seconds of the recording the thresholds are measured on")
	binMs := fs.Float64("bin-ms", 20, "features: bin length in ms")
	featThr := fs.String("feature-thresholds", "3.5,5,7,10", "features: the thresholds crossings are counted at, in noise σ, one per level (1 to 4; troughs, negative: peaks)")
	countBits := fs.Int("count-bits", 2, "features: bits per crossing count, 2, 4 or 8 (counts saturate at 3, 15, 255)")
	preMs := fs.Float64("pre-ms", 0.5, "spikes: snippet before the extremum, ms")
	postMs := fs.Float64("post-ms", 1, "spikes: snippet after the extremum, ms")
	noSnippets := fs.Bool("no-snippets", false, "spikes: events without snippets (time and channel only)")
	order := fs.Int("lpc-order", 0, "lossless: order of the linear predictor (0: 4; -1: none, previous-sample prediction only)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline encode --meta recording.json --mode lossless|spikes|features|raw --out FILE [flags]")
		fmt.Fprintln(stderr, "       spikeline encode --restore FILE --out DIR")
		fmt.Fprintln(stderr, "\nWrites the frames (wire protocol version 2, docs/protocol.md) a headstage in that mode")
		fmt.Fprintln(stderr, "sends for the recording, and ends with the line ratio=R encode_mb_s=E (raw bytes over")
		fmt.Fprintln(stderr, "written bytes; MB of raw samples per second of wall time). run --device file:FILE, sort")
		fmt.Fprintln(stderr, "and decode --features read the file directly; --restore gives back a lossless file's")
		fmt.Fprintln(stderr, "recording bit for bit.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if j.out == "" {
		return usageErrorf("--out is required")
	}
	if j.restore != "" {
		if j.meta != "" {
			return usageErrorf("--restore reads a file of frames, which describes itself: drop --meta")
		}
		return j.runRestore(ctx, stdout)
	}
	if j.meta == "" {
		return usageErrorf("--meta is required (the recording to encode)")
	}
	m, err := device.ParseMode(*mode)
	if err != nil {
		return usageErrorf("--mode: %v", err)
	}
	switch {
	case !(*frameMs > 0) || *frameMs > 1000:
		return usageErrorf("--frame-ms %g: want > 0 and <= 1000", *frameMs)
	case *sigmas == 0 || math.IsNaN(*sigmas) || math.IsInf(*sigmas, 0) || math.Abs(*sigmas) > 100:
		return usageErrorf("--threshold %g: want a non-zero number of σ", *sigmas)
	case !(*calib > 0):
		return usageErrorf("--calibrate %g: want > 0 seconds", *calib)
	case !(*binMs > 0):
		return usageErrorf("--bin-ms %g: want > 0", *binMs)
	case *countBits != 2 && *countBits != 4 && *countBits != 8:
		return usageErrorf("--count-bits %d: want 2, 4 or 8", *countBits)
	case !(*preMs >= 0) || !(*postMs > 0):
		return usageErrorf("--pre-ms %g, --post-ms %g: want >= 0 and > 0", *preMs, *postMs)
	case *order < -1 || *order > 8:
		return usageErrorf("--lpc-order %d: want -1..8", *order)
	}
	var levels []float64
	for _, f := range strings.Split(*featThr, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v == 0 || math.IsInf(v, 0) || math.Abs(v) > 100 {
			return usageErrorf("--feature-thresholds %q: want 1 to %d non-zero numbers of σ, comma-separated", *featThr, device.MaxLevels)
		}
		levels = append(levels, v)
	}
	if len(levels) > device.MaxLevels {
		return usageErrorf("--feature-thresholds %q: at most %d levels", *featThr, device.MaxLevels)
	}
	j.levels = levels
	src, meta, err := device.OpenRecording(j.meta, device.RawConfig{BlockSamples: 4096})
	if err != nil {
		return err
	}
	defer src.Close()
	rate := meta.Rate
	set := device.DefaultSettings(uint32(math.Round(rate)), meta.Channels)
	for _, c := range []device.Command{
		{Op: device.OpSetSnippet, Pre: uint8(min(math.Round(*preMs*rate/1000), 127)), Post: uint8(min(math.Round(*postMs*rate/1000), 127)), NoSnippets: *noSnippets},
		{Op: device.OpSetFeatures, BinSamples: uint16(min(max(math.Round(*binMs*rate/1000), 1), math.MaxUint16)), Levels: uint8(len(levels)), CountBits: uint8(*countBits)},
	} {
		if err := set.Apply(c, meta.Channels); err != nil {
			return usageErrorf("%v", err)
		}
	}
	j.cfg = device.EncodeConfig{
		Mode:             m,
		FrameSamples:     int(max(1, math.Round(*frameMs*rate/1000))),
		Settings:         set,
		Sigmas:           -*sigmas,
		CalibrateSeconds: *calib,
		Compress:         device.CompressConfig{Order: *order},
	}
	return j.runEncode(ctx, src, meta, stdout)
}

func (j *encodeJob) runEncode(ctx context.Context, src *device.RawSource, meta device.Meta, stdout io.Writer) error {
	if j.cfg.Mode == device.ModeFeatures {
		// The levels' thresholds, measured as the device's host would.
		for l, sg := range j.levels {
			th, err := device.Calibrate(ctx, src, j.cfg.CalibrateSeconds, -sg)
			if err != nil {
				return err
			}
			j.cfg.Settings.Thresholds[l] = th
			j.cfg.Settings.SigmaTenths[l] = uint8(min(math.Round(math.Abs(sg)*10), math.MaxUint8))
		}
	}
	tmp := j.out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	st, err := device.Encode(ctx, src, f, j.cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.out)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	secs := float64(st.Samples) / meta.Rate
	fmt.Fprintf(stdout, "encoded %.1f s of %d channels at %g Hz (%s): %.1f MB of samples into %d frames, %.2f MB (%.1f kb/s)\n",
		secs, meta.Channels, meta.Rate, j.cfg.Mode, float64(st.RawBytes)/1e6, st.Frames, float64(st.Bytes)/1e6, 8*float64(st.Bytes)/secs/1e3)
	switch j.cfg.Mode {
	case device.ModeSpikes:
		fmt.Fprintf(stdout, "events=%d (%.1f per second per channel), snippets %d+1+%d samples\n",
			st.Events, float64(st.Events)/secs/float64(meta.Channels), st.Settings.Pre, st.Settings.Post)
	case device.ModeFeatures:
		fmt.Fprintf(stdout, "bins=%d of %d samples, %d threshold level(s), %d-bit counts\n", st.Bins, st.Settings.BinSamples, st.Settings.Levels, st.Settings.CountBits)
	}
	fmt.Fprintf(stdout, "wrote %s\n", j.out)
	fmt.Fprintf(stdout, "ratio=%.4f encode_mb_s=%.1f\n", st.Ratio(), float64(st.RawBytes)/1e6/st.Elapsed.Seconds())
	return nil
}

func (j *encodeJob) runRestore(ctx context.Context, stdout io.Writer) error {
	if _, err := os.Stat(filepath.Join(j.out, device.RecordingMeta)); err == nil {
		return fmt.Errorf("%s: a recording exists already", j.out)
	}
	rs, err := device.Restore(ctx, j.restore, j.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %d samples per channel from %s (%d frames) into %s\n", rs.Samples, j.restore, rs.Link.Frames, j.out)
	return nil
}
