package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/dsp"
	"github.com/spikeline/spikeline/sort"
)

// summaryWaves is how many sample waveforms per unit summary.png draws.
const summaryWaves = 40

// unitColors are distinct colours for the units of one channel (tab10).
var unitColors = []color.NRGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
	{188, 189, 34, 255}, {23, 190, 207, 255},
}

// panelUnit is one unit drawn in a channel panel.
type panelUnit struct {
	unit     int32
	count    int
	template *sort.Template
	picks    []uint64    // spike samples whose waveforms are drawn
	waves    [][]float32 // filtered µV, pre+post+1+2*margin samples each
}

// panel is one channel of the summary.
type panel struct {
	channel int
	units   []*panelUnit
}

// summaryPanels chooses the channels to draw (those with sorted units, at
// most maxPanels: the ones with the most sorted spikes) and up to
// summaryWaves spikes per unit spread over the recording.
func summaryPanels(spikes []sort.Spike, templates []sort.Template, maxPanels int) (panels []*panel, shown, withUnits, nUnits int) {
	byUnit := map[int32]*panelUnit{}
	chOf := map[int32]int{}
	var order []int32
	get := func(u int32) *panelUnit {
		pu, ok := byUnit[u]
		if !ok {
			pu = &panelUnit{unit: u}
			byUnit[u] = pu
			order = append(order, u)
		}
		return pu
	}
	for i := range templates {
		t := &templates[i]
		get(t.Unit).template = t
		chOf[t.Unit] = int(t.Channel)
	}
	for _, s := range spikes {
		if s.Unit == 0 {
			continue
		}
		get(s.Unit).count++
		if _, ok := chOf[s.Unit]; !ok {
			chOf[s.Unit] = int(s.Channel)
		}
	}
	byCh := map[int]*panel{}
	chSpikes := map[int]int{}
	for _, u := range order {
		ch := chOf[u]
		p, ok := byCh[ch]
		if !ok {
			p = &panel{channel: ch}
			byCh[ch] = p
		}
		p.units = append(p.units, byUnit[u])
		chSpikes[ch] += byUnit[u].count
	}
	for _, p := range byCh {
		slices.SortFunc(p.units, func(a, b *panelUnit) int { return cmp.Compare(a.unit, b.unit) })
		panels = append(panels, p)
	}
	withUnits = len(panels)
	if len(panels) > maxPanels {
		slices.SortFunc(panels, func(a, b *panel) int {
			if c := cmp.Compare(chSpikes[b.channel], chSpikes[a.channel]); c != 0 {
				return c
			}
			return cmp.Compare(a.channel, b.channel)
		})
		panels = panels[:maxPanels]
	}
	slices.SortFunc(panels, func(a, b *panel) int { return cmp.Compare(a.channel, b.channel) })

	// Pick spikes evenly through each shown unit's train.
	shownUnit := map[int32]*panelUnit{}
	for _, p := range panels {
		for _, u := range p.units {
			shownUnit[u.unit] = u
		}
	}
	seen := map[int32]int{}
	for _, s := range spikes {
		u, ok := shownUnit[s.Unit]
		if !ok || u.count == 0 {
			continue
		}
		k := seen[s.Unit]
		seen[s.Unit]++
		every := max(1, u.count/summaryWaves)
		if k%every == 0 && len(u.picks) < summaryWaves {
			u.picks = append(u.picks, s.Sample)
		}
	}
	return panels, len(panels), withUnits, len(order)
}

// writeSummary draws summary.png: one panel per channel with sorted units
// (at most --panels), faint band-passed sample waveforms of each unit and
// its template on top, in one colour per unit.
func (j *sortJob) writeSummary(ctx context.Context, path string, spikes []sort.Spike, templates []sort.Template, noise []float32, stderr io.Writer) error {
	panels, shown, withUnits, nUnits := summaryPanels(spikes, templates, j.maxPanels)
	rate := j.raw.Rate
	pre := int(math.Round(0.6e-3 * rate))
	post := int(math.Round(1.2e-3 * rate))
	for _, t := range templates {
		pre = max(pre, t.Pre)
		post = max(post, len(t.Waveform)-t.Pre-1)
	}
	margin := int(math.Round(0.3e-3 * rate)) // search room to align waveforms on the template
	if err := j.extractWaves(ctx, panels, pre+margin, post+margin, stderr); err != nil {
		return err
	}
	for _, p := range panels {
		for _, u := range p.units {
			alignWaves(u, pre, post, margin)
		}
	}
	title := fmt.Sprintf("spikeline sort: %s — %d units on %d channels", j.input, nUnits, withUnits)
	if shown < withUnits {
		title += fmt.Sprintf(" (showing the %d busiest)", shown)
	}
	return drawSummary(path, title, panels, noise, pre, post, rate)
}

