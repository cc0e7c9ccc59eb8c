package probe

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	p, err := ReadCSV(strings.NewReader("channel,x_um,y_um\n2,0,40\n0,0,0\n1,16,20\n"), "probe.csv")
	if err != nil {
		t.Fatal(err)
	}
	if p.Channels() != 3 || p.Positions[0] != [2]float64{0, 0} || p.Positions[1] != [2]float64{16, 20} || p.Positions[2] != [2]float64{0, 40} {
		t.Fatalf("positions %v", p.Positions)
	}
	p, err = ReadCSV(strings.NewReader("x,y,shank\n0,0,a\n0,25,a\n"), "probe.csv")
	if err != nil || p.Positions[1] != [2]float64{0, 25} {
		t.Fatalf("in order: %v %v", p, err)
	}
	if err := p.Check(3); !errors.Is(err, ErrCount) || !strings.Contains(err.Error(), "probe: probe.csv: 2 channels, the recording has 3") {
		t.Fatalf("Check: %v", err)
	}
	tests := []struct {
		name, in string
		kind     error
		msg      string
	}{
		{"no y", "x,z\n0,0\n", ErrFormat, "probe.csv:1: need columns x and y"},
		{"bad x", "x,y\n0,0\nabc,3\n", ErrNumber, `probe.csv:3: x = "abc", want a number`},
		{"nan", "x,y\n0,0\nNaN,3\n", ErrNumber, `probe.csv:3: x = "NaN"`},
		{"twice", "channel,x,y\n0,0,0\n0,1,1\n", ErrDuplicate, "probe.csv:3: channel 0 given twice (first on line 2)"},
		{"missing", "channel,x,y\n0,0,0\n2,1,1\n", ErrMissing, "probe.csv: channel 1 missing"},
		{"negative", "channel,x,y\n-1,0,0\n", ErrCount, "probe.csv:2: channel -1 outside"},
		{"bad channel", "channel,x,y\n1.5,0,0\n", ErrNumber, `probe.csv:2: channel = "1.5"`},
		{"same place", "x,y\n0,0\n5,5\n0,0\n", ErrPlace, "probe.csv:4: channels 0 and 2 share position"},
		{"short row", "channel,x,y\n0,1\n", ErrFormat, "probe.csv:2: 2 fields"},
		{"empty", "x,y\n", ErrCount, "no channels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(tt.in), "probe.csv")
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v %q", err, tt.kind, tt.msg)
			}
		})
	}
}

// probeJSON is a probeinterface file as probeinterface 0.3.2 writes one
// (trimmed to what matters), contacts wired out of order.
const probeJSON = `{
    "specification": "probeinterface",
    "version": "0.3.2",
    "probes": [
        {
            "ndim": 2,
            "si_units": "um",
            "annotations": {"name": "test", "manufacturer": "x"},
            "contact_positions": [
                [0.0, 0.0],
                [22.0, 12.5],
                [0.0, 25.0]
            ],
            "contact_shapes": ["circle", "circle", "circle"],
            "device_channel_indices": [
                1,
                0,
                2
            ]
        }
    ]
}
`

