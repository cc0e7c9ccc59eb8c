package device

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzRecording feeds an arbitrary sidecar and data file to
// OpenRecording: it must not panic, every Meta it accepts must be within
// the limits and re-encode to itself, and reading the recording must
// produce Blocks within the file (never more samples than it holds, never
// a Block larger than MaxBlockBytes) ending in io.EOF or a *FrameError.
func FuzzRecording(f *testing.F) {
	f.Add([]byte(`{"n_channels":2,"sample_rate":30000,"gain_uv_per_bit":0.195,"n_samples":3}`), []byte("abcdefghijkl"))
	f.Add([]byte(`{"n_channels":1,"sample_rate":1000,"gain_uv_per_bit":1,"first_sample":10,"gaps":[{"sample":11,"count":2}]}`), []byte("0123456789"))
	f.Add([]byte(`{"n_channels":3,"sample_rate":1e300,"gain_uv_per_bit":0.195}`), []byte("abcdef"))
	f.Add([]byte(`{"n_channels":2,"sample_rate":20000,"gain_uv_per_bit":0.5,"synced_samples":2,"dtype":"int16","layout":"time-major"}`), []byte("abcdefghij"))
	f.Add([]byte(`{"n_channels":2,"sample_rate":20000,"gain_uv_per_bit":0.5,"data_file":"../x"}`), []byte{})
	f.Fuzz(func(t *testing.T, sidecar, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, RecordingMeta), sidecar, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, RecordingData), data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadMeta(filepath.Join(dir, RecordingMeta))
		if err == nil {
			if CheckChannels("", "", m.Channels) != nil || CheckRate("", "", m.Rate) != nil || CheckGain("", "", m.Gain) != nil || len(m.Gaps) > MaxGaps {
				t.Fatalf("accepted out-of-range sidecar %+v", m)
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := ParseMeta(b, "re-encoded")
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("sidecar does not round-trip: %+v -> %v, %+v", m, err, m2)
			}
		}
		src, _, err := OpenRecording(dir, RawConfig{BlockSamples: 4})
		if err != nil {
			return
		}
		defer src.Close()
		var got uint64
		for i := 0; ; i++ {
			b, err := src.Next(context.Background())
			if err != nil {
				var fe *FrameError
				if !errors.Is(err, io.EOF) && !errors.As(err, &fe) {
					t.Fatalf("error %v", err)
				}
				break
			}
			if 2*len(b.Samples) > MaxBlockBytes || b.Channels != m.Channels || len(b.Samples)%b.Channels != 0 {
				t.Fatalf("block of %d samples, %d channels", len(b.Samples), b.Channels)
			}
			got += uint64(b.Len())
			if got > src.Samples() || i > len(data) {
				t.Fatalf("read %d samples of a %d-sample file", got, src.Samples())
			}
		}
	})
}
