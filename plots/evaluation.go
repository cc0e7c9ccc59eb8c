package plots

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/spikeline/spikeline/decode"
	"github.com/spikeline/spikeline/device"
)

// Evaluation writes a PNG to path with one panel per output: the true
// behaviour (black) and the decoded values (blue) over the first seconds
// of the held-out part (all of it if seconds <= 0), time in seconds from
// the session start. Bins with a degraded estimate are drawn as breaks.
func Evaluation(path string, m *decode.Model, ds *decode.Dataset, ev *decode.Evaluation, seconds float64) error {
	no := len(m.Outputs)
	bin := m.BinSeconds()
	from, to := ev.From, ev.To
	if seconds > 0 {
		to = min(to, from+int(seconds/bin+0.5))
	}
	if to-from < 2 {
		return fmt.Errorf("plots: nothing to plot (%d bins)", to-from)
	}
	t0 := float64(ds.Bins.Start(0)) / ds.Bins.Rate
	blue := color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	panels := make([][]*plot.Plot, no)
	for o := range no {
		p := plot.New()
		s := ev.Scores[o]
		p.Title.Text = fmt.Sprintf("%s — R² %.3f, r %.3f (held-out, %d bins scored)", s.Output, s.R2, s.Corr, ev.Bins)
		p.Title.TextStyle.Font.Size = vg.Points(13)
		p.Y.Label.Text = s.Output
		p.X.Label.Text = "time (s)"
		p.Add(plotter.NewGrid())
		var truth, dec []plotter.XYs
		var tcur, dcur plotter.XYs
		flush := func() {
			if len(tcur) > 0 {
				truth = append(truth, tcur)
			}
			if len(dcur) > 0 {
				dec = append(dec, dcur)
			}
			tcur, dcur = nil, nil
		}
		for i := from; i < to; i++ {
			x := t0 + (float64(i)+0.5)*bin
			if !ds.BehaviourObserved[i] || ev.Degraded[i] {
				flush()
				continue
			}
			tcur = append(tcur, plotter.XY{X: x, Y: ds.Behaviour[i*no+o]})
			dcur = append(dcur, plotter.XY{X: x, Y: ev.Decoded[i*no+o]})
		}
		flush()
		for k, xy := range truth {
			l, err := plotter.NewLine(xy)
			if err != nil {
				return err
			}
			l.Color = color.Black
			l.Width = vg.Points(1.6)
			p.Add(l)
			if k == 0 && o == 0 {
				p.Legend.Add("true", l)
			}
		}
		for k, xy := range dec {
			l, err := plotter.NewLine(xy)
			if err != nil {
				return err
			}
			l.Color = blue
			l.Width = vg.Points(1.2)
			p.Add(l)
			if k == 0 && o == 0 {
				p.Legend.Add(fmt.Sprintf("decoded (%s)", m.Kind), l)
			}
		}
		p.Legend.Top = true
		p.Legend.Left = true
		panels[o] = []*plot.Plot{p}
	}
	const wIn, hPanel = 12, 3.2
	img := vgimg.New(vg.Length(wIn)*vg.Inch, vg.Length(hPanel*float64(no)+0.5)*vg.Inch)
	dc := draw.New(img)
	top := draw.Crop(dc, 0, 0, 0, -0.5*vg.Inch)
	head := draw.Crop(dc, 0, 0, vg.Length(hPanel*float64(no))*vg.Inch, 0)
	head.FillText(draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, 13), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YCenter},
		vg.Point{X: head.Center().X, Y: head.Center().Y}, caption(m, ev))
	tiles := draw.Tiles{Rows: no, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(10)}
	canv := plot.Align(panels, tiles, top)
	for o := range no {
		panels[o][0].Draw(canv[o][0])
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("plots: %w", err)
		}
	}
	f, err := device.CreateFile(path)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plots: %s: %w", path, err)
	}
	return f.Close()
}

func caption(m *decode.Model, ev *decode.Evaluation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s decoder, %d %s, %g ms bins", m.Kind, len(m.Keys), m.Grouping.Columns(), 1000*m.BinSeconds())
	if m.Kind == decode.Wiener {
		fmt.Fprintf(&b, ", %d lags", m.Lags)
	}
	fmt.Fprintf(&b, " — mean R² %.3f on the held-out part", ev.MeanR2)
	return b.String()
}
