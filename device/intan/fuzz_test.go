package intan_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/spikeline/spikeline/device/intan"
)

// FuzzFile drives arbitrary bytes through OpenFile and Next, seeded with
// the test files: an error, never a panic, a hang or a huge allocation.
func FuzzFile(f *testing.F) {
	for _, name := range []string{"v1_0.rhd", "v1_2.rhd", "v3_4.rhd", "v1_0.rhs", "gap.rhd"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.rhd")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := intan.OpenFile(p, intan.FileConfig{BlockSamples: 50})
		if err != nil {
			return
		}
		defer src.Close()
		for range 20 {
			if _, err := src.Next(context.Background()); err != nil {
				return
			}
		}
	})
}
