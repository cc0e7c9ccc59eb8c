package plots

import (
	"cmp"
	"fmt"
	"image"
	"image/color"
	imagedraw "image/draw"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/spikeline/spikeline/sort"
)

// PanelWaves is how many sample waveforms per unit ChoosePanels picks.
const PanelWaves = 40

// PanelUnit is one unit drawn in a channel Panel.
type PanelUnit struct {
	Unit     int32
	Count    int            // sorted spikes
	Template *sort.Template // nil: none
	Picks    []uint64       // spike samples whose waveforms are drawn
	Waves    [][]float32    // filtered µV, pre+post+1 samples each once aligned (AlignWaves)
}

// Panel is one channel of a waveform figure: summary.png of spikeline
// sort, templates.png of a snapshot.
type Panel struct {
	Channel int
	Units   []*PanelUnit
}

// ChoosePanels chooses the channels to draw (those with sorted units, at
// most maxPanels: the ones with the most sorted spikes) and up to
// PanelWaves spikes per unit spread over the recording.
func ChoosePanels(spikes []sort.Spike, templates []sort.Template, maxPanels int) (panels []*Panel, shown, withUnits, nUnits int) {
	byUnit := map[int32]*PanelUnit{}
	chOf := map[int32]int{}
	var order []int32
	get := func(u int32) *PanelUnit {
		pu, ok := byUnit[u]
		if !ok {
			pu = &PanelUnit{Unit: u}
			byUnit[u] = pu
			order = append(order, u)
		}
		return pu
	}
	for i := range templates {
		t := &templates[i]
		get(t.Unit).Template = t
		chOf[t.Unit] = int(t.Channel)
	}
	for _, s := range spikes {
		if s.Unit == 0 {
			continue
		}
		get(s.Unit).Count++
		if _, ok := chOf[s.Unit]; !ok {
			chOf[s.Unit] = int(s.Channel)
		}
	}
	byCh := map[int]*Panel{}
	chSpikes := map[int]int{}
	for _, u := range order {
		ch := chOf[u]
		p, ok := byCh[ch]
		if !ok {
			p = &Panel{Channel: ch}
			byCh[ch] = p
		}
		p.Units = append(p.Units, byUnit[u])
		chSpikes[ch] += byUnit[u].Count
	}
	for _, p := range byCh {
		slices.SortFunc(p.Units, func(a, b *PanelUnit) int { return cmp.Compare(a.Unit, b.Unit) })
		panels = append(panels, p)
	}
	withUnits = len(panels)
	if len(panels) > maxPanels {
		slices.SortFunc(panels, func(a, b *Panel) int {
			if c := cmp.Compare(chSpikes[b.Channel], chSpikes[a.Channel]); c != 0 {
				return c
			}
			return cmp.Compare(a.Channel, b.Channel)
		})
		panels = panels[:maxPanels]
	}
	slices.SortFunc(panels, func(a, b *Panel) int { return cmp.Compare(a.Channel, b.Channel) })

	// Pick spikes evenly through each shown unit's train.
	shownUnit := map[int32]*PanelUnit{}
	for _, p := range panels {
		for _, u := range p.Units {
			shownUnit[u.Unit] = u
		}
	}
	seen := map[int32]int{}
	for _, s := range spikes {
		u, ok := shownUnit[s.Unit]
		if !ok || u.Count == 0 {
			continue
		}
		k := seen[s.Unit]
		seen[s.Unit]++
		every := max(1, u.Count/PanelWaves)
		if k%every == 0 && len(u.Picks) < PanelWaves {
			u.Picks = append(u.Picks, s.Sample)
		}
	}
	return panels, len(panels), withUnits, len(order)
}