// extractWaves reads the recording once more, band-passes the shown
// channels as the sorter does (same Butterworth sections, same common
// reference) and cuts the picked waveforms, before samples before the
// spike sample and after after it.
func (j *sortJob) extractWaves(ctx context.Context, panels []*panel, before, after int, stderr io.Writer) error {
	if len(panels) == 0 {
		return nil
	}
	type pick struct {
		sample uint64
		slot   int // index into shown channels
		unit   *panelUnit
	}
	var picks []pick
	var shownCh []int
	for i, p := range panels {
		shownCh = append(shownCh, p.channel)
		for _, u := range p.units {
			for _, s := range u.picks {
				picks = append(picks, pick{s, i, u})
			}
		}
	}
	slices.SortFunc(picks, func(a, b pick) int { return cmp.Compare(a.sample, b.sample) })

	cfg := j.cfg
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
	high = math.Min(high, 0.45*j.raw.Rate)
	secs, err := dsp.Butterworth(order, low, high, j.raw.Rate)
	if err != nil {
		return err
	}
	nch := j.raw.Channels
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

	src, err := j.open()
	if err != nil {
		return err
	}
	defer src.Close()
	var bar *progress
	if !j.quiet {
		bar = newProgress(stderr, "plot", src.Samples(), j.raw.Rate)
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
				p.unit.waves = append(p.unit.waves, w)
			}
		}
		bar.update(t, false)
	}
	bar.update(t, true)
	return nil
}

// alignWaves shifts the unit's waveforms (cut with margin extra samples on
// each side) by the one lag that best aligns their mean with the template
// (on its extremum if there is none), and crops them to pre+post+1.
func alignWaves(u *panelUnit, pre, post, margin int) {
	if len(u.waves) == 0 {
		return
	}
	n := pre + post + 1
	mean := make([]float64, n+2*margin)
	for _, w := range u.waves {
		for i, v := range w {
			mean[i] += float64(v)
		}
	}
	best, bestScore := 0, math.Inf(-1)
	for lag := -margin; lag <= margin; lag++ {
		var s float64
		if t := u.template; t != nil {
			for k, v := range t.Waveform {
				s += float64(v) * mean[margin+lag+pre-t.Pre+k]
			}
		} else {
			s = -mean[margin+lag+pre] // trough at the centre
		}
		if s > bestScore {
			best, bestScore = lag, s
		}
	}
	for i, w := range u.waves {
		u.waves[i] = w[margin+best : margin+best+n]
	}
}

// drawSummary lays the panels out in a grid and writes the PNG.
func drawSummary(path, title string, panels []*panel, noise []float32, pre, post int, rate float64) error {
	n := max(1, len(panels))
	cols := int(math.Ceil(math.Sqrt(float64(n) * 1.3)))
	cols = min(cols, n, 8)
	rows := (n + cols - 1) / cols
	const pw, ph = 3.2, 2.5 // panel size, inches
	W := vg.Length(pw*float64(cols)) * vg.Inch
	H := vg.Length(ph*float64(rows))*vg.Inch + figureTitleH
	img, dc := newFigure(W, H, 110, title)
	if err := drawPanelGrid(figureBody(dc), panels, cols, noise, pre, post, rate); err != nil {
		return err
	}
	if len(panels) == 0 {
		dc.FillText(figureText(13, draw.XCenter, draw.YCenter), vg.Point{X: W / 2, Y: H / 2}, "no sorted units")
	}
	return savePNG(path, img)
}

// figureTitleH is the height of the title line of newFigure.
const figureTitleH = 0.45 * vg.Inch

