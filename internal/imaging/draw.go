package imaging

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"runtime"

	"gocv.io/x/gocv"
)

// Shape is something Draw can paint: a [Rect], a [Dot] or a [Text].
type Shape interface {
	draw(*gocv.Mat)
}

// Rect is a rectangle outline from (X0, Y0) to (X1, Y1).
type Rect struct {
	X0, Y0, X1, Y1 float32
	Color          color.RGBA
	Thickness      int // 0 means 2
}

// Dot is a filled circle at (X, Y).
type Dot struct {
	X, Y   float32
	Radius int // 0 means 2
	Color  color.RGBA
}

// Text is a label whose baseline starts at (X, Y), in OpenCV's Hershey
// simplex font.
type Text struct {
	X, Y  float32
	Text  string
	Color color.RGBA
	Scale float64 // 0 means 0.5
}

func pt(x, y float32) image.Point {
	return image.Pt(int(math.Round(float64(x))), int(math.Round(float64(y))))
}

func (r Rect) draw(m *gocv.Mat) {
	th := r.Thickness
	if th == 0 {
		th = 2
	}
	gocv.RectangleWithParams(m, image.Rectangle{Min: pt(r.X0, r.Y0), Max: pt(r.X1, r.Y1)}, r.Color, th, gocv.Line8, 0)
}

func (d Dot) draw(m *gocv.Mat) {
	rad := d.Radius
	if rad == 0 {
		rad = 2
	}
	gocv.Circle(m, pt(d.X, d.Y), rad, d.Color, -1)
}

func (t Text) draw(m *gocv.Mat) {
	s := t.Scale
	if s == 0 {
		s = 0.5
	}
	gocv.PutText(m, t.Text, pt(t.X, t.Y), gocv.FontHersheySimplex, s, t.Color, 1)
}

// Draw returns a copy of the image with the shapes painted on it, in order.
func (m *Image) Draw(shapes ...Shape) (*Image, error) {
	mat, err := m.copyMat()
	if err != nil {
		return nil, fmt.Errorf("draw: %w", err)
	}
	defer mat.Close()
	for _, s := range shapes {
		s.draw(&mat)
	}
	out, err := fromMat(mat)
	runtime.KeepAlive(m)
	if err != nil {
		return nil, fmt.Errorf("draw: %w", err)
	}
	return out, nil
}
