package plots

import (
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// TracePanel is one decoder output over time against the true behaviour,
// drawn by DrawTraces in the style of Evaluation: the truth black,
// the decoded values blue. Time is in seconds; Truth and Decoded are
// aligned with it (Truth may be nil). A NaN leaves a break in its line
// (a bin without behaviour, a degraded estimate).
type TracePanel struct {
	Title        string
	YLabel       string
	Time         []float64
	Truth        []float64
	Decoded      []float64
	DecodedLabel string // legend of the decoded line, e.g. "decoded (wiener)"
}

// traceBlue is the colour of decoded values.
var traceBlue = color.RGBA{0x1f, 0x77, 0xb4, 0xff}

// TracePlot returns one panel as a plot; the legend is drawn when legend
// is true (Evaluation shows it on the first panel only).
func TracePlot(tp TracePanel, legend bool) (*plot.Plot, error) {
	if len(tp.Decoded) != len(tp.Time) || (tp.Truth != nil && len(tp.Truth) != len(tp.Time)) {
		return nil, fmt.Errorf("plots: trace %q: %d times, %d true and %d decoded values", tp.Title, len(tp.Time), len(tp.Truth), len(tp.Decoded))
	}
	p := plot.New()
	p.Title.Text = tp.Title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = tp.YLabel
	p.X.Label.Text = "time (s)"
	p.Add(plotter.NewGrid())
	add := func(ys []float64, col color.Color, width vg.Length, label string) error {
		var cur plotter.XYs
		first := true
		flush := func() error {
			if len(cur) == 0 {
				return nil
			}
			l, err := plotter.NewLine(cur)
			if err != nil {
				return err
			}
			l.Color = col
			l.Width = width
			p.Add(l)
			if first && legend && label != "" {
				p.Legend.Add(label, l)
			}
			first = false
			cur = nil
			return nil
		}
		for i, y := range ys {
			if math.IsNaN(y) || math.IsInf(y, 0) || math.IsNaN(tp.Time[i]) {
				if err := flush(); err != nil {
					return err
				}
				continue
			}
			cur = append(cur, plotter.XY{X: tp.Time[i], Y: y})
		}
		return flush()
	}
	if tp.Truth != nil {
		if err := add(tp.Truth, color.Black, vg.Points(1.6), "true"); err != nil {
			return nil, err
		}
	}
	if err := add(tp.Decoded, traceBlue, vg.Points(1.2), tp.DecodedLabel); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p, nil
}

// traceCaptionH is the height of the caption line above the panels.
const traceCaptionH = 0.5 * vg.Inch

// DrawTraces draws panels one above the other on c, under a caption line,
// as Evaluation lays out its figure; the legend is on the first
// panel.
func DrawTraces(c draw.Canvas, caption string, panels []TracePanel) error {
	if len(panels) == 0 {
		return errors.New("plots: no trace panels to draw")
	}
	plots := make([][]*plot.Plot, len(panels))
	for i, tp := range panels {
		p, err := TracePlot(tp, i == 0)
		if err != nil {
			return err
		}
		plots[i] = []*plot.Plot{p}
	}
	top := draw.Crop(c, 0, 0, 0, -traceCaptionH)
	head := draw.Crop(c, 0, 0, c.Max.Y-c.Min.Y-traceCaptionH, 0)
	head.FillText(draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, 13), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YCenter},
		head.Center(), caption)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(10)}
	canv := plot.Align(plots, tiles, top)
	for i := range plots {
		plots[i][0].Draw(canv[i][0])
	}
	return nil
}
