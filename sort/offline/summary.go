package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"

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
// channels with the sorter's own filter (sort.Filter, float32) and common
// reference (sort.Referencer, on the rows some waveform needs), and
// cuts the picked waveforms, before samples before the spike sample and
// after after it.
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
	// The channels filtered: the shown ones, gathered row by row into a
	// block of their own, or all when a common reference needs them.
	ref := cfg.Reference
	gather := ref == sort.RefNone
	col := shownCh // column of each shown channel in the filtered rows
	nf := len(shownCh)
	if !gather {
		nf = nch
	} else {
		col = make([]int, len(shownCh))
		for i := range col {
			col[i] = i
		}
	}
	filt := sort.NewFilter(secs, nf)
	var refs []*sort.Referencer // one per core
	if !gather {
		for range runtime.GOMAXPROCS(0) {
			refs = append(refs, sort.NewReferencer(ref))
		}
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

	src, err := o.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	var bar *Progress
	if o.Progress != nil {
		bar = NewProgress(o.Progress, "plot", src.Samples(), o.Rate)
	}
	ahead := ReadAhead(ctx, src)
	defer ahead.Stop()
	var shown []int16 // the shown channels' samples, gathered
	var out []float32
	var need []int // rows of the block some waveform needs
	next := 0      // next pick
	var t uint64
	for next < len(picks) {
		b, err := ahead.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n := b.Len()
		in := b.Samples
		if gather {
			shown = slices.Grow(shown[:0], n*nf)[:n*nf]
			in = shown
			for k := range n {
				row := b.Samples[k*nch : (k+1)*nch]
				dst := in[k*nf : (k+1)*nf]
				for i, c := range shownCh {
					dst[i] = row[c]
				}
			}
		}
		if t == 0 {
			for c := range nf {
				filt.Settle(c, float32(in[c])*float32(b.Gain))
			}
		}
		out = slices.Grow(out[:0], n*nf)[:n*nf]
		filt.ProcessInt16(in, float32(b.Gain), out)
		if !gather {
			// The reference, on the rows within some pick's window (a
			// pick's window holds row u when its sample is within
			// [u-after, u+before]), on all cores.
			need = need[:0]
			p := next
			for k := range n {
				u := t + uint64(k)
				for p < len(picks) && picks[p].sample+uint64(after) < u {
					p++
				}
				if p < len(picks) && picks[p].sample <= u+uint64(before) {
					need = append(need, k)
				}
			}
			referenceRows(out, nf, need, refs)
		}
		for k := range n {
			row := out[k*nf : (k+1)*nf]
			for i, c := range col {
				ring[i][t&mask] = row[c]
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

// referenceRows subtracts the common reference from the given rows of x
// (nf values each), on up to len(refs) cores, rows in order on each (the
// median's fast path predicts a row from the one before).
func referenceRows(x []float32, nf int, rows []int, refs []*sort.Referencer) {
	workers := min(len(refs), (len(rows)+255)/256)
	var wg sync.WaitGroup
	for w := range workers {
		part := rows[w*len(rows)/workers : (w+1)*len(rows)/workers]
		wg.Go(func() {
			r := refs[w]
			for _, k := range part {
				r.Row(x[k*nf : (k+1)*nf])
			}
		})
	}
	wg.Wait()
}
