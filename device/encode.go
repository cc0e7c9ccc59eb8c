package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// EncodeConfig configures Encode: what a headstage in a given mode would
// send for a recording.
type EncodeConfig struct {
	Mode Mode
	// FrameSamples is the samples per channel of each data, compressed or
	// spike frame (0: 1 ms, rate/1000). Feature frames hold one bin.
	FrameSamples int
	// Settings of the detector (spike and feature modes); nil: the
	// defaults for the recording's rate (DefaultSettings). Thresholds all
	// zero are set from the recording's noise, as a host calibrates a
	// device: Sigmas × the noise of each channel's band-passed signal
	// over its first CalibrateSeconds.
	Settings         *Settings
	Sigmas           float64 // default -4.5 (troughs)
	CalibrateSeconds float64 // default 10
	// Compress configures the compressor of lossless mode.
	Compress CompressConfig
}

// EncodeStats says what Encode did.
type EncodeStats struct {
	Samples  uint64        // samples per channel read
	Channels int           //
	RawBytes int64         // bytes of int16 samples read
	Bytes    int64         // bytes written
	Frames   int           // frames written, settings included
	Events   int           // spike events
	Bins     int           // feature bins
	Settings *Settings     // the detector's settings (spike and feature modes)
	Elapsed  time.Duration // wall time of the conversion
}

// Ratio returns raw bytes over encoded bytes.
func (s EncodeStats) Ratio() float64 {
	if s.Bytes == 0 {
		return 0
	}
	return float64(s.RawBytes) / float64(s.Bytes)
}