// newFigure returns a white W×H image at dpi dots per inch with title
// centred on its top line, and a canvas over the whole of it.
func newFigure(W, H vg.Length, dpi int, title string) (*vgimg.Canvas, draw.Canvas) {
	img := vgimg.NewWith(vgimg.UseWH(W, H), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	dc.FillText(figureText(13, draw.XCenter, draw.YTop), vg.Point{X: W / 2, Y: H - vg.Points(6)}, title)
	return img, dc
}

// figureBody is the part of a newFigure canvas below its title.
func figureBody(dc draw.Canvas) draw.Canvas { return draw.Crop(dc, 0, 0, 0, -figureTitleH) }

// figureText is the text style of figure titles and annotations: black,
// plot.DefaultFont at size points.
func figureText(size float64, x draw.XAlignment, y draw.YAlignment) draw.TextStyle {
	ts := draw.TextStyle{Color: color.Black, Font: plot.DefaultFont, Handler: plot.DefaultTextHandler, XAlign: x, YAlign: y}
	ts.Font.Size = vg.Points(size)
	return ts
}

// drawPanelGrid lays the channel panels out on c, cols to a row, and
// draws them (panelPlot). noise is the per-channel noise in µV (nil or
// short: unknown); pre and post the samples drawn around the spike.
func drawPanelGrid(c draw.Canvas, panels []*panel, cols int, noise []float32, pre, post int, rate float64) error {
	if len(panels) == 0 {
		return nil
	}
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		var sigma float64
		if p.channel < len(noise) {
			sigma = float64(noise[p.channel])
		}
		pl, err := panelPlot(p, sigma, pre, post, rate)
		if err != nil {
			return err
		}
		grid[i/cols][i%cols] = pl
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(6), PadY: vg.Points(6),
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(6)}
	canvases := plot.Align(grid, tiles, c)
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Draw(canvases[r][c])
			}
		}
	}
	return nil
}

// savePNG writes img to path as a PNG.
func savePNG(path string, img *vgimg.Canvas) error {
	f, err := device.CreateFile(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// unitColor is the colour of the i-th unit (in unit order) of a channel,
// in every figure: summary.png and the snapshot's templates and raster.
func unitColor(i int) color.NRGBA { return unitColors[i%len(unitColors)] }

// panelPlot draws one channel: faint waveforms, then templates on top.
// sigma is the channel's noise in µV (0: unknown).
func panelPlot(p *panel, sigma float64, pre, post int, rate float64) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("channel %d", p.channel)
	if sigma > 0 {
		pl.Title.Text += fmt.Sprintf("  (noise %.1f µV)", sigma)
	}
	pl.Title.TextStyle.Font.Size = vg.Points(10)
	pl.X.Label.Text = "ms"
	pl.Y.Label.Text = "µV"
	for _, ax := range []*plot.Axis{&pl.X, &pl.Y} {
		ax.Label.TextStyle.Font.Size = vg.Points(8)
		ax.Tick.Label.Font.Size = vg.Points(7)
	}
	var ticks []plot.Tick
	lo, hi := float64(-pre)/rate*1000, float64(post)/rate*1000
	for v := math.Ceil(lo*2) / 2; v <= hi+1e-9; v += 0.5 {
		label := ""
		if math.Mod(v, 1) == 0 {
			label = fmt.Sprintf("%g", v)
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
	}
	pl.X.Tick.Marker = plot.ConstantTicks(ticks)
	pl.Legend.Top = true
	pl.Legend.Left = false
	pl.Legend.TextStyle.Font.Size = vg.Points(7)
	pl.Legend.Padding = vg.Points(1)
	pl.Legend.ThumbnailWidth = vg.Points(10)
	ms := func(k int) float64 { return float64(k-pre) / rate * 1000 }
	n := pre + post + 1
	for i, u := range p.units {
		col := unitColor(i)
		faint := col
		faint.A = 45
		for _, w := range u.waves {
			xy := make(plotter.XYs, n)
			for k := range n {
				xy[k] = plotter.XY{X: ms(k), Y: float64(w[k])}
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return nil, err
			}
			l.Color = faint
			l.Width = vg.Points(0.6)
			pl.Add(l)
		}
	}
	for i, u := range p.units {
		col := unitColor(i)
		label := fmt.Sprintf("unit %d (%d)", u.unit, u.count)
		if t := u.template; t != nil && sigma > 0 {
			label = fmt.Sprintf("unit %d (%d, SNR %.1f)", u.unit, u.count, math.Abs(float64(t.PeakUV))/sigma)
		}
		if t := u.template; t != nil {
			xy := make(plotter.XYs, 0, len(t.Waveform))
			for k, v := range t.Waveform {
				xy = append(xy, plotter.XY{X: ms(pre - t.Pre + k), Y: float64(v)})
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return nil, err
			}
			l.Color = col
			l.Width = vg.Points(2)
			pl.Add(l)
			pl.Legend.Add(label, l)
		} else {
			pl.Legend.Add(label+" no template", &plotter.Line{LineStyle: draw.LineStyle{Color: col, Width: vg.Points(2)}})
		}
	}
	pl.Add(plotter.NewGrid())
	return pl, nil
}
