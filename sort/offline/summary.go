package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
	"github.com/spikeline/spikeline/plots"
	"github.com/spikeline/spikeline/sort"
)

// SummaryOptions say what Summary draws and how it reads the recording.
type SummaryOptions struct {
	Name      string      // the recording, in the title
	Config    sort.Config // the sorter's: its band-pass and common reference
	Channels  int
	Rate      float64
	MaxPanels int                               // most channels drawn
	Open      func() (*device.RawSource, error) // the recording, from its start
	Progress  io.Writer                         // nil: no progress bar
}

// Summary draws summary.png to path: one panel per channel with sorted
// units (at most o.MaxPanels), faint band-passed sample waveforms of each unit and
// its template on top, in one colour per unit.
func Summary(ctx context.Context, path string, r Result, o SummaryOptions) error {
	panels, shown, withUnits, nUnits := plots.ChoosePanels(r.Spikes, r.Templates, o.MaxPanels)
	rate := o.Rate
	pre := int(math.Round(0.6e-3 * rate))
	post := int(math.Round(1.2e-3 * rate))
	for _, t := range r.Templates {
		pre = max(pre, t.Pre)
		post = max(post, len(t.Waveform)-t.Pre-1)
	}
	margin := int(math.Round(0.3e-3 * rate)) // search room to align waveforms on the template
	if err := cutWaves(ctx, panels, pre+margin, post+margin, o); err != nil {
		return err
	}
	for _, p := range panels {
		for _, u := range p.Units {
			plots.AlignWaves(u, pre, post, margin)
		}
	}
	title := fmt.Sprintf("spikeline sort: %s — %d units on %d channels", o.Name, nUnits, withUnits)
	if shown < withUnits {
		title += fmt.Sprintf(" (showing the %d busiest)", shown)
	}
	return plots.Summary(path, title, panels, r.Noise, pre, post, rate)
}

// cutWaves reads the recording once more, band-passes the shown
// channels as the sorter does (same Butterworth sections, same common
// reference) and cuts the picked waveforms, before samples before the
// spike sample and after after it.
func cutWaves(ctx context.Context, panels []*plots.Panel, before, after int, o SummaryOptions) error {
	if len(panels) == 0 {
		return nil
	}
	type pick struct {
		sample uint64
		slot   int // index into shown channels
		unit   *plots.PanelUnit
	}
	var picks []pick
	var shownCh []int
	for i, p := range panels {
		shownCh = append(shownCh, p.Channel)
		for _, u := range p.Units {
			for _, s := range u.Picks {
				picks = append(picks, pick{s, i, u})
			}
		}
	}
	slices.SortFunc(picks, func(a, b pick) int { return cmp.Compare(a.sample, b.sample) })

	cfg := o.Config
	low, high, order := cfg.Low, cfg.High, cfg.Order
	if low == 0 {
		low = 300
	}
	if high == 0 {
		high = 6000
	}
	if order == 0 {
		order = 3
	}
	high = math.Min(high, 0.45*o.Rate)
	secs, err := dsp.Butterworth(order, low, high, o.Rate)
	if err != nil {
		return err
	}
	nch := o.Channels
	// Channels filtered: the shown ones, or all when a common reference
	// must be subtracted.
	filtered := shownCh
	if cfg.Reference != sort.RefNone {
		filtered = make([]int, nch)
		for c := range filtered {
			filtered[c] = c
		}
	}
	slotOf := make([]int, nch) // shown slot of a channel, -1 if not shown
	for c := range slotOf {
		slotOf[c] = -1
	}
	for i, c := range shownCh {
		slotOf[c] = i
	}
	state := make([][]float64, len(filtered)) // 2 per section
	for i := range state {
		state[i] = make([]float64, 2*len(secs))
	}
	ringLen := 1
	for ringLen < 2*(before+after+1)+8192 {
		ringLen <<= 1
	}
	mask := uint64(ringLen - 1)
	ring := make([][]float32, len(shownCh))
	for i := range ring {
		ring[i] = make([]float32, ringLen)
	}
	cur := make([]float64, len(filtered))
	cols := make([][]float64, len(filtered))

	src, err := o.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	var bar *Progress
	if o.Progress != nil {
		bar = NewProgress(o.Progress, "plot", src.Samples(), o.Rate)
	}
	next := 0 // next pick
	var t uint64
	for next < len(picks) {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		// Filter channel by channel over the whole block (state in
		// registers), then reference and store sample by sample.
		n := b.Len()
		for i, c := range filtered {
			col := cols[i]
			if cap(col) < n {
				col = make([]float64, n)
			}
			col = col[:n]
			for k := range n {
				col[k] = float64(b.Samples[k*nch+c]) * b.Gain
			}
			st := state[i]
			for si, sec := range secs {
				z1, z2 := st[2*si], st[2*si+1]
				for k, x := range col {
					y := sec.B0*x + z1
					z1 = sec.B1*x - sec.A1*y + z2
					z2 = sec.B2*x - sec.A2*y
					col[k] = y
				}
				st[2*si], st[2*si+1] = z1, z2
			}
			cols[i] = col
		}
		for k := range n {
			var ref float64
			switch cfg.Reference {
			case sort.RefAverage:
				for i := range filtered {
					ref += cols[i][k]
				}
				ref /= float64(len(filtered))
			case sort.RefMedian:
				for i := range filtered {
					cur[i] = cols[i][k]
				}
				slices.Sort(cur)
				ref = cur[len(cur)/2]
			}
			for i, c := range filtered {
				if s := slotOf[c]; s >= 0 {
					ring[s][t&mask] = float32(cols[i][k] - ref)
				}
			}
			t++
			// Cut every pick whose window is complete.
			for next < len(picks) && picks[next].sample+uint64(after) < t {
				p := picks[next]
				next++
				if p.sample < uint64(before) || t-(p.sample-uint64(before)) > uint64(ringLen) {
					continue
				}
				w := make([]float32, before+after+1)
				for i := range w {
					w[i] = ring[p.slot][(p.sample-uint64(before)+uint64(i))&mask]
				}
				p.unit.Waves = append(p.unit.Waves, w)
			}
		}
		bar.Update(t, false)
	}
	bar.Update(t, true)
	return nil
}
