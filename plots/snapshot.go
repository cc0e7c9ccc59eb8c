package plots

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sort"
	"github.com/spikeline/spikeline/stream/snapshot"
	"github.com/spikeline/spikeline/stream/view"
)

// snapMaxSpikesDrawn bounds the ticks of raster.png; beyond it a uniform
// sample is drawn and the caption says so.
const snapMaxSpikesDrawn = 300000

// snapFigures draws the figures of a snapshot.
type snapFigures struct{ *snapshot.Snapshot }

// SnapshotOptions are where the figures of a snapshot go, and their size.
type SnapshotOptions struct {
	Dir           string // created if needed
	Width, Height int    // pixels
	DPI           int    // dots per inch: the scale of text and lines
	MaxPanels     int    // most channels drawn in templates.png
}

// SnapshotFile is one file Snapshot wrote, and what it shows.
type SnapshotFile struct{ Path, What string }

// Snapshot draws a rig's live views into o.Dir — probe.png, templates.png,
// raster.png, decoder.png and health.png — and writes snapshot.json with
// the numbers shown (docs/snapshot.md). It returns the files written.
func Snapshot(snap *snapshot.Snapshot, o SnapshotOptions) ([]SnapshotFile, error) {
	s := snapFigures{snap}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	W := vg.Length(float64(o.Width)/float64(o.DPI)) * vg.Inch
	H := vg.Length(float64(o.Height)/float64(o.DPI)) * vg.Inch
	figs := []struct {
		name string
		draw func(dc draw.Canvas, W, H vg.Length) (string, string, error) // title, what it shows
	}{
		{"probe.png", s.drawProbe},
		{"templates.png", func(dc draw.Canvas, W, H vg.Length) (string, string, error) {
			return s.drawTemplates(dc, W, H, o.MaxPanels)
		}},
		{"raster.png", s.drawRaster},
		{"decoder.png", s.drawDecoder},
		{"health.png", s.drawHealth},
	}
	var files []SnapshotFile
	for _, f := range figs {
		path := filepath.Join(o.Dir, f.name)
		// The title is known once the figure is drawn: draw the body on
		// a figure with a placeholder title, then put the title on.
		img, dc := NewFigure(W, H, o.DPI, "")
		title, what, err := f.draw(Body(dc), W, H)
		if err != nil {
			return files, fmt.Errorf("%s: %w", path, err)
		}
		dc.FillText(Text(13, draw.XCenter, draw.YTop), vg.Point{X: W / 2, Y: H - vg.Points(6)}, title)
		if err := SavePNG(path, img); err != nil {
			return files, err
		}
		s.Files = append(s.Files, f.name)
		files = append(files, SnapshotFile{path, what})
	}
	s.Files = append(s.Files, "snapshot.json")
	jpath := filepath.Join(o.Dir, "snapshot.json")
	b, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return files, err
	}
	if err := device.WriteFile(jpath, append(b, '\n')); err != nil {
		return files, err
	}
	return append(files, SnapshotFile{jpath, "the numbers shown"}), nil
}

// rigTitle is the start of every figure title.
func (s snapFigures) rigTitle() string {
	t := "rig " + s.Rig
	if s.Device != "" {
		t += " (" + s.Device + ")"
	}
	return t + " " + s.Taken.Format("2006-01-02 15:04:05Z")
}

// message writes a centred note on an otherwise empty figure body.
func message(dc draw.Canvas, text string) {
	dc.FillText(Text(14, draw.XCenter, draw.YCenter), dc.Center(), text)
}

