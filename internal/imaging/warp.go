package imaging

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"runtime"

	"gocv.io/x/gocv"
)

// Affine is a 2×3 matrix mapping a source point (x, y) to the destination
// point (A[0][0]x + A[0][1]y + A[0][2], A[1][0]x + A[1][1]y + A[1][2]), the
// convention of cv::warpAffine and of InsightFace's face_align.
type Affine [2][3]float64

// Apply maps the point (x, y).
func (a Affine) Apply(x, y float64) (float64, float64) {
	return a[0][0]*x + a[0][1]*y + a[0][2], a[1][0]*x + a[1][1]*y + a[1][2]
}

// Invert returns the inverse transform; ok is false when a is singular.
func (a Affine) Invert() (inv Affine, ok bool) {
	det := a[0][0]*a[1][1] - a[0][1]*a[1][0]
	if det == 0 || math.IsNaN(det) || math.IsInf(det, 0) {
		return Affine{}, false
	}
	ia, ib := a[1][1]/det, -a[0][1]/det
	ic, id := -a[1][0]/det, a[0][0]/det
	return Affine{
		{ia, ib, -(ia*a[0][2] + ib*a[1][2])},
		{ic, id, -(ic*a[0][2] + id*a[1][2])},
	}, true
}

// WarpAffine maps the image through a into a new w×h image, sampling
// bilinearly; destination pixels that fall outside the source are black
// (cv::warpAffine with INTER_LINEAR and BORDER_CONSTANT 0).
func (m *Image) WarpAffine(a Affine, w, h int) (*Image, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("warp affine to %dx%d: %w", w, h, ErrEmpty)
	}
	src, err := m.toMat()
	if err != nil {
		return nil, fmt.Errorf("warp affine: %w", err)
	}
	defer src.Close()
	mat := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer mat.Close()
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			mat.SetDoubleAt(r, c, a[r][c])
		}
	}
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.WarpAffineWithParams(src, &dst, mat, image.Pt(w, h), gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
	out, err := fromMat(dst)
	runtime.KeepAlive(m)
	if err != nil {
		return nil, fmt.Errorf("warp affine: %w", err)
	}
	return out, nil
}

// CenteredTransform is InsightFace's face_align.transform: scale the source
// by scale about the point (cx, cy), rotate by rotationDeg degrees, and put
// (cx, cy) at the centre of a size×size output.
func CenteredTransform(cx, cy, scale, rotationDeg float64, size int) Affine {
	rot := rotationDeg * math.Pi / 180
	cos, sin := math.Cos(rot), math.Sin(rot)
	// t1 (scale) + t2 (translate by -scaled centre) + t3 (rotate) + t4 (translate to the output centre).
	tx, ty := -cx*scale, -cy*scale
	half := float64(size) / 2
	return Affine{
		{scale * cos, -scale * sin, cos*tx - sin*ty + half},
		{scale * sin, scale * cos, sin*tx + cos*ty + half},
	}
}

// CenteredCrop cuts a size×size crop centred on (cx, cy) with the source
// scaled by scale (size / side for a square of side source pixels), as
// InsightFace's face_align.transform does for the buffalo genderage model
// (scale = 96 / (1.5 × the longer bbox side), rotation 0). It returns the
// crop and the transform used.
func (m *Image) CenteredCrop(cx, cy, scale, rotationDeg float64, size int) (*Image, Affine, error) {
	a := CenteredTransform(cx, cy, scale, rotationDeg, size)
	out, err := m.WarpAffine(a, size, size)
	if err != nil {
		return nil, Affine{}, fmt.Errorf("centred crop: %w", err)
	}
	return out, a, nil
}
