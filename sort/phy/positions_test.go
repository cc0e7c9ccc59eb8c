package phy

import (
	"strings"
	"testing"
)

func TestReadPositionsCSV(t *testing.T) {
	pos, err := ReadPositionsCSV(strings.NewReader("channel,x_um,y_um\n2,0,40\n0,0,0\n1,16,20\n"), "probe.csv", 3)
	if err != nil {
		t.Fatal(err)
	}
	if pos[0] != [2]float64{0, 0} || pos[1] != [2]float64{16, 20} || pos[2] != [2]float64{0, 40} {
		t.Fatalf("positions %v", pos)
	}
	pos, err = ReadPositionsCSV(strings.NewReader("x,y\n0,0\n0,25\n"), "probe.csv", 2)
	if err != nil || pos[1] != [2]float64{0, 25} {
		t.Fatalf("in order: %v %v", pos, err)
	}
	tests := []struct {
		name, in string
		msg      string
	}{
		{"no y", "x,z\n0,0\n", "probe.csv:1: need columns x and y"},
		{"bad x", "x,y\n0,0\nabc,3\n", "probe.csv:3: x:"},
		{"twice", "channel,x,y\n0,0,0\n0,1,1\n", "probe.csv:3: channel 0 given twice"},
		{"outside", "channel,x,y\n5,0,0\n", "probe.csv:2: channel 5 outside 0..1"},
		{"too few", "x,y\n0,0\n", "1 channel positions, the recording has 2"},
		{"same place", "x,y\n0,0\n0,0\n", "channels 0 and 1 share position"},
		{"short row", "channel,x,y\n0,1\n", "probe.csv:2: 2 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadPositionsCSV(strings.NewReader(tt.in), "probe.csv", 2)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %q", err, tt.msg)
			}
		})
	}
}

func FuzzReadPositionsCSV(f *testing.F) {
	f.Add("channel,x_um,y_um\n2,0,40\n0,0,0\n1,16,20\n", 3)
	f.Add("x,y\n0,0\n0,25\n", 2)
	f.Fuzz(func(t *testing.T, in string, channels int) {
		if channels < 0 || channels > 1024 {
			return
		}
		pos, err := ReadPositionsCSV(strings.NewReader(in), "fuzz.csv", channels)
		if err == nil && len(pos) != channels {
			t.Fatalf("%d positions for %d channels", len(pos), channels)
		}
	})
}
