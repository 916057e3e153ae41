package imaging

import (
	"image"
	"image/color"
	"math"
	"strings"

	"gocv.io/x/gocv"
)

// Label is a block of text lines on a filled box, for annotations that must
// stay readable on any background. The box is sized to the text (OpenCV's
// Hershey simplex font) and moved inside the image when it would cross an
// edge.
type Label struct {
	// X, Y is the box's top-left corner, or its bottom-left when Above is
	// set (so that the label sits on top of a point, such as a face box).
	X, Y  float32
	Above bool
	// Lines are drawn top to bottom. The font has ASCII only: other runes
	// are dropped.
	Lines []string
	Text  color.RGBA
	Fill  color.RGBA
	Scale float64 // 0 means 0.5
}

func (l Label) draw(m *gocv.Mat) {
	if len(l.Lines) == 0 {
		return
	}
	s := l.Scale
	if s == 0 {
		s = 0.5
	}
	thick := max(1, int(math.Round(s)))
	pad := max(2, int(3*s))
	lines := make([]string, len(l.Lines))
	var w, lineH, base int
	for i, t := range l.Lines {
		lines[i] = asciiOnly(t)
		sz, b := gocv.GetTextSizeWithBaseline(lines[i], gocv.FontHersheySimplex, s, thick)
		w, lineH, base = max(w, sz.X), max(lineH, sz.Y), max(base, b)
	}
	step := lineH + base + pad
	bw, bh := w+2*pad, step*len(lines)+pad
	x0, y0 := int(math.Round(float64(l.X))), int(math.Round(float64(l.Y)))
	if l.Above {
		y0 -= bh
	}
	x0 = max(0, min(x0, m.Cols()-bw))
	y0 = max(0, min(y0, m.Rows()-bh))
	gocv.Rectangle(m, image.Rect(x0, y0, x0+bw, y0+bh), l.Fill, -1)
	for i, t := range lines {
		gocv.PutText(m, t, image.Pt(x0+pad, y0+pad+lineH+i*step), gocv.FontHersheySimplex, s, l.Text, thick)
	}
}

func asciiOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}
