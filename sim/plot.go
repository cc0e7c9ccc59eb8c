package sim

import (
	"context"
	"fmt"
	"image/color"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/spikeline/spikeline/sort"
)

// plotChannels is the most channels PlotPNG draws.
const plotChannels = 8

// PlotPNG simulates d of cfg (at most 8 channels of it are drawn) and
// writes a PNG to path: the raw traces, stacked, with ground-truth spikes
// marked by unit, and beside them the units' raw templates.
func PlotPNG(path string, cfg Config, d time.Duration) error {
	cfg.Duration = 0
	s, err := New(cfg)
	if err != nil {
		return err
	}
	nch := min(s.cfg.Channels, plotChannels)
	total := int(d.Seconds() * s.cfg.Rate)
	if total <= 0 {
		return fmt.Errorf("sim: PlotPNG duration %v is shorter than a sample", d)
	}
	traces := make([]plotter.XYs, nch)
	for c := range traces {
		traces[c] = make(plotter.XYs, 0, total)
	}
	var spikes []sort.Spike
	for done := 0; done < total; {
		b, err := s.Next(context.Background())
		if err != nil {
			return err
		}
		for t := 0; t < b.Len() && done < total; t++ {
			x := float64(done) / s.cfg.Rate
			for c := 0; c < nch; c++ {
				traces[c] = append(traces[c], plotter.XY{X: x, Y: float64(b.At(t, c)) * b.Gain})
			}
			done++
		}
		spikes = s.TakeSpikes(spikes)
	}
	// Stack the traces with a fixed spacing around each channel's median.
	const spacing = 600.0
	pal := []color.Color{
		color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
		color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	}
	pt := plot.New()
	pt.Title.Text = fmt.Sprintf("simulated raw signal (seed %d), ground-truth spikes marked", s.cfg.Seed)
	pt.X.Label.Text = "s"
	pt.Y.Label.Text = "µV (channels offset by 600)"
	offsets := make([]float64, nch)
	for c := 0; c < nch; c++ {
		var mean float64
		for _, p := range traces[c] {
			mean += p.Y
		}
		mean /= float64(len(traces[c]))
		offsets[c] = -float64(c)*spacing - mean
		for i := range traces[c] {
			traces[c][i].Y += offsets[c]
		}
		l, err := plotter.NewLine(traces[c])
		if err != nil {
			return err
		}
		l.Width = vg.Points(0.3)
		l.Color = color.Gray{0x40}
		pt.Add(l)
	}
	rank := map[int32]int{}
	for _, u := range s.units {
		if u.Channel < nch {
			rank[u.ID] = indexOf(s.byChan[u.Channel], u.ID, s)
		}
	}
	for k := 0; k < 4; k++ {
		var pts plotter.XYs
		for _, sp := range spikes {
			if int(sp.Channel) < nch && rank[sp.Unit] == k && sp.Sample < uint64(total) {
				pts = append(pts, plotter.XY{X: float64(sp.Sample) / s.cfg.Rate, Y: offsets[sp.Channel] + float64(sp.Amplitude) - 60})
			}
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Shape = draw.PyramidGlyph{}
		sc.GlyphStyle.Radius = vg.Points(2)
		sc.GlyphStyle.Color = pal[k%len(pal)]
		pt.Add(sc)
	}

	tp := plot.New()
	tp.Title.Text = "unit templates (raw)"
	tp.X.Label.Text = "ms from trough"
	tp.Y.Label.Text = "µV"
	for _, u := range s.units {
		if u.Channel >= nch {
			continue
		}
		xy := make(plotter.XYs, len(u.Template))
		for j, v := range u.Template {
			xy[j] = plotter.XY{X: float64(j-u.Pre) * 1000 / s.cfg.Rate, Y: float64(v)}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color = pal[rank[u.ID]%len(pal)]
		tp.Add(l)
		tp.Legend.Add(fmt.Sprintf("unit %d ch %d SNR %.1f", u.ID, u.Channel, u.SNR), l)
	}
	tp.Legend.Top = false
	tp.Legend.TextStyle.Font.Size = vg.Points(7)

	img := vgimg.New(16*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	left := tiles.At(dc, 0, 0)
	left.Max.X += (left.Max.X - left.Min.X) * 0.5
	right := tiles.At(dc, 1, 0)
	right.Min.X += (right.Max.X - right.Min.X) * 0.55
	pt.Draw(left)
	tp.Draw(right)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("sim: %s: %w", path, err)
	}
	return f.Close()
}

// indexOf returns the position of unit id among the unit indexes of a
// channel.
func indexOf(idx []int32, id int32, s *Sim) int {
	for i, ui := range idx {
		if s.units[ui].ID == id {
			return i
		}
	}
	return 0
}
