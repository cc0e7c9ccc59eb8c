package probe

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spikeline/spikeline/device"
)

// Builtins lists the built-in layouts Builtin knows, with what each is.
var Builtins = []struct{ Name, What string }{
	{"linear", "one shank, channels in a line 20 µm apart (linear:P for a pitch of P µm)"},
	{"utah", "Utah array: a 10 × 10 grid 400 µm apart, row by row (96 channels: the corners left out)"},
	{"thread", "32-contact threads: contacts in a line 50 µm apart, threads 200 µm apart (32, 64, … 1,024 channels)"},
	{"neuropixels1", "Neuropixels 1.0, bank 0: 384 channels, 4 staggered columns 16 µm apart, rows 20 µm apart"},
}

// Builtin returns a built-in layout for channels channels (see Builtins).
// A name may carry a parameter after a colon: linear:25 is a line 25 µm
// apart.
func Builtin(name string, channels int) (*Probe, error) {
	if err := device.CheckChannels("", "channels", channels); err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	base, arg, hasArg := strings.Cut(strings.ToLower(strings.TrimSpace(name)), ":")
	bad := func(f string, a ...any) error {
		return &Error{File: "built-in layout " + name, Err: ErrCount, Msg: fmt.Sprintf(f, a...)}
	}
	if hasArg && base != "linear" {
		return nil, &Error{File: "built-in layout " + name, Err: ErrFormat, Msg: fmt.Sprintf("%s takes no parameter", base)}
	}
	pos := make([][2]float64, 0, channels)
	switch base {
	case "linear":
		pitch := 20.0
		if hasArg {
			v, err := strconv.ParseFloat(arg, 64)
			if err != nil || !(v > 0) || v > 1e6 {
				return nil, &Error{File: "built-in layout " + name, Err: ErrNumber, Msg: fmt.Sprintf("pitch %q, want > 0 µm", arg)}
			}
			pitch = v
		}
		for c := range channels {
			pos = append(pos, [2]float64{0, float64(c) * pitch})
		}
	case "utah":
		if channels > 100 {
			return nil, bad("a Utah array has at most 100 channels, the recording %d", channels)
		}
		for k := 0; k < 100 && len(pos) < channels; k++ {
			r, c := k/10, k%10
			if channels == 96 && (r == 0 || r == 9) && (c == 0 || c == 9) {
				continue
			}
			pos = append(pos, [2]float64{float64(c) * 400, float64(r) * 400})
		}
	case "thread":
		if channels%32 != 0 {
			return nil, bad("threads have 32 contacts each; %d channels is not a multiple of 32", channels)
		}
		for c := range channels {
			pos = append(pos, [2]float64{float64(c/32) * 200, float64(c%32) * 50})
		}
	case "neuropixels1", "np1":
		if channels != 384 {
			return nil, bad("Neuropixels 1.0 records 384 channels at a time, the recording has %d", channels)
		}
		// Kilosort's neuropixPhase3B1_kilosortChanMap: x 43, 11, 59, 27
		// µm repeating, two sites per 20 µm row.
		xs := [4]float64{43, 11, 59, 27}
		for c := range channels {
			pos = append(pos, [2]float64{xs[c%4], float64(c/2+1) * 20})
		}
	default:
		names := make([]string, len(Builtins))
		for i, b := range Builtins {
			names[i] = b.Name
		}
		return nil, &Error{File: "built-in layout " + name, Err: ErrFormat, Msg: fmt.Sprintf("unknown layout (want %s)", strings.Join(names, ", "))}
	}
	return New(strings.ToLower(name), pos)
}

// Open returns the probe spec names for a recording of channels channels:
// a built-in layout (Builtins; "linear", "linear:25", "neuropixels1", …) or
// a file — probeinterface JSON (.json) or CSV (any other name) — whose
// channel count must be the recording's. A file named like a built-in
// layout is given with its directory (./linear).
func Open(spec string, channels int) (*Probe, error) {
	if isBuiltin(spec) {
		return Builtin(spec, channels)
	}
	p, err := ReadFile(spec)
	if err != nil {
		return nil, err
	}
	if err := p.Check(channels); err != nil {
		return nil, err
	}
	return p, nil
}

// ReadFile reads a probe file: probeinterface JSON when its name ends in
// .json or its content starts with '{', CSV otherwise.
func ReadFile(path string) (*Probe, error) {
	data, err := device.ReadFileLimit(path, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	name := path
	if strings.EqualFold(filepath.Ext(path), ".json") || strings.HasPrefix(strings.TrimSpace(string(data[:min(len(data), 64)])), "{") {
		return ReadJSON(strings.NewReader(string(data)), name)
	}
	return ReadCSV(strings.NewReader(string(data)), name)
}

// isBuiltin reports whether spec names a built-in layout.
func isBuiltin(spec string) bool {
	base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(spec)), ":")
	switch base {
	case "linear", "utah", "thread", "neuropixels1", "np1":
		return true
	}
	return false
}
