package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spikeline/spikeline/device"
)

func init() {
	register(command{
		name:    "devices",
		summary: "list serial/USB ports (USB VID:PID, serial number, product); --probe asks headstages who they are",
		run:     runDevices,
	})
}

// portReport is one line of "spikeline devices": a port and, when probed,
// what the device on it answered.
type portReport struct {
	device.PortInfo
	Probe *device.PortProbe `json:"probe,omitempty"`
}

// runDevices lists the host's serial ports as a table or as JSON.
func runDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("devices", stderr)
	asJSON := fs.Bool("json", false, "print the list as a JSON array instead of a table")
	usbOnly := fs.Bool("usb", false, "list only USB serial devices")
	probe := fs.Bool("probe", false, "open each USB serial port and ask the device for its info and a ping (sends wire-protocol commands: only for ports of headstages)")
	var extra []string
	fs.Func("port", "also list (and with --probe, probe) this port path, e.g. an emulator's pty link; repeatable", func(s string) error {
		if s == "" {
			return fmt.Errorf("empty path")
		}
		extra = append(extra, s)
		return nil
	})
	timeout := fs.Duration("timeout", 500*time.Millisecond, "with --probe: how long to wait for each reply")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline devices [--json] [--usb] [--probe [--timeout D]] [--port PATH]...")
		fmt.Fprintln(stderr, "\nLists serial ports with their USB vendor:product IDs, serial numbers and")
		fmt.Fprintln(stderr, "product strings. With --probe, asks each USB port's device for its description")
		fmt.Fprintln(stderr, "(the wire protocol's info command) and measures a ping.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageErrorf("--timeout %v: want > 0", *timeout)
	}
	ports, err := device.ListPorts()
	if err != nil {
		return err
	}
	reports := make([]portReport, 0, len(ports)+len(extra))
	for _, p := range ports {
		if !*usbOnly || p.USB {
			reports = append(reports, portReport{PortInfo: p})
		}
	}
	for _, path := range extra {
		reports = append(reports, portReport{PortInfo: device.PortInfo{Name: path}})
	}
	if *probe {
		for i := range reports {
			if reports[i].USB || i >= len(reports)-len(extra) {
				reports[i].Probe = device.ProbePort(ctx, reports[i].Name, *timeout)
			}
		}
	}
	return writeReports(stdout, reports, *asJSON)
}

// writePorts prints ports as an aligned table or a JSON array.
func writePorts(w io.Writer, ports []device.PortInfo, asJSON bool) error {
	reports := make([]portReport, len(ports))
	for i, p := range ports {
		reports[i].PortInfo = p
	}
	return writeReports(w, reports, asJSON)
}

// writeReports prints port reports as an aligned table or a JSON array.
func writeReports(w io.Writer, reports []portReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	if len(reports) == 0 {
		_, err := fmt.Fprintln(w, "no serial ports found")
		return err
	}
	probed := false
	for _, r := range reports {
		probed = probed || r.Probe != nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "PORT\tVID:PID\tSERIAL\tMANUFACTURER\tPRODUCT"
	if probed {
		head += "\tDEVICE"
	}
	fmt.Fprintln(tw, head)
	for _, r := range reports {
		id := "-"
		if r.USB {
			id = r.VID + ":" + r.PID
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", r.Name, id, dash(r.SerialNumber), dash(r.Manufacturer), dash(r.Product))
		if probed {
			line += "\t" + r.Probe.String()
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