// drawProbe draws probe.png: a grid of the shown channels coloured by
// firing rate, with rate, noise and markers in each cell, and a colour
// bar.
func (s snapFigures) drawProbe(dc draw.Canvas, W, H vg.Length) (string, string, error) {
	title := s.rigTitle() + fmt.Sprintf(" — firing rate and noise per channel (rates from %s)", s.RateSource)
	n := len(s.ChannelStats)
	if n == 0 {
		message(dc, "no channels known yet (no status, spikes or templates arrived)")
		return title, "no channels", nil
	}
	cmap := moreland.Kindlmann()
	maxRate := 0.0
	marks := map[string]int{}
	for _, c := range s.ChannelStats {
		maxRate = max(maxRate, c.RateHz)
		if c.Marker != "" {
			marks[c.Marker]++
		}
	}
	maxRate = niceCeil(max(maxRate, 1))
	cmap.SetMin(0)
	cmap.SetMax(1)
	colorOf := func(r float64) color.Color {
		col, err := cmap.At(0.12 + 0.83*math.Min(1, r/maxRate)) // neither black nor white
		if err != nil {
			return color.Gray{128}
		}
		return col
	}

	const pad = 6
	barW := vg.Points(14)
	legendW := vg.Inch * 1.1
	area := draw.Crop(dc, vg.Points(pad), -legendW-vg.Points(pad), vg.Points(28), -vg.Points(pad))
	aw, ah := area.Max.X-area.Min.X, area.Max.Y-area.Min.Y
	// Columns: the grid closest to the area's aspect with square-ish cells.
	cols := max(1, int(math.Round(math.Sqrt(float64(n)*float64(aw/ah)))))
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	cw, chh := aw/vg.Length(cols), ah/vg.Length(rows)
	fs := math.Min(float64(chh)/4.6, float64(cw)/6.5)
	fs = math.Max(4, math.Min(13, fs))
	for i, c := range s.ChannelStats {
		r, k := i/cols, i%cols
		x0 := area.Min.X + vg.Length(k)*cw
		y1 := area.Max.Y - vg.Length(r)*chh
		cell := vg.Rectangle{Min: vg.Point{X: x0 + 1, Y: y1 - chh + 1}, Max: vg.Point{X: x0 + cw - 1, Y: y1 - 1}}
		fill := colorOf(c.RateHz)
		switch c.Marker {
		case snapshot.MarkSilent:
			fill = color.Gray{225}
		case snapshot.MarkQuiet:
			fill = color.RGBA{60, 60, 70, 255}
		}
		dc.SetColor(fill)
		dc.Fill(cell.Path())
		txt := color.Color(color.Black)
		if luminance(fill) < 0.5 {
			txt = color.White
		}
		center := vg.Point{X: (cell.Min.X + cell.Max.X) / 2, Y: (cell.Min.Y + cell.Max.Y) / 2}
		line := vg.Length(fs) * 1.15
		ts := Text(fs, draw.XCenter, draw.YCenter)
		ts.Color = txt
		big := ts
		big.Font.Size = vg.Points(fs * 1.15)
		dc.FillText(ts, vg.Point{X: center.X, Y: center.Y + 1.3*line}, fmt.Sprintf("ch %d", c.Channel))
		dc.FillText(big, center, fmt.Sprintf("%.1f Hz", c.RateHz))
		noise := "noise ?"
		if c.NoiseUV > 0 || len(s.Noise) > c.Channel {
			noise = fmt.Sprintf("%.1f µV", c.NoiseUV)
		}
		dc.FillText(ts, vg.Point{X: center.X, Y: center.Y - 1.3*line}, noise)
		switch c.Marker {
		case snapshot.MarkQuiet:
			ls := draw.LineStyle{Color: color.RGBA{230, 80, 80, 255}, Width: vg.Points(1.5)}
			dc.StrokeLine2(ls, cell.Min.X+2, cell.Min.Y+2, cell.Max.X-2, cell.Max.Y-2)
			dc.StrokeLine2(ls, cell.Min.X+2, cell.Max.Y-2, cell.Max.X-2, cell.Min.Y+2)
		case snapshot.MarkNoisy:
			ls := draw.LineStyle{Color: color.RGBA{220, 20, 20, 255}, Width: vg.Points(3)}
			dc.StrokeLines(ls, []vg.Point{cell.Min, {X: cell.Max.X, Y: cell.Min.Y}, cell.Max, {X: cell.Min.X, Y: cell.Max.Y}, cell.Min})
		}
		if c.Marker != "" {
			mt := ts
			mt.Font.Size = vg.Points(fs * 0.9)
			mt.YAlign = draw.YBottom
			dc.FillText(mt, vg.Point{X: center.X, Y: cell.Min.Y + 2}, c.Marker)
		}
	}

	// Colour bar.
	bx := dc.Max.X - legendW + vg.Points(10)
	by0, by1 := area.Min.Y+ah*0.15, area.Max.Y-ah*0.05
	const steps = 64
	for i := range steps {
		y0 := by0 + (by1-by0)*vg.Length(i)/steps
		y1 := by0 + (by1-by0)*vg.Length(i+1)/steps
		dc.SetColor(colorOf(maxRate * (float64(i) + 0.5) / steps))
		dc.Fill(vg.Rectangle{Min: vg.Point{X: bx, Y: y0}, Max: vg.Point{X: bx + barW, Y: y1 + 0.5}}.Path())
	}
	lt := Text(9, draw.XLeft, draw.YCenter)
	for i := 0; i <= 4; i++ {
		v := maxRate * float64(i) / 4
		y := by0 + (by1-by0)*vg.Length(i)/4
		dc.StrokeLine2(draw.LineStyle{Color: color.Black, Width: vg.Points(0.8)}, bx+barW, y, bx+barW+vg.Points(3), y)
		dc.FillText(lt, vg.Point{X: bx + barW + vg.Points(5), Y: y}, strconv.FormatFloat(v, 'g', 4, 64))
	}
	lt.XAlign = draw.XLeft
	lt.YAlign = draw.YBottom
	dc.FillText(lt, vg.Point{X: bx, Y: by1 + vg.Points(6)}, "spikes/s")
	// Marker legend.
	var key []string
	for _, m := range []string{snapshot.MarkQuiet, snapshot.MarkNoisy, snapshot.MarkSilent} {
		key = append(key, fmt.Sprintf("%s: %d", m, marks[m]))
	}
	ft := Text(9, draw.XLeft, draw.YBottom)
	dc.FillText(ft, vg.Point{X: area.Min.X, Y: dc.Min.Y + vg.Points(8)},
		fmt.Sprintf("%d channels · %s · quiet: noise < %.0f%% of median, noisy: > %g× median, silent: no spike",
			n, strings.Join(key, ", "), 100*view.QuietBelow, view.NoisyAbove))
	return title, fmt.Sprintf("%d channels, %d quiet, %d noisy, %d silent", n, marks[snapshot.MarkQuiet], marks[snapshot.MarkNoisy], marks[snapshot.MarkSilent]), nil
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	return (0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(b)) / 65535
}

