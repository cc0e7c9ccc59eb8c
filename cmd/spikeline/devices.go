package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spikeline/spikeline/device"
)

func init() {
	register(command{
		name:    "devices",
		summary: "list serial/USB ports (USB VID:PID, serial number, product)",
		run:     runDevices,
	})
}

// runDevices lists the host's serial ports as a table or as JSON.
func runDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("devices", stderr)
	asJSON := fs.Bool("json", false, "print the list as a JSON array instead of a table")
	usbOnly := fs.Bool("usb", false, "list only USB serial devices")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spikeline devices [--json] [--usb]")
		fmt.Fprintln(stderr, "\nLists serial ports with their USB vendor:product IDs, serial numbers and")
		fmt.Fprintln(stderr, "product strings. Open one with --serial PATH or --usb VID:PID[,SERIAL].")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	ports, err := device.ListPorts()
	if err != nil {
		return err
	}
	if *usbOnly {
		kept := ports[:0]
		for _, p := range ports {
			if p.USB {
				kept = append(kept, p)
			}
		}
		ports = kept
	}
	return writePorts(stdout, ports, *asJSON)
}

// writePorts prints ports as an aligned table or a JSON array.
func writePorts(w io.Writer, ports []device.PortInfo, asJSON bool) error {
	if asJSON {
		if ports == nil {
			ports = []device.PortInfo{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ports)
	}
	if len(ports) == 0 {
		_, err := fmt.Fprintln(w, "no serial ports found")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tVID:PID\tSERIAL\tMANUFACTURER\tPRODUCT")
	for _, p := range ports {
		id := "-"
		if p.USB {
			id = p.VID + ":" + p.PID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, id, dash(p.SerialNumber), dash(p.Manufacturer), dash(p.Product))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