// Encode converts a raw recording into the stream of frames a headstage
// in cfg.Mode sends (docs/protocol.md), written to w: data frames (raw),
// compressed frames (lossless), or a settings frame followed by spike or
// feature frames. Gaps in the recording (its sidecar's gaps, which the
// source steps over) become gaps in the frame counter. The source is read
// from its start (Seek(0)); in spike and feature modes without
// thresholds, its first CalibrateSeconds are read once more before, to
// set them.
func Encode(ctx context.Context, src *RawSource, w io.Writer, cfg EncodeConfig) (EncodeStats, error) {
	start := time.Now()
	rc := src.Config()
	C := rc.Channels
	if rc.Rate > math.MaxUint32 || rc.Rate < 1 {
		return EncodeStats{}, CheckRate("recording", "sample rate", rc.Rate)
	}
	rate := uint32(math.Round(rc.Rate))
	gain := float32(rc.Gain)
	n := cfg.FrameSamples
	if n <= 0 {
		n = int(max(1, rate/1000))
	}
	if n > math.MaxUint16 || 2*n*C > MaxPayload {
		return EncodeStats{}, fmt.Errorf("device: encode: frames of %d samples of %d channels exceed the protocol's %d-byte payload", n, C, MaxPayload)
	}
	st := EncodeStats{Channels: C}
	var det *Detector
	if cfg.Mode == ModeSpikes || cfg.Mode == ModeFeatures {
		s := cfg.Settings
		if s == nil {
			s = DefaultSettings(rate, C)
		}
		s = s.Clone()
		s.Mode = cfg.Mode
		if allZero(s.Thresholds) {
			th, err := Calibrate(ctx, src, cfg.CalibrateSeconds, cfg.Sigmas)
			if err != nil {
				return st, err
			}
			sg := cfg.Sigmas
			if sg == 0 {
				sg = -4.5
			}
			for l := range s.Thresholds {
				s.Thresholds[l] = th
				s.SigmaTenths[l] = uint8(min(math.Round(math.Abs(sg)*10), math.MaxUint8))
			}
		}
		var err error
		if det, err = NewDetector(s, C); err != nil {
			return st, err
		}
		st.Settings = s
	} else if cfg.Mode != ModeRaw && cfg.Mode != ModeCompressed {
		return st, fmt.Errorf("device: encode: unknown mode %d", cfg.Mode)
	}
	src.Seek(0)
	comp := NewCompressor(cfg.Compress)
	var buf []byte
	var pend []int16 // samples not yet framed, from pendFirst
	var pendFirst uint64
	var events []SpikeEvent
	write := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := w.Write(buf)
		st.Bytes += int64(len(buf))
		buf = buf[:0]
		return err
	}
	frame := func(first uint64, x []int16) {
		switch cfg.Mode {
		case ModeRaw:
			buf = AppendData(buf, first, rate, gain, C, x, 0)
			st.Frames++
		case ModeCompressed:
			buf = comp.AppendCompressed(buf, first, rate, gain, C, x, 0)
			st.Frames++
		case ModeSpikes:
			det.Push(first, x)
			events = det.TakeEvents(events[:0])
			st.Events += len(events)
			buf = AppendSpikes(buf, first, len(x)/C, rate, gain, C, &Spikes{Pre: st.Settings.Pre, Post: st.Settings.Post, Snippets: st.Settings.Snippets, Events: events}, 0)
			st.Frames++
		case ModeFeatures:
			det.Push(first, x)
			for det.Bins() > 0 {
				b, f := det.TakeBins(1)
				buf = AppendFeatures(buf, b, rate, gain, &f, 0)
				st.Frames++
				st.Bins++
			}
		}
	}
	if st.Settings != nil {
		buf = AppendSettings(buf, rc.First, rate, gain, C, st.Settings)
		st.Frames++
	}
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, err
		}
		st.Samples += uint64(b.Len())
		st.RawBytes += int64(2 * len(b.Samples))
		if len(pend) > 0 && b.First != pendFirst+uint64(len(pend)/C) {
			// A gap: frame what came before it on its own.
			frame(pendFirst, pend)
			pend = pend[:0]
		}
		if len(pend) == 0 {
			pendFirst = b.First
		}
		pend = append(pend, b.Samples...)
		for len(pend) >= n*C {
			frame(pendFirst, pend[:n*C])
			pend = pend[n*C:]
			pendFirst += uint64(n)
		}
		pend = append(pend[:0:0], pend...) // do not hold the block
		if err := write(); err != nil {
			return st, err
		}
	}
	if len(pend) > 0 {
		frame(pendFirst, pend)
	}
	if err := write(); err != nil {
		return st, err
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

func allZero(t [][]int16) bool {
	for _, l := range t {
		for _, v := range l {
			if v != 0 {
				return false
			}
		}
	}
	return true
}

// Calibrate returns detection thresholds for src's channels as a host
// sets them on a device: sigmas × the noise of each channel's band-passed
// signal (Thresholds) over the recording's first seconds (default 10;
// at most 32 MB of samples); sigmas 0 means -4.5 (troughs). It reads from
// the start of src and leaves it wherever it stopped.
func Calibrate(ctx context.Context, src *RawSource, seconds, sigmas float64) ([]int16, error) {
	rc := src.Config()
	if seconds <= 0 {
		seconds = 10
	}
	if sigmas == 0 {
		sigmas = -4.5
	}
	want := min(uint64(seconds*rc.Rate), uint64(16<<20)/uint64(rc.Channels))
	src.Seek(0)
	var x []int16
	for uint64(len(x)/rc.Channels) < want {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		x = append(x, b.Samples...)
	}
	x = x[:min(len(x), int(want)*rc.Channels)]
	return Thresholds(x, rc.Channels, uint32(math.Round(rc.Rate)), sigmas), nil
}

// RestoreStats says what Restore wrote.
type RestoreStats struct {
	Samples uint64 // samples per channel written (gaps included, as zeros)
	Link    Stats  // what the decoder saw in the file
}

// Restore reads a file of wire-protocol frames of samples (data or
// compressed frames) and writes the recording they carry into dir
// (RecordingData and RecordingMeta, through a RawWriter: gaps zero-filled
// and listed), bit for bit what was encoded. The gain is written as the
// shortest decimal that is the frames' float32 gain (0.195, not
// 0.19499999284744263). A file whose frames carry spike events or
// features has no samples to restore: that is an error naming the mode.
// Damage in the file (a CRC failure, skipped bytes, a bad frame) is an
// error too: a restore is exact or nothing.
func Restore(ctx context.Context, path, dir string) (RestoreStats, error) {
	var rs RestoreStats
	wf, err := OpenWireFile(path)
	if err != nil {
		return rs, err
	}
	defer wf.Close()
	wf.Strict = true
	var rw *RawWriter
	defer func() {
		if rw != nil {
			rw.Close()
		}
	}()
	for {
		b, err := wf.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rs, err
		}
		if b.Spikes != nil || b.Features != nil {
			what := "spike events"
			if b.Features != nil {
				what = "features"
			}
			return rs, fmt.Errorf("device: %s: the frames carry %s, not samples: nothing to restore (spikeline sort reads spike events, spikeline decode features)", path, what)
		}
		if rw == nil {
			if rw, err = CreateRecording(dir); err != nil {
				return rs, err
			}
		}
		// The frames carry a float32 gain: write its shortest decimal.
		b.Gain, _ = strconv.ParseFloat(strconv.FormatFloat(float64(float32(b.Gain)), 'g', -1, 32), 64)
		if err := rw.Write(&b); err != nil {
			return rs, err
		}
	}
	if rw == nil {
		return rs, fmt.Errorf("device: %s: no frames of samples", path)
	}
	rs.Samples = rw.Samples()
	rs.Link = wf.Stats()
	err = rw.Close()
	rw = nil
	if err != nil {
		return rs, err
	}
	return rs, nil
}