// snapPanels chooses the channels of templates.png (summaryPanels, as
// summary.png does), with each unit's spike count during the snapshot.
func (s snapFigures) snapPanels(maxPanels int) []*Panel {
	var spikes []sort.Spike
	count := map[int32]int{}
	for _, u := range s.Units {
		count[u.Unit] = u.Spikes
		if u.Spikes > 0 {
			// summaryPanels ranks channels by sorted spikes: one stand-in
			// spike per unit carries the unit's channel; the count is
			// set below.
			spikes = append(spikes, sort.Spike{Channel: u.Channel, Unit: u.Unit})
		}
	}
	panels, _, _, _ := ChoosePanels(spikes, s.Templates, len(s.Units)+1)
	for _, p := range panels {
		for _, u := range p.Units {
			u.Count = count[u.Unit]
			u.Picks = nil
		}
	}
	if len(panels) > maxPanels {
		chSpikes := map[int]int{}
		for _, p := range panels {
			for _, u := range p.Units {
				chSpikes[p.Channel] += u.Count
			}
		}
		slices.SortStableFunc(panels, func(a, b *Panel) int { return cmp.Compare(chSpikes[b.Channel], chSpikes[a.Channel]) })
		panels = panels[:maxPanels]
		slices.SortFunc(panels, func(a, b *Panel) int { return cmp.Compare(a.Channel, b.Channel) })
	}
	return panels
}

// unitColors maps every unit to its colour: its rank among the units of
// its channel, as in templates.png and summary.png.
func (s snapFigures) unitColorMap() map[int32]color.NRGBA {
	panels := s.snapPanels(math.MaxInt)
	m := map[int32]color.NRGBA{}
	for _, p := range panels {
		for i, u := range p.Units {
			m[u.Unit] = UnitColor(i)
		}
	}
	return m
}

