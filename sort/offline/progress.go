package offline

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// Progress draws a progress bar on w: redrawn in place at most every
// 200 ms on a terminal, one line per tenth otherwise (logs).
type Progress struct {
	w     io.Writer
	tty   bool
	label string
	total uint64
	rate  float64
	start time.Time
	last  time.Time
	tenth int // last tenth printed, when not a terminal
}

// NewProgress returns a bar labelled label for total samples at rate Hz.
func NewProgress(w io.Writer, label string, total uint64, rate float64) *Progress {
	p := &Progress{w: w, label: label, total: total, rate: rate, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// Update shows done samples of the total; final draws the last state.
// A nil bar draws nothing.
func (p *Progress) Update(done uint64, final bool) {
	if p == nil || p.w == nil {
		return
	}
	now := time.Now()
	frac := 1.0
	if p.total > 0 {
		frac = math.Min(1, float64(done)/float64(p.total))
	}
	if p.tty {
		if !final && now.Sub(p.last) < 200*time.Millisecond {
			return
		}
	} else {
		tenth := int(frac * 10)
		if tenth <= p.tenth && (!final || p.tenth == 10) {
			return
		}
		p.tenth = max(tenth, p.tenth)
		if final {
			p.tenth = 10
		}
	}
	p.last = now
	const width = 30
	bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
	el := now.Sub(p.start).Seconds()
	speed := ""
	if el > 0 {
		speed = fmt.Sprintf(", %.1fx real time", float64(done)/p.rate/el)
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%-8s [%s] %3.0f%% %.1f of %.1f s%s\n", p.label, bar, 100*frac, float64(done)/p.rate, float64(p.total)/p.rate, speed)
		return
	}
	fmt.Fprintf(p.w, "\r%-8s [%s] %3.0f%% %.1f of %.1f s%s ", p.label, bar, 100*frac, float64(done)/p.rate, float64(p.total)/p.rate, speed)
	if final {
		fmt.Fprintln(p.w)
	}
}
