package device

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.bug.st/serial/enumerator"
)

// PortInfo describes one serial port found on the host. The USB fields are
// empty for ports that are not USB devices (a built-in UART, a
// pseudo-terminal).
type PortInfo struct {
	Name         string `json:"name"`                    // path to open, e.g. /dev/ttyACM0
	USB          bool   `json:"usb"`                     // true for a USB serial device
	VID          string `json:"vid,omitempty"`           // USB vendor ID, 4 upper-case hex digits
	PID          string `json:"pid,omitempty"`           // USB product ID, 4 upper-case hex digits
	SerialNumber string `json:"serial_number,omitempty"` // USB iSerialNumber string
	Manufacturer string `json:"manufacturer,omitempty"`  // USB iManufacturer string
	Product      string `json:"product,omitempty"`       // USB iProduct string
}

// ErrNoPort is returned when no serial port matches a SerialConfig's USB
// identifiers.
var ErrNoPort = errors.New("device: no matching serial port")

// ListPorts lists the serial ports of the host, sorted by name, with their
// USB vendor and product IDs, serial numbers and product strings where the
// operating system reports them.
func ListPorts() ([]PortInfo, error) {
	list, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, fmt.Errorf("device: listing serial ports: %w", err)
	}
	ports := make([]PortInfo, 0, len(list))
	for _, p := range list {
		if p == nil || p.Name == "" {
			continue
		}
		ports = append(ports, PortInfo{
			Name:         p.Name,
			USB:          p.IsUSB,
			VID:          normalizeUSBID(p.VID),
			PID:          normalizeUSBID(p.PID),
			SerialNumber: p.SerialNumber,
			Manufacturer: p.Manufacturer,
			Product:      p.Product,
		})
	}
	slices.SortFunc(ports, func(a, b PortInfo) int { return strings.Compare(a.Name, b.Name) })
	return ports, nil
}

// normalizeUSBID turns "0x2e8a", "2e8a" or "2E8A" into "2E8A".
func normalizeUSBID(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	s = strings.ToUpper(s)
	for len(s) < 4 && s != "" {
		s = "0" + s
	}
	return s
}

// ParseUSBID parses "VID:PID" (hexadecimal, e.g. "2e8a:000a") into its two
// normalised halves.
func ParseUSBID(s string) (vid, pid string, err error) {
	v, p, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("device: USB ID %q: want VID:PID in hexadecimal, e.g. 2e8a:000a", s)
	}
	vid, pid = normalizeUSBID(v), normalizeUSBID(p)
	for _, id := range []string{vid, pid} {
		if len(id) != 4 || strings.Trim(id, "0123456789ABCDEF") != "" {
			return "", "", fmt.Errorf("device: USB ID %q: %q is not a 16-bit hexadecimal number", s, id)
		}
	}
	return vid, pid, nil
}

// matchPort picks the one port of ports matching the USB vendor ID, product
// ID and serial number given (empty fields match anything).
func matchPort(ports []PortInfo, vid, pid, serialNumber string) (string, error) {
	vid, pid = normalizeUSBID(vid), normalizeUSBID(pid)
	var found []PortInfo
	for _, p := range ports {
		if !p.USB {
			continue
		}
		if (vid == "" || p.VID == vid) && (pid == "" || p.PID == pid) &&
			(serialNumber == "" || p.SerialNumber == serialNumber) {
			found = append(found, p)
		}
	}
	want := describeMatch(vid, pid, serialNumber)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: %s", ErrNoPort, want)
	case 1:
		return found[0].Name, nil
	}
	names := make([]string, len(found))
	for i, p := range found {
		names[i] = p.Name
		if p.SerialNumber != "" {
			names[i] += " (serial " + p.SerialNumber + ")"
		}
	}
	return "", fmt.Errorf("device: %d serial ports match %s: %s; give a serial number or a path",
		len(found), want, strings.Join(names, ", "))
}

func describeMatch(vid, pid, serialNumber string) string {
	var parts []string
	if vid != "" {
		parts = append(parts, "VID "+vid)
	}
	if pid != "" {
		parts = append(parts, "PID "+pid)
	}
	if serialNumber != "" {
		parts = append(parts, "serial number "+serialNumber)
	}
	if len(parts) == 0 {
		return "any USB device"
	}
	return strings.Join(parts, ", ")
}
