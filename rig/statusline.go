package rig

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spikeline/spikeline/stream/schema"
)

// statusLine prints the live one-line status of 'spikeline run' on stdout:
// rewritten in place every status period on a terminal, a full line every
// statusLineEvery otherwise (logs, pipes, CI).
type statusLine struct {
	w        io.Writer
	terminal bool
	last     time.Time
	drawn    bool // a line is on the terminal without a newline
}

const statusLineEvery = 10 * time.Second

func newStatusLine(w io.Writer) *statusLine {
	sl := &statusLine{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			sl.terminal = true
		}
	}
	return sl
}

// show prints st (and the decoder R² per output, nil before the decoder
// runs).
func (sl *statusLine) show(st *schema.Status, channels int, units int, outputs []string, r2 []float64, calibrating bool) {
	now := time.Now()
	if !sl.terminal && now.Sub(sl.last) < statusLineEvery {
		return
	}
	sl.last = now
	var b strings.Builder
	fmt.Fprintf(&b, "spikeline: %7.1f s | %d ch | %.1f kS/s", float64(st.Sample)/max(st.Rate, 1), channels, st.SampleRate/1000)
	if st.Rate > 0 {
		fmt.Fprintf(&b, " (%.2f×)", st.SampleRate/st.Rate)
	}
	fmt.Fprintf(&b, " | %.0f spikes/s | %d units | drops %d | p99 %.2f ms", st.SpikeRate, units,
		st.Link.LostSamples+st.PipelineDrops+st.PublishDropped+st.PublishErrors, float64(st.LatencyP99)/1e6)
	switch {
	case r2 != nil:
		b.WriteString(" | R²")
		for i, name := range outputs {
			if i < len(r2) {
				if math.IsNaN(r2[i]) {
					fmt.Fprintf(&b, " %s -", name)
				} else {
					fmt.Fprintf(&b, " %s %.2f", name, r2[i])
				}
			}
		}
	case calibrating:
		b.WriteString(" | decoder calibrating")
	}
	if sl.terminal {
		fmt.Fprintf(sl.w, "\r\033[K%s", b.String())
		sl.drawn = true
	} else {
		fmt.Fprintln(sl.w, b.String())
	}
}

// end moves past a line drawn in place, before other output.
func (sl *statusLine) end() {
	if sl.drawn {
		fmt.Fprintln(sl.w)
		sl.drawn = false
	}
}