// AlignWaves shifts the unit's waveforms (cut with margin extra samples on
// each side) by the one lag that best aligns their mean with the template
// (on its extremum if there is none), and crops them to pre+post+1.
func AlignWaves(u *PanelUnit, pre, post, margin int) {
	if len(u.Waves) == 0 {
		return
	}
	n := pre + post + 1
	mean := make([]float64, n+2*margin)
	for _, w := range u.Waves {
		for i, v := range w {
			mean[i] += float64(v)
		}
	}
	best, bestScore := 0, math.Inf(-1)
	for lag := -margin; lag <= margin; lag++ {
		var s float64
		if t := u.Template; t != nil {
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
	for i, w := range u.Waves {
		u.Waves[i] = w[margin+best : margin+best+n]
	}
}

// Summary writes summary.png of spikeline sort to path: the panels in a
// grid under title, waveforms and templates in µV over ms around the spike.
func Summary(path, title string, panels []*Panel, noise []float32, pre, post int, rate float64) error {
	n := max(1, len(panels))
	cols := int(math.Ceil(math.Sqrt(float64(n) * 1.3)))
	cols = min(cols, n, 8)
	rows := (n + cols - 1) / cols
	const pw, ph = 3.2, 2.5 // Panel size, inches
	W := vg.Length(pw*float64(cols)) * vg.Inch
	H := vg.Length(ph*float64(rows))*vg.Inch + TitleHeight
	img, dc := NewFigure(W, H, 110, title)
	if err := DrawPanels(Body(dc), panels, cols, noise, pre, post, rate); err != nil {
		return err
	}
	if len(panels) == 0 {
		dc.FillText(Text(13, draw.XCenter, draw.YCenter), vg.Point{X: W / 2, Y: H / 2}, "no sorted units")
	}
	return SavePNG(path, img)
}

// DrawPanels lays the channel panels out on c, cols to a row, and
// draws them (panelPlot). noise is the per-channel noise in µV (nil or
// short: unknown); pre and post the samples drawn around the spike.
func DrawPanels(c draw.Canvas, panels []*Panel, cols int, noise []float32, pre, post int, rate float64) error {
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
		if p.Channel < len(noise) {
			sigma = float64(noise[p.Channel])
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
	img, ok := c.Canvas.(*vgimg.Canvas)
	if !ok || runtime.GOMAXPROCS(0) == 1 {
		for r := range grid {
			for c := range grid[r] {
				if grid[r][c] != nil {
					grid[r][c].Draw(canvases[r][c])
				}
			}
		}
		return nil
	}
	// One canvas cannot be drawn on concurrently: each panel is drawn on
	// all cores into an image of its own, with its place in the grid, and
	// laid over the figure.
	dst := img.Image()
	dpi := img.DPI()
	H := dst.Bounds().Dy()
	px := func(v vg.Length) float64 { return float64(v) / 72 * dpi } // points to pixels
	pt := func(v int) vg.Length { return vg.Length(float64(v) / dpi * 72) }
	slack := vg.Points(3) // room for strokes on the edge (less than the padding)
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(panels); i = int(next.Add(1) - 1) {
				R := canvases[i/cols][i%cols].Rectangle
				x0 := int(math.Floor(px(R.Min.X - slack)))
				x1 := int(math.Ceil(px(R.Max.X + slack)))
				y0 := H - int(math.Ceil(px(R.Max.Y+slack)))
				y1 := H - int(math.Floor(px(R.Min.Y-slack)))
				sub := vgimg.NewWith(vgimg.UseWH(pt(x1-x0), pt(y1-y0)), vgimg.UseDPI(int(dpi)), vgimg.UseBackgroundColor(color.Transparent))
				off := vg.Point{X: pt(x0), Y: pt(H - y1)}
				grid[i/cols][i%cols].Draw(draw.Canvas{Canvas: sub, Rectangle: vg.Rectangle{Min: R.Min.Sub(off), Max: R.Max.Sub(off)}})
				mu.Lock()
				imagedraw.Draw(dst, image.Rect(x0, y0, x1, y1), sub.Image(), sub.Image().Bounds().Min, imagedraw.Over)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return nil
}

// panelPlot draws one channel: faint waveforms, then templates on top.
// sigma is the channel's noise in µV (0: unknown).
func panelPlot(p *Panel, sigma float64, pre, post int, rate float64) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("channel %d", p.Channel)
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
	x := make([]float64, n)
	for k := range x {
		x[k] = ms(k)
	}
	for i, u := range p.Units {
		faint := UnitColor(i)
		faint.A = 45
		var ys [][]float32
		for _, w := range u.Waves {
			if len(w) < n {
				return nil, fmt.Errorf("plots: unit %d: a waveform of %d samples, want %d", u.Unit, len(w), n)
			}
			ys = append(ys, w[:n])
		}
		if len(ys) > 0 {
			pl.Add(&faintLines{x: x, ys: ys, color: faint, width: vg.Points(0.6)})
		}
	}
	for i, u := range p.Units {
		col := UnitColor(i)
		label := fmt.Sprintf("unit %d (%d)", u.Unit, u.Count)
		if t := u.Template; t != nil && sigma > 0 {
			label = fmt.Sprintf("unit %d (%d, SNR %.1f)", u.Unit, u.Count, math.Abs(float64(t.PeakUV))/sigma)
		}
		if t := u.Template; t != nil {
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