// drawTemplates draws templates.png: the summary.png panels of the
// channels with units (the busiest maxPanels), templates only.
func (s snapFigures) drawTemplates(dc draw.Canvas, W, H vg.Length, maxPanels int) (string, string, error) {
	panels := s.snapPanels(maxPanels)
	nUnits := 0
	withUnits := map[int32]bool{}
	for _, u := range s.Units {
		nUnits++
		withUnits[u.Channel] = true
	}
	title := s.rigTitle() + fmt.Sprintf(" — %d units on %d channels", nUnits, len(withUnits))
	if len(panels) < len(withUnits) {
		title += fmt.Sprintf(" (showing the %d busiest)", len(panels))
	}
	if len(panels) == 0 {
		message(dc, "no templates or sorted spikes received yet (templates are re-published every 10 s of device time)")
		return title, "no units yet", nil
	}
	pre, post := 0, 0
	for _, t := range s.Templates {
		pre = max(pre, t.Pre)
		post = max(post, len(t.Waveform)-t.Pre-1)
	}
	rate := max(s.Rate, 1)
	if pre == 0 && post == 0 {
		pre, post = int(math.Round(0.6e-3*rate)), int(math.Round(1.2e-3*rate))
	}
	n := len(panels)
	aw, ah := float64(dc.Max.X-dc.Min.X), float64(dc.Max.Y-dc.Min.Y)
	cols := int(math.Ceil(math.Sqrt(float64(n) * (aw / ah) * (2.5 / 3.2))))
	cols = max(1, min(cols, n))
	if err := DrawPanels(dc, panels, cols, s.Noise, pre, post, rate); err != nil {
		return "", "", err
	}
	return title, fmt.Sprintf("%d templates, %d of the %d channels with units drawn", len(s.Templates), n, len(withUnits)), nil
}

// rasterTicks is a plotter of spike ticks: one row per shown channel,
// channel order top to bottom.
type rasterTicks struct {
	x      []float64 // s
	row    []int
	col    []color.Color
	rows   int
	t0, t1 float64
	gaps   [][2]float64 // s
}

func (r *rasterTicks) DataRange() (xmin, xmax, ymin, ymax float64) {
	return r.t0, r.t1, -0.5, float64(r.rows) - 0.5
}

func (r *rasterTicks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, g := range r.gaps {
		a, b := math.Max(g[0], r.t0), math.Min(g[1], r.t1)
		if b <= a {
			continue
		}
		x0, x1 := trX(a), trX(b)
		if x1-x0 < 1 {
			x1 = x0 + 1
		}
		c.SetColor(color.NRGBA{R: 180, G: 30, B: 30, A: 110})
		c.Fill(vg.Rectangle{Min: vg.Point{X: x0, Y: c.Min.Y}, Max: vg.Point{X: x1, Y: c.Max.Y}}.Path())
	}
	h := (trY(0) - trY(1)) * 0.4
	for i, x := range r.x {
		y := trY(float64(r.rows - 1 - r.row[i]))
		xx := trX(x)
		c.StrokeLine2(draw.LineStyle{Color: r.col[i], Width: vg.Points(0.9)}, xx, y-h, xx, y+h)
	}
}

