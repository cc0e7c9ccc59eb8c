package plots

import (
	"fmt"
	"image/color"
	"image/png"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/spikeline/spikeline/device"
)

// TitleHeight is the height of the title line of NewFigure.
const TitleHeight = 0.45 * vg.Inch

// NewFigure returns a white W×H image at dpi dots per inch with title
// centred on its top line, and a canvas over the whole of it.
func NewFigure(W, H vg.Length, dpi int, title string) (*vgimg.Canvas, draw.Canvas) {
	img := vgimg.NewWith(vgimg.UseWH(W, H), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	dc.FillText(Text(13, draw.XCenter, draw.YTop), vg.Point{X: W / 2, Y: H - vg.Points(6)}, title)
	return img, dc
}

// Body is the part of a NewFigure canvas below its title.
func Body(dc draw.Canvas) draw.Canvas { return draw.Crop(dc, 0, 0, 0, -TitleHeight) }

// Text is the text style of figure titles and annotations: black,
// plot.DefaultFont at size points.
func Text(size float64, x draw.XAlignment, y draw.YAlignment) draw.TextStyle {
	ts := draw.TextStyle{Color: color.Black, Font: plot.DefaultFont, Handler: plot.DefaultTextHandler, XAlign: x, YAlign: y}
	ts.Font.Size = vg.Points(size)
	return ts
}

// SavePNG writes img to path as a PNG.
func SavePNG(path string, img *vgimg.Canvas) error {
	f, err := device.CreateFile(path)
	if err != nil {
		return err
	}
	// Fastest compression: a third of the encoding time, a few percent
	// larger file.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(f, img.Image()); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// unitColors are distinct colours for the units of one channel (tab10).
var unitColors = []color.NRGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
	{188, 189, 34, 255}, {23, 190, 207, 255},
}

// UnitColor is the colour of the i-th unit (in unit order) of a channel,
// in every figure: summary.png and the snapshot's templates and raster.
func UnitColor(i int) color.NRGBA { return unitColors[i%len(unitColors)] }