func TestReadJSON(t *testing.T) {
	p, err := ReadJSON(strings.NewReader(probeJSON), "probe.json")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]float64{{22, 12.5}, {0, 0}, {0, 25}}
	for c, q := range want {
		if p.Positions[c] != q {
			t.Fatalf("positions %v, want %v", p.Positions, want)
		}
	}
	tests := []struct {
		name, from, to string
		kind           error
		msg            string
	}{
		{"duplicate", "                2\n            ]", "                1\n            ]", ErrDuplicate, "probe.json:18: channel 1 given twice"},
		{"missing", "                2\n            ]", "                3\n            ]", ErrMissing, "probe.json: channel 2 missing"},
		{"not a number", `[22.0, 12.5]`, `[22.0, "a"]`, ErrNumber, `probe.json:11: probe 0 contact 1: position [22.0,"a"] is not a pair`},
		{"null", `[22.0, 12.5]`, `[null, 12.5]`, ErrNumber, `probe.json:11:`},
		{"three", `[22.0, 12.5]`, `[22.0, 12.5, 1]`, ErrNumber, `probe.json:11:`},
		{"same place", `[0.0, 25.0]`, `[0.0, 0.0]`, ErrPlace, "probe.json:18: channels 1 and 2 share position (0, 0)"},
		{"count", "                2\n            ]", "                2, 3\n            ]", ErrCount, "probe.json:15: probe 0: 4 device_channel_indices for 3 contact_positions"},
		{"syntax", `"ndim": 2,`, `"ndim": 2`, ErrFormat, "probe.json:7:"},
		{"3-D", `"ndim": 2`, `"ndim": 3`, ErrFormat, "probe.json:6: probe 0 has ndim 3"},
		{"units", `"si_units": "um"`, `"si_units": "ft"`, ErrFormat, `probe.json:7: probe 0: si_units "ft"`},
		{"channel not whole", "                1,\n                0,", "                1.5,\n                0,", ErrNumber, "probe.json:16: probe 0 contact 0: device channel 1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Replace(probeJSON, tt.from, tt.to, 1)
			if in == probeJSON {
				t.Fatalf("%q not in the test file", tt.from)
			}
			_, err := ReadJSON(strings.NewReader(in), "probe.json")
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v %q", err, tt.kind, tt.msg)
			}
		})
	}
	// Unconnected contacts (-1) are left out; mm are converted.
	in := strings.Replace(strings.Replace(probeJSON, "                2\n", "                -1\n", 1), `"um"`, `"mm"`, 1)
	p, err = ReadJSON(strings.NewReader(in), "probe.json")
	if err != nil || p.Channels() != 2 || p.Positions[0] != [2]float64{22000, 12500} {
		t.Fatalf("unconnected contact: %v %v", p, err)
	}
	if _, err := ReadJSON(strings.NewReader(`{"probes": []}`), "p.json"); !errors.Is(err, ErrFormat) {
		t.Fatalf("no probes: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	p, err := Builtin("neuropixels1", 384)
	if err != nil {
		t.Fatal(err)
	}
	var j, c bytes.Buffer
	if err := p.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	pj, err := ReadJSON(&j, "np.json")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ReadCSV(&c, "np.csv")
	if err != nil {
		t.Fatal(err)
	}
	for ch := range p.Positions {
		if pj.Positions[ch] != p.Positions[ch] || pc.Positions[ch] != p.Positions[ch] {
			t.Fatalf("channel %d: %v, json %v, csv %v", ch, p.Positions[ch], pj.Positions[ch], pc.Positions[ch])
		}
	}
}

func TestBuiltin(t *testing.T) {
	for _, tt := range []struct {
		name     string
		channels int
		ch       int
		at       [2]float64
	}{
		{"linear", 16, 3, [2]float64{0, 60}},
		{"linear:25", 16, 3, [2]float64{0, 75}},
		{"utah", 100, 11, [2]float64{400, 400}},
		{"utah", 96, 0, [2]float64{400, 0}},
		{"utah", 96, 95, [2]float64{3200, 3600}},
		{"thread", 1024, 33, [2]float64{200, 50}},
		{"neuropixels1", 384, 0, [2]float64{43, 20}},
		{"neuropixels1", 384, 383, [2]float64{27, 3840}},
	} {
		p, err := Builtin(tt.name, tt.channels)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if p.Channels() != tt.channels || p.Positions[tt.ch] != tt.at {
			t.Fatalf("%s %d: %d channels, channel %d at %v, want %v", tt.name, tt.channels, p.Channels(), tt.ch, p.Positions[tt.ch], tt.at)
		}
	}
	for _, tt := range []struct {
		name     string
		channels int
		msg      string
	}{
		{"utah", 128, "at most 100"},
		{"thread", 40, "not a multiple of 32"},
		{"neuropixels1", 32, "384 channels"},
		{"linear:-3", 4, "pitch"},
		{"utah:3", 4, "takes no parameter"},
		{"tetrode", 4, "unknown layout"},
	} {
		if _, err := Builtin(tt.name, tt.channels); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Fatalf("%s %d: %v, want %q", tt.name, tt.channels, err, tt.msg)
		}
	}
}

func TestNeighbours(t *testing.T) {
	p, err := ReadCSV(strings.NewReader("x,y\n0,0\n22,12.5\n0,25\n22,37.5\n0,50\n0,100\n"), "p.csv")
	if err != nil {
		t.Fatal(err)
	}
	nb := p.Neighbours(50, 0)
	want := [][]int{{0, 2, 1, 3, 4}, {1, 3, 0, 2, 4}, {2, 0, 4, 1, 3}, {3, 1, 2, 4, 0}, {4, 2, 3, 1, 0, 5}, {5, 4}}
	for c := range want {
		if !equal(nb[c], want[c]) {
			t.Fatalf("channel %d: neighbours %v, want %v", c, nb[c], want[c])
		}
	}
	if nb := p.Neighbours(50, 3); !equal(nb[4], []int{4, 2, 3}) {
		t.Fatalf("limited: %v", nb[4])
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "probe.json")
	if err := os.WriteFile(path, []byte(probeJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := Open(path, 3); err != nil || p.Channels() != 3 {
		t.Fatalf("Open json: %v %v", p, err)
	}
	if _, err := Open(path, 32); !errors.Is(err, ErrCount) || !strings.Contains(err.Error(), path+": 3 channels, the recording has 32") {
		t.Fatalf("count: %v", err)
	}
	csvPath := filepath.Join(dir, "chans")
	if err := os.WriteFile(csvPath, []byte("channel,x_um,y_um\n0,0,0\n1,0,20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := Open(csvPath, 2); err != nil || p.Positions[1] != [2]float64{0, 20} {
		t.Fatalf("Open csv: %v %v", p, err)
	}
	if p, err := Open("Linear:10", 4); err != nil || p.Positions[3] != [2]float64{0, 30} {
		t.Fatalf("Open built-in: %v %v", p, err)
	}
	if _, err := Open(filepath.Join(dir, "nope.json"), 2); err == nil {
		t.Fatal("missing file opened")
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add("channel,x_um,y_um\n2,0,40\n0,0,0\n1,16,20\n")
	f.Add("x,y\n0,0\n0,25\n")
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ReadCSV(strings.NewReader(in), "fuzz.csv")
		if err == nil {
			if _, err := New("again", p.Positions); err != nil {
				t.Fatalf("accepted positions New refuses: %v", err)
			}
		}
	})
}

func FuzzReadJSON(f *testing.F) {
	f.Add(probeJSON)
	f.Add(`{"probes":[{"contact_positions":[[0,0],[1,1]]}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ReadJSON(strings.NewReader(in), "fuzz.json")
		if err == nil {
			if _, err := New("again", p.Positions); err != nil {
				t.Fatalf("accepted positions New refuses: %v", err)
			}
			var b bytes.Buffer
			if err := p.WriteJSON(&b); err != nil {
				t.Fatal(err)
			}
			q, err := ReadJSON(&b, "again.json")
			if err != nil || q.Channels() != p.Channels() {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}