// drawRaster draws raster.png: the spikes of the last --window, channels ×
// device time, coloured by unit (unsorted grey), gaps shaded.
func (s snapFigures) drawRaster(dc draw.Canvas, W, H vg.Length) (string, string, error) {
	rate := max(s.Rate, 1)
	t0, t1 := s.RasterFrom, s.To
	title := s.rigTitle() + fmt.Sprintf(" — spike raster, %.1f s of device time", t1-t0)
	if len(s.Shown) == 0 || t1 <= t0 {
		message(dc, "no spike batches received")
		return title, "no spikes", nil
	}
	rowOf := map[int32]int{}
	for i, ch := range s.Shown {
		rowOf[int32(ch)] = i
	}
	colors := s.unitColorMap()
	grey := color.NRGBA{150, 150, 150, 255}
	spikes := s.Spikes
	every := 1
	if len(spikes) > snapMaxSpikesDrawn {
		every = (len(spikes) + snapMaxSpikesDrawn - 1) / snapMaxSpikesDrawn
	}
	rt := &rasterTicks{rows: len(s.Shown), t0: t0, t1: t1}
	for i := 0; i < len(spikes); i += every {
		sp := spikes[i]
		row, ok := rowOf[sp.Channel]
		if !ok {
			continue
		}
		col := color.Color(grey)
		if c, ok := colors[sp.Unit]; ok && sp.Unit > 0 {
			col = c
		}
		rt.x = append(rt.x, float64(sp.Sample)/rate)
		rt.row = append(rt.row, row)
		rt.col = append(rt.col, col)
	}
	for _, g := range s.Gaps {
		rt.gaps = append(rt.gaps, [2]float64{float64(g[0]) / rate, float64(g[1]) / rate})
	}
	p := plot.New()
	p.X.Label.Text = "device time (s)"
	p.Y.Label.Text = "channel"
	p.X.Min, p.X.Max = t0, t1
	p.Y.Min, p.Y.Max = -0.5, float64(len(s.Shown))-0.5
	step := int(niceCeil(math.Max(1, float64(len(s.Shown))/24)))
	var ticks []plot.Tick
	for i, ch := range s.Shown {
		lab := ""
		if i%step == 0 {
			lab = strconv.Itoa(ch)
		}
		ticks = append(ticks, plot.Tick{Value: float64(len(s.Shown) - 1 - i), Label: lab})
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Add(rt)
	p.Draw(draw.Crop(dc, vg.Points(6), -vg.Points(12), vg.Points(18), 0))
	caption := fmt.Sprintf("%d spikes", len(spikes))
	if every > 1 {
		caption = fmt.Sprintf("%d of %d spikes drawn (uniform sample)", len(rt.x), len(spikes))
	}
	caption += " · colour: unit (as in templates.png) · grey: unsorted · shaded: gaps"
	dc.FillText(Text(9, draw.XLeft, draw.YBottom), vg.Point{X: dc.Min.X + vg.Points(8), Y: dc.Min.Y + vg.Points(4)}, caption)
	return title, fmt.Sprintf("%d spikes on %d channels over %.1f s", len(spikes), len(s.Shown), t1-t0), nil
}

// drawDecoder draws decoder.png: each decoder output against the
// behaviour, with R², as PlotEvaluation draws an offline evaluation.
func (s snapFigures) drawDecoder(dc draw.Canvas, W, H vg.Length) (string, string, error) {
	title := s.rigTitle() + " — decoder output against " + s.Truth
	var panels []TracePanel
	var what []string
	for _, d := range s.Decoders {
		for o, out := range d.Outputs {
			tp := TracePanel{YLabel: out.Name, Time: d.Time, Decoded: d.Decoded[o],
				DecodedLabel: "decoded (" + d.Model + ")"}
			tp.Title = fmt.Sprintf("%s %s", d.Model, out.Name)
			switch {
			case out.R2 != nil:
				r := "r unknown"
				if out.Corr != nil {
					r = fmt.Sprintf("r %.3f", *out.Corr)
				}
				tp.Title += fmt.Sprintf(" — R² %.3f, %s (%d bins)", *out.R2, r, out.Bins)
				what = append(what, fmt.Sprintf("%s %s R² %.3f", d.Model, out.Name, *out.R2))
			case d.Truth != nil && d.Truth[o] != nil:
				tp.Title += fmt.Sprintf(" — R² unknown (%d bins paired with the behaviour)", out.Bins)
			default:
				tp.Title += " — no behaviour to score against"
			}
			if d.Truth != nil {
				tp.Truth = d.Truth[o]
			}
			panels = append(panels, tp)
		}
	}
	if len(panels) == 0 {
		msg := "no decoder output received (the rig's decoder is calibrating, or publishes none)"
		if len(s.Decoders) == 0 && s.Messages["estimates"] > 0 {
			msg = "only the behaviour (" + s.Truth + ") was received: no decoder output yet (still calibrating?)"
		}
		message(dc, msg)
		return title, "no decoder output", nil
	}
	caption := fmt.Sprintf("true behaviour (%s) black, decoded blue; R² over the bins paired", s.Truth)
	if err := DrawTraces(dc, caption, panels); err != nil {
		return "", "", err
	}
	if len(what) == 0 {
		what = append(what, "R² unknown")
	}
	return title, strings.Join(what, ", "), nil
}

// drawHealth draws health.png: a table of the link and pipeline counters
// and the throughput and latency over the snapshot.
func (s snapFigures) drawHealth(dc draw.Canvas, W, H vg.Length) (string, string, error) {
	title := s.rigTitle() + " — link and pipeline health"
	h := s.Health
	if h == nil {
		message(dc, "no status message received (the rig publishes one every second)")
		return title, "no status", nil
	}
	type row struct {
		name, total, during string
		bad                 bool
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	l, d := h.Link, h.LinkDuring
	rows := []row{
		{"samples/s per channel", fmt.Sprintf("%.0f (nominal %.0f)", h.SampleRate, h.NominalRate), "", h.NominalRate > 0 && h.SampleRate < 0.98*h.NominalRate},
		{"spikes/s, all channels", fmt.Sprintf("%.1f", h.SpikeRate), "", false},
		{"latency p50 / p99", fmt.Sprintf("%.2f / %.2f ms", h.LatencyP50MS, h.LatencyP99MS), fmt.Sprintf("max %.2f ms", h.LatencyMaxMS), false},
		{"device samples processed", u(h.DeviceSample), u(h.DeviceSamplesDuring), false},
		{"lost samples (gaps)", fmt.Sprintf("%d (%d gaps)", l.LostSamples, l.Gaps), fmt.Sprintf("%d (%d gaps)", d.LostSamples, d.Gaps), d.LostSamples > 0},
		{"CRC errors", u(l.CRCErrors), u(d.CRCErrors), d.CRCErrors > 0},
		{"bad frames / skipped bytes", u(l.BadFrames) + " / " + u(l.SkippedBytes), u(d.BadFrames) + " / " + u(d.SkippedBytes), d.BadFrames > 0},
		{"device resets / format changes", u(l.Resets) + " / " + u(l.FormatChanges), u(d.Resets) + " / " + u(d.FormatChanges), d.Resets+d.FormatChanges > 0},
		{"disconnects / reconnects", u(l.Disconnects) + " / " + u(l.Reconnects), u(d.Disconnects) + " / " + u(d.Reconnects), d.Disconnects > 0},
		{"pipeline drops", u(h.PipelineDrops), "", false},
		{"NATS publish dropped / errors", u(h.PublishDropped) + " / " + u(h.PublishErrors), "", false},
		{"NATS reconnects (rig)", u(h.NATSReconnects), "", false},
		{"spike batches missed here", "", fmt.Sprintf("%d (%d samples)", h.MissedBatches, h.MissedSamples), h.MissedBatches > 0},
		{"slow consumer / undecodable here", "", fmt.Sprintf("%d / %d", h.SlowConsumer, h.DecodeErrors), h.SlowConsumer+h.DecodeErrors > 0},
	}
	first, last := h.Series[0], h.Series[len(h.Series)-1]
	// The table, left half.
	tableW := (dc.Max.X - dc.Min.X) * 0.5
	top := dc.Max.Y - vg.Points(10)
	lineH := math.Min(float64(dc.Max.Y-dc.Min.Y-vg.Points(40))/float64(len(rows)+2), 22)
	fs := math.Max(6, math.Min(11, lineH*0.55))
	x0 := dc.Min.X + vg.Points(14)
	c1, c2 := x0+tableW*0.45, x0+tableW*0.72
	head := Text(fs, draw.XLeft, draw.YCenter)
	dc.FillText(head, vg.Point{X: x0, Y: top}, "counter")
	dc.FillText(head, vg.Point{X: c1, Y: top}, fmt.Sprintf("since start (%.0f s)", h.Uptime))
	dc.FillText(head, vg.Point{X: c2, Y: top}, fmt.Sprintf("during snapshot (%.0f s)", (last.Uptime-first.Uptime).Seconds()))
	ts := Text(fs, draw.XLeft, draw.YCenter)
	red := color.RGBA{200, 20, 20, 255}
	for i, r := range rows {
		y := top - vg.Length(lineH)*vg.Length(i+1)
		if i%2 == 0 {
			dc.SetColor(color.Gray{240})
			dc.Fill(vg.Rectangle{Min: vg.Point{X: x0 - 4, Y: y - vg.Length(lineH)/2}, Max: vg.Point{X: x0 + tableW - 8, Y: y + vg.Length(lineH)/2}}.Path())
		}
		t := ts
		if r.bad {
			t.Color = red
		}
		dc.FillText(t, vg.Point{X: x0, Y: y}, r.name)
		dc.FillText(t, vg.Point{X: c1, Y: y}, r.total)
		dc.FillText(t, vg.Point{X: c2, Y: y}, r.during)
	}
	note := Text(fs*0.85, draw.XLeft, draw.YBottom)
	dc.FillText(note, vg.Point{X: x0, Y: dc.Min.Y + vg.Points(6)},
		fmt.Sprintf("%d status messages · threshold %.1f SD · red: counters that rose during the snapshot", len(h.Series), h.Threshold))

	// Throughput and latency over the snapshot, right half.
	var thr, p50, p99 plotter.XYs
	for _, st := range h.Series {
		x := st.Uptime.Seconds()
		thr = append(thr, plotter.XY{X: x, Y: st.SampleRate})
		p50 = append(p50, plotter.XY{X: x, Y: float64(st.LatencyP50) / 1e6})
		p99 = append(p99, plotter.XY{X: x, Y: float64(st.LatencyP99) / 1e6})
	}
	right := draw.Crop(dc, tableW+vg.Points(10), -vg.Points(8), vg.Points(4), -vg.Points(4))
	pt := plot.New()
	pt.Title.Text = "throughput (samples/s per channel)"
	pt.X.Label.Text = "rig uptime (s)"
	pl := plot.New()
	pl.Title.Text = "latency (ms): p50 blue, p99 red"
	pl.X.Label.Text = "rig uptime (s)"
	for _, p := range []*plot.Plot{pt, pl} {
		p.Add(plotter.NewGrid())
		p.Y.Min = 0
	}
	if err := addLine(pt, thr, color.RGBA{0x1f, 0x77, 0xb4, 0xff}); err != nil {
		return "", "", err
	}
	if h.NominalRate > 0 {
		if err := addLine(pt, plotter.XYs{{X: thr[0].X, Y: h.NominalRate}, {X: thr[len(thr)-1].X + 1e-9, Y: h.NominalRate}}, color.Gray{140}); err != nil {
			return "", "", err
		}
		pt.Y.Max = math.Max(pt.Y.Max, h.NominalRate*1.1)
	}
	if err := addLine(pl, p50, color.RGBA{0x1f, 0x77, 0xb4, 0xff}); err != nil {
		return "", "", err
	}
	if err := addLine(pl, p99, color.RGBA{0xd6, 0x27, 0x28, 0xff}); err != nil {
		return "", "", err
	}
	grid := [][]*plot.Plot{{pt}, {pl}}
	canv := plot.Align(grid, draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(4), PadBottom: vg.Points(4)}, right)
	pt.Draw(canv[0][0])
	pl.Draw(canv[1][0])

	what := fmt.Sprintf("%.0f samples/s, latency p50 %.2f ms p99 %.2f ms, %d lost samples, %d CRC errors during the snapshot",
		h.SampleRate, h.LatencyP50MS, h.LatencyP99MS, d.LostSamples, d.CRCErrors)
	return title, what, nil
}

// addLine adds a line through xy (a point when there is only one).
func addLine(p *plot.Plot, xy plotter.XYs, col color.Color) error {
	if len(xy) == 1 {
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		sc.Color = col
		p.Add(sc)
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color = col
	l.Width = vg.Points(1.3)
	p.Add(l)
	return nil
}
