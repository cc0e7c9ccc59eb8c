package main

import (
	"strings"
	"testing"

	"github.com/spikeline/spikeline/sort"
)

// FuzzParseConfig feeds arbitrary bytes to the --config parser: it never
// panics, and every setting it returns is a flag name built from TOML keys
// (no empty names) with a value a flag can parse as text.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("device = \"usb:2e8a:000a\"\nchannels = 64\nrate = 3e4\n[nats]\ncreds = \"x\"\nurls = [\"a\", \"b\"]\n"))
	f.Add([]byte("a = [1, 2.5, true]\n[b.c]\nd = 1979-05-27\n"))
	f.Add([]byte("x = [[1], [2]]\n"))
	f.Add([]byte("[[t]]\nk = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		settings, err := parseConfig(data)
		if err != nil {
			return
		}
		for k := range settings {
			if k == "" {
				t.Fatalf("setting with an empty name: %q", settings)
			}
		}
	})
}

// FuzzReadSpikesCSV: the spikes CSV reader (spikeline sort's spikes.csv,
// --spikes, --gt, --sorted) never panics, and every error says where.
func FuzzReadSpikesCSV(f *testing.F) {
	f.Add(sort.SpikesHeader + "\n3,30012,2,-84.50\n0,30480,31,-52.25\n")
	f.Add("sample_index,unit_id\n5,1\n")
	f.Add("unit_id,sample_index,channel\n1,2\n")
	f.Fuzz(func(t *testing.T, in string) {
		spikes, err := sort.ReadSpikesCSV(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv:") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(spikes) > strings.Count(in, "\n")+1 {
			t.Fatalf("%d spikes from %d lines", len(spikes), strings.Count(in, "\n")+1)
		}
	})
}
