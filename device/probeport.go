package device

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// PortProbe is a headstage's answer, on a serial port, to an info
// command and a ping (spikeline devices --probe).
type PortProbe struct {
	Info  string  `json:"info,omitempty"`     // the device's own description (JSON from spikeline devices)
	Rate  uint32  `json:"rate,omitempty"`     // sample rate now, Hz
	Chans uint16  `json:"channels,omitempty"` // enabled channels now
	RTTMs float64 `json:"rtt_ms,omitempty"`   // command round trip
	Error string  `json:"error,omitempty"`    // why it did not answer
}

// ProbePort opens the serial port at path and asks the device for its
// info and a ping, each within timeout; what failed is in the Error field.
func ProbePort(ctx context.Context, path string, timeout time.Duration) *PortProbe {
	res := &PortProbe{}
	src, err := OpenSerial(ctx, SerialConfig{Path: path, CommandTimeout: timeout, Queue: 16})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer src.Close()
	r, err := src.Command(ctx, Command{Op: OpInfo})
	if err != nil {
		res.Error = strings.TrimPrefix(err.Error(), "device: ")
		return res
	}
	res.Info, res.Rate, res.Chans = r.Message, r.Rate, r.Channels
	rtt, err := src.Ping(ctx)
	if err != nil {
		res.Error = strings.TrimPrefix(err.Error(), "device: ")
		return res
	}
	res.RTTMs = float64(rtt.Microseconds()) / 1000
	return res
}

// String summarises a probe for the table.
func (p *PortProbe) String() string {
	switch {
	case p == nil:
		return "-"
	case p.Error != "" && p.Info == "":
		return "no answer: " + p.Error
	}
	s := fmt.Sprintf("%d ch at %d Hz", p.Chans, p.Rate)
	var info struct {
		Name string `json:"name"`
	}
	if json.Unmarshal([]byte(p.Info), &info) == nil && info.Name != "" {
		s = info.Name + ", " + s
	} else if p.Info != "" {
		s = strings.TrimSpace(p.Info) + ", " + s
	}
	if p.Error != "" {
		return s + " (ping: " + p.Error + ")"
	}
	return s + fmt.Sprintf(", rtt %.2f ms", p.RTTMs)
}
