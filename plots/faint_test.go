package plots

import (
	"bytes"
	"image"
	"image/color"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// TestFaintLinesPixels: faint lines are drawn into an image canvas's
// pixels along their path, with the colour's alpha, anti-aliased over
// about one pixel, and nowhere else; on a vector canvas (SVG) they are
// stroked as paths.
func TestFaintLinesPixels(t *testing.T) {
	col := color.NRGBA{R: 255, A: 128}
	f := &faintLines{x: []float64{0, 1, 2}, ys: [][]float32{{0, 0, 0}, {0, 1, 2}}, color: col, width: vg.Points(0.6)}
	p := plot.New()
	p.HideAxes()
	p.BackgroundColor = nil
	p.Add(f)
	img := vgimg.NewWith(vgimg.UseWH(2*vg.Inch, 2*vg.Inch), vgimg.UseDPI(100), vgimg.UseBackgroundColor(color.Transparent))
	// Wrapped, as gonum/plot's canvases are when a figure is laid out.
	p.Draw(draw.Canvas{Canvas: draw.New(img), Rectangle: draw.New(img).Rectangle})
	rgba := img.Image().(*image.RGBA)
	b := rgba.Bounds()
	var painted, opaque int
	rowHits := map[int]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgba.RGBAAt(x, y)
			if c.A == 0 {
				continue
			}
			painted++
			if c.G != 0 || c.B != 0 || c.R > c.A {
				t.Fatalf("pixel (%d, %d) = %v: not premultiplied red", x, y, c)
			}
			if c.A > 200 {
				opaque++
			}
			rowHits[y]++
		}
	}
	// Two lines of about 200 pixels each: a horizontal one along the
	// bottom and a diagonal; each covered pixel holds part of alpha 128
	// (where they cross, a little more).
	if painted < 300 || painted > 1200 {
		t.Errorf("%d pixels painted, want about 400-800", painted)
	}
	if opaque > 0 {
		t.Errorf("%d pixels nearly opaque: the colour's alpha is not kept", opaque)
	}
	// The horizontal line: most of its pixels on one or two rows.
	best := 0
	for _, n := range rowHits {
		best = max(best, n)
	}
	if best < 150 {
		t.Errorf("the busiest row holds %d pixels, want most of a 200-pixel horizontal line", best)
	}

	svg := vgsvg.New(2*vg.Inch, 2*vg.Inch)
	p.Draw(draw.New(svg))
	var buf bytes.Buffer
	if _, err := svg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(buf.Bytes(), []byte("<path")); n < 2 {
		t.Errorf("SVG has %d paths, want the two lines stroked", n)
	}
}
