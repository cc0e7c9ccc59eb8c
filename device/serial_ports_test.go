package device

import (
	"errors"
	"strings"
	"testing"
)

func TestParseUSBID(t *testing.T) {
	for _, tc := range []struct {
		in       string
		vid, pid string
		ok       bool
	}{
		{"2e8a:000a", "2E8A", "000A", true},
		{"0x0483:0x5740", "0483", "5740", true},
		{"403:6001", "0403", "6001", true},
		{"2e8a", "", "", false},
		{"2e8a:xyz1", "", "", false},
		{"12345:0001", "", "", false},
		{":0001", "", "", false},
	} {
		vid, pid, err := ParseUSBID(tc.in)
		if (err == nil) != tc.ok || vid != tc.vid || pid != tc.pid {
			t.Errorf("ParseUSBID(%q) = %q, %q, %v", tc.in, vid, pid, err)
		}
	}
}

func TestMatchPort(t *testing.T) {
	ports := []PortInfo{
		{Name: "/dev/ttyS0"},
		{Name: "/dev/ttyACM0", USB: true, VID: "2E8A", PID: "000A", SerialNumber: "A1"},
		{Name: "/dev/ttyACM1", USB: true, VID: "2E8A", PID: "000A", SerialNumber: "B2"},
		{Name: "/dev/ttyUSB0", USB: true, VID: "0403", PID: "6001", SerialNumber: "FT1"},
	}
	for _, tc := range []struct {
		vid, pid, serial string
		want             string
		err              string
	}{
		{"0403", "6001", "", "/dev/ttyUSB0", ""},
		{"403", "", "", "/dev/ttyUSB0", ""},
		{"2e8a", "000a", "B2", "/dev/ttyACM1", ""},
		{"", "", "A1", "/dev/ttyACM0", ""},
		{"2e8a", "000a", "", "", "2 serial ports match VID 2E8A, PID 000A: /dev/ttyACM0 (serial A1), /dev/ttyACM1 (serial B2)"},
		{"1234", "", "", "", "no matching serial port: VID 1234"},
	} {
		got, err := matchPort(ports, tc.vid, tc.pid, tc.serial)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("matchPort(%s:%s %s) = %q, %v; want %q", tc.vid, tc.pid, tc.serial, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("matchPort(%s:%s %s) error %v; want %q", tc.vid, tc.pid, tc.serial, err, tc.err)
		}
	}
	if _, err := matchPort(nil, "1234", "", ""); !errors.Is(err, ErrNoPort) {
		t.Errorf("no ports: %v, want ErrNoPort", err)
	}
}

// TestListPorts runs the real enumeration: it must not fail on a host
// without USB serial devices, and what it lists must be consistent.
func TestListPorts(t *testing.T) {
	ports, err := ListPorts()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ports {
		if p.Name == "" || (!p.USB && (p.VID != "" || p.PID != "")) || (i > 0 && ports[i-1].Name > p.Name) {
			t.Errorf("port %d: %+v", i, p)
		}
	}
	t.Logf("%d ports: %+v", len(ports), ports)
}
