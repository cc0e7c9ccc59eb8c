package plots

import (
	"context"
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/spikeline/spikeline/device"
	"github.com/spikeline/spikeline/sim"
	"github.com/spikeline/spikeline/sort"
)

// simChannels is the most channels Simulation draws.
const simChannels = 8

// Simulation simulates d of cfg (at most 8 channels of it are drawn) and
// writes a PNG to path: the raw traces, stacked, with ground-truth spikes
// marked by unit, and beside them the units' raw templates.
func Simulation(path string, cfg sim.Config, d time.Duration) error {
	cfg.Duration = 0
	s, err := sim.New(cfg)
	if err != nil {
		return err
	}
	cfg = s.Config()
	nch := min(cfg.Channels, simChannels)
	total := int(d.Seconds() * cfg.Rate)
	if total <= 0 {
		return fmt.Errorf("plots: simulation duration %v is shorter than a sample", d)
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
			x := float64(done) / cfg.Rate
			for c := 0; c < nch; c++ {
				traces[c] = append(traces[c], plotter.XY{X: x, Y: float64(b.At(t, c)) * b.Gain})
			}
			done++
		}
		spikes = s.TakeSpikes(spikes)
	}
	// A unit's rank: its place among the units of its channel.
	units := s.Units()
	rank := map[int32]int{}
	onChannel := map[int]int{}
	for _, u := range units {
		if u.Channel < nch {
			rank[u.ID] = onChannel[u.Channel]
			onChannel[u.Channel]++
		}
	}
	raw, err := stacked(traces, 600, nil, nil, total, cfg.Rate)
	if err != nil {
		return err
	}
	raw.Title.Text = fmt.Sprintf("simulated raw signal (seed %d)", cfg.Seed)
	raw.Y.Label.Text = "µV (channels 600 µV apart)"
	// The same traces in the spike band, with the ground truth marked.
	for c := range traces {
		y := make([]float64, len(traces[c]))
		for i, p := range traces[c] {
			y[i] = p.Y
		}
		sim.BandPass(cfg.Rate, y)
		for i := range y {
			traces[c][i].Y = y[i]
		}
	}
	band, err := stacked(traces, 250, spikes, rank, total, cfg.Rate)
	if err != nil {
		return err
	}
	band.Title.Text = "300–6000 Hz band, ground-truth spikes marked by unit"
	band.Y.Label.Text = "µV (channels 250 µV apart)"

	tp := plot.New()
	tp.Title.Text = "unit templates (raw)"
	tp.X.Label.Text = "ms from trough"
	tp.Y.Label.Text = "µV"
	for _, u := range units {
		if u.Channel >= nch {
			continue
		}
		xy := make(plotter.XYs, len(u.Template))
		for j, v := range u.Template {
			xy[j] = plotter.XY{X: float64(j-u.Pre) * 1000 / cfg.Rate, Y: float64(v)}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color = palette[rank[u.ID]%len(palette)]
		tp.Add(l)
		tp.Legend.Add(fmt.Sprintf("unit %d ch %d SNR %.1f", u.ID, u.Channel, u.SNR), l)
	}
	tp.Legend.Top = false
	tp.Legend.TextStyle.Font.Size = vg.Points(7)

	img := vgimg.New(16*vg.Inch, 10*vg.Inch)
	dc := draw.New(img)
	pad := vg.Millimeter * 3
	w := dc.Max.X - dc.Min.X
	left, right := dc, dc
	left.Max.X = dc.Min.X + 0.72*w
	right.Min.X = left.Max.X + pad
	top, bottom := left, left
	top.Min.Y = left.Min.Y + (left.Max.Y-left.Min.Y)*0.55
	bottom.Max.Y = top.Min.Y - pad
	raw.Draw(top)
	band.Draw(bottom)
	tp.Draw(right)
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

// palette colours units by their rank on their channel.
var palette = []color.Color{
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
}

// stacked plots traces spacing µV apart (each around its mean) and, when
// spikes is not nil, marks them below their trace, coloured by rank.
func stacked(traces []plotter.XYs, spacing float64, spikes []sort.Spike, rank map[int32]int, total int, rate float64) (*plot.Plot, error) {
	pt := plot.New()
	pt.X.Label.Text = "s"
	offsets := make([]float64, len(traces))
	for c := range traces {
		var mean float64
		for _, p := range traces[c] {
			mean += p.Y
		}
		mean /= float64(len(traces[c]))
		offsets[c] = -float64(c)*spacing - mean
		xy := make(plotter.XYs, len(traces[c]))
		for i, p := range traces[c] {
			xy[i] = plotter.XY{X: p.X, Y: p.Y + offsets[c]}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Width = vg.Points(0.3)
		l.Color = color.Gray{0x40}
		pt.Add(l)
	}
	for k := 0; k < len(palette) && spikes != nil; k++ {
		var pts plotter.XYs
		for _, sp := range spikes {
			if int(sp.Channel) < len(traces) && rank[sp.Unit] == k && sp.Sample < uint64(total) {
				pts = append(pts, plotter.XY{X: float64(sp.Sample) / rate, Y: offsets[sp.Channel] - 0.4*spacing})
			}
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle.Shape = draw.PyramidGlyph{}
		sc.GlyphStyle.Radius = vg.Points(2)
		sc.GlyphStyle.Color = palette[k]
		pt.Add(sc)
	}
	return pt, nil
}
