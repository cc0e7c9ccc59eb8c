package plots

import (
	"image"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// faintLines is a plotter of many thin, translucent lines of one colour
// (a unit's sample waveforms): y values at the same x positions. On an
// image canvas each line is drawn straight into the pixels, anti-aliased
// (Xiaolin Wu's algorithm, about a pixel wide); gonum/plot's stroker turns
// every line into a polygon for the rasterizer first, which took most of
// summary.png's drawing time for a few thousand waveforms. On any other
// canvas (SVG, PDF) the lines are stroked.
type faintLines struct {
	x     []float64
	ys    [][]float32
	color color.NRGBA
	width vg.Length
}

// DataRange implements plot.DataRanger.
func (f *faintLines) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for _, v := range f.x {
		xmin, xmax = min(xmin, v), max(xmax, v)
	}
	for _, y := range f.ys {
		for _, v := range y {
			ymin, ymax = min(ymin, float64(v)), max(ymax, float64(v))
		}
	}
	return xmin, xmax, ymin, ymax
}

// Plot implements plot.Plotter.
func (f *faintLines) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	pts := make([]vg.Point, len(f.x))
	cv, ok := imageCanvas(c.Canvas)
	var img *image.RGBA
	if ok {
		img, ok = cv.Image().(*image.RGBA)
	}
	if !ok {
		style := draw.LineStyle{Color: f.color, Width: f.width}
		for _, y := range f.ys {
			for k := range pts {
				pts[k] = vg.Point{X: trX(f.x[k]), Y: trY(float64(y[k]))}
			}
			c.StrokeLines(style, c.ClipLinesXY(pts)...)
		}
		return
	}
	// vgimg draws with y up from the image's bottom edge, in points.
	dots := cv.DPI() / 72
	h := float64(img.Bounds().Dy())
	pen := newPen(img, f.color)
	for _, y := range f.ys {
		for k := range pts {
			pts[k] = vg.Point{X: trX(f.x[k]), Y: trY(float64(y[k]))}
		}
		for _, line := range c.ClipLinesXY(pts) {
			for k := 1; k < len(line); k++ {
				a, b := line[k-1], line[k]
				pen.line(float64(a.X)*dots, h-float64(a.Y)*dots, float64(b.X)*dots, h-float64(b.Y)*dots, k > 1)
			}
		}
	}
}

// imageCanvas returns the image canvas under c (a draw.Canvas may wrap
// another), if it is one.
func imageCanvas(c vg.Canvas) (*vgimg.Canvas, bool) {
	for {
		switch v := c.(type) {
		case *vgimg.Canvas:
			return v, true
		case draw.Canvas:
			c = v.Canvas
		case *draw.Canvas:
			c = v.Canvas
		default:
			return nil, false
		}
	}
}

// pen draws anti-aliased lines of one translucent colour on an RGBA image
// (premultiplied): each pixel is covered by a fraction of the colour's
// alpha and blended over what is there.
type pen struct {
	img        *image.RGBA
	r, g, b, a float64 // the colour, 0..1, not premultiplied
}

func newPen(img *image.RGBA, c color.NRGBA) *pen {
	return &pen{img: img, r: float64(c.R) / 255, g: float64(c.G) / 255, b: float64(c.B) / 255, a: float64(c.A) / 255}
}

// plot blends the colour over pixel (x, y) with coverage cov (0..1).
func (p *pen) plot(x, y int, cov float64) {
	if !(cov > 0) || !(image.Point{X: x, Y: y}).In(p.img.Rect) {
		return
	}
	a := p.a * min(cov, 1)
	i := p.img.PixOffset(x, y)
	px := p.img.Pix[i : i+4 : i+4]
	keep := 1 - a
	px[0] = uint8(p.r*a*255 + float64(px[0])*keep + 0.5)
	px[1] = uint8(p.g*a*255 + float64(px[1])*keep + 0.5)
	px[2] = uint8(p.b*a*255 + float64(px[2])*keep + 0.5)
	px[3] = uint8(a*255 + float64(px[3])*keep + 0.5)
}

// line draws the segment (x0, y0)–(x1, y1), in pixels, by Xiaolin Wu's
// algorithm. joined skips the first end point (drawn as the previous
// segment's last), so a polyline does not darken its joints.
func (p *pen) line(x0, y0, x1, y1 float64, joined bool) {
	steep := math.Abs(y1-y0) > math.Abs(x1-x0)
	if steep {
		x0, y0 = y0, x0
		x1, y1 = y1, x1
	}
	back := x0 > x1
	if back {
		x0, x1 = x1, x0
		y0, y1 = y1, y0
	}
	put := func(x, y int, cov float64) {
		if steep {
			p.plot(y, x, cov)
		} else {
			p.plot(x, y, cov)
		}
	}
	dx := x1 - x0
	grad := 1.0
	if dx > 0 {
		grad = (y1 - y0) / dx
	}
	// Pixel centres are at integer + 0.5: shift so they fall on integers.
	x0, y0, x1 = x0-0.5, y0-0.5, x1-0.5
	xs, xe := int(math.Round(x0)), int(math.Round(x1))
	if joined {
		// The shared end point is the one the previous segment ended on.
		if back {
			xe--
		} else {
			xs++
		}
	}
	for x := xs; x <= xe; x++ {
		y := y0 + grad*(float64(x)-x0)
		fy := math.Floor(y)
		f := y - fy
		put(x, int(fy), 1-f)
		put(x, int(fy)+1, f)
	}
}
