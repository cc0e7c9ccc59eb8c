package device_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spikeline/spikeline/device"
)

// TestRegistryKinds: the kinds of this package are registered; an
// unknown kind names the registered ones.
func TestRegistryKinds(t *testing.T) {
	kinds := device.Kinds()
	for _, k := range []string{"file", "serial", "tcp", "usb"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("kind %q not registered (have %v)", k, kinds)
		}
	}
	_, err := device.Open(context.Background(), "nope:x", device.Options{})
	if err == nil || !strings.Contains(err.Error(), `unknown device kind "nope"`) || !strings.Contains(err.Error(), "file") {
		t.Errorf("unknown kind: %v", err)
	}
}

// TestRegistryRegister: a kind registered from outside is opened with its
// argument and the Options; registering it twice panics.
func TestRegistryRegister(t *testing.T) {
	var gotArg string
	var gotOpts device.Options
	device.Register("testkind", func(_ context.Context, arg string, o device.Options) (device.Source, error) {
		gotArg, gotOpts = arg, o
		return constSource{}, nil
	})
	src, err := device.Open(context.Background(), "testkind:a:b", device.Options{Channels: 3, Pace: 2})
	if err != nil {
		t.Fatal(err)
	}
	if gotArg != "a:b" || gotOpts.Channels != 3 || gotOpts.Pace != 2 {
		t.Errorf("opener got %q %+v", gotArg, gotOpts)
	}
	if n := device.Name(src, "testkind:a:b"); n != "testkind:a:b" {
		t.Errorf("Name = %q, want the spec", n)
	}
	if err := device.Close(src); err != nil {
		t.Errorf("Close of a source without Close: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a kind twice did not panic")
		}
	}()
	device.Register("testkind", func(context.Context, string, device.Options) (device.Source, error) { return nil, nil })
}

type constSource struct{}

func (constSource) Next(context.Context) (device.Block, error) { return device.Block{}, io.EOF }

// TestRegistryFile: file: opens a raw recording (with its sidecar, or
// with Options.Channels), a wire capture, and refuses a raw file it
// cannot describe with an ErrSpec error.
func TestRegistryFile(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	samples := make([]int16, 4*100)
	for i := range samples {
		samples[i] = int16(i)
	}
	raw := filepath.Join(dir, "x.dat")
	buf := make([]byte, 2*len(samples))
	for i, v := range samples {
		buf[2*i], buf[2*i+1] = byte(v), byte(v>>8)
	}
	if err := os.WriteFile(raw, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := device.Open(ctx, "file:"+raw, device.Options{})
	if !errors.Is(err, device.ErrSpec) || !strings.Contains(err.Error(), "needs --meta") {
		t.Fatalf("raw file without a layout: %v, want ErrSpec", err)
	}
	src, err := device.Open(ctx, "file:"+raw, device.Options{Channels: 4, Rate: 1000, Gain: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	b, err := src.Next(ctx)
	if err != nil || b.Channels != 4 || b.Rate != 1000 || b.Gain != 0.5 || b.Samples[5] != 5 {
		t.Fatalf("first block %+v, %v", b, err)
	}
	if n := device.Name(src, "x"); n != "file:"+raw {
		t.Errorf("Name = %q", n)
	}
	if err := device.Close(src); err != nil {
		t.Error(err)
	}

	// A wire capture: recognised by its sync word, with link statistics.
	var w []byte
	w = device.AppendData(w, 0, 1000, 1, 2, []int16{1, 2, 3, 4}, 0)
	wire := filepath.Join(dir, "cap.bin")
	if err := os.WriteFile(wire, w, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err = device.Open(ctx, "file:"+wire, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer device.Close(src)
	if b, err := src.Next(ctx); err != nil || b.Channels != 2 || b.Len() != 2 {
		t.Fatalf("wire block %+v, %v", b, err)
	}
	st, ok := src.(device.StatsReporter)
	if !ok || st.Stats().Frames != 1 {
		t.Errorf("wire capture: stats %v", ok)
	}
	if _, ok := src.(device.Commander); ok {
		t.Error("a file takes commands")
	}
	if _, err := device.Open(ctx, "file:"+wire, device.Options{Meta: "x.json"}); !errors.Is(err, device.ErrSpec) {
		t.Errorf("--meta with a wire capture: %v", err)
	}
}
