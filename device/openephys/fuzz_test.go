package openephys

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen drives arbitrary structure.oebin and sample_numbers.npy bytes
// through Open and Next: an error, never a panic or a hang.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"GUI version":"0.6.7","continuous":[{"folder_name":"s/","sample_rate":30000,"num_channels":2,"channels":[{"channel_name":"CH1","bit_volts":0.195,"units":"uV"},{"channel_name":"CH2","bit_volts":0.195,"units":"uV"}]}]}`),
		[]byte("\x93NUMPY\x01\x00\x76\x00{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }                                                           \n\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte(`{"continuous":[{"folder_name":"s","sample_rate":1e9,"num_channels":1,"channels":[{}]}]}`), []byte("\x93NUMPY\x03\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, oebin, numbers []byte) {
		dir := t.TempDir()
		cont := filepath.Join(dir, "continuous", "s")
		if err := os.MkdirAll(cont, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, StructureFile), oebin, 0o644)
		os.WriteFile(filepath.Join(cont, SampleNumbersFile), numbers, 0o644)
		os.WriteFile(filepath.Join(cont, DataFile), make([]byte, 12), 0o644)
		src, err := Open(dir, Config{BlockSamples: 2})
		if err != nil {
			return
		}
		defer src.Close()
		for range 10 {
			if _, err := src.Next(context.Background()); err != nil {
				return
			}
		}
	})
}
