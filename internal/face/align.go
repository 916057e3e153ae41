package face

import (
	"errors"
	"fmt"
	"math"

	"github.com/facestream/facestream/internal/imaging"
)

// ArcFaceTemplate is the five-point template of InsightFace's face_align
// (arcface_dst) for a 112×112 crop, in Landmarks order.
var ArcFaceTemplate = [5][2]float64{
	{38.2946, 51.6963},
	{73.5318, 51.5014},
	{56.0252, 71.7366},
	{41.5493, 92.3655},
	{70.7299, 92.2041},
}

// ErrDegenerate means the landmarks do not determine a similarity transform
// (all points coincide, or they are not finite).
var ErrDegenerate = errors.New("face: degenerate landmarks")

// Template returns the ArcFace template for a size×size crop, scaled as
// InsightFace's estimate_norm does: multiples of 112 scale by size/112;
// multiples of 128 scale by size/128 and shift x by 8·size/128.
func Template(size int) ([5][2]float64, error) {
	var ratio, dx float64
	switch {
	case size > 0 && size%112 == 0:
		ratio = float64(size) / 112
	case size > 0 && size%128 == 0:
		ratio = float64(size) / 128
		dx = 8 * ratio
	default:
		return [5][2]float64{}, fmt.Errorf("arcface template: size %d is not a multiple of 112 or 128", size)
	}
	var t [5][2]float64
	for i, p := range ArcFaceTemplate {
		t[i] = [2]float64{p[0]*ratio + dx, p[1] * ratio}
	}
	return t, nil
}

// EstimateSimilarity returns the similarity transform (rotation, uniform
// scale, translation; no reflection) that maps src onto dst with the least
// squared error: Umeyama's method with scale, as skimage's
// SimilarityTransform.estimate used by InsightFace.
//
// In two dimensions Umeyama's SVD solution has a closed form. With the
// centred points s_i, d_i and A = (1/n) Σ d_i s_iᵀ = [[a, b], [c, e]], the
// rotation angle is atan2(c-b, a+e), and trace(S·D) of Umeyama (σ1+σ2 when
// det A ≥ 0, σ1-σ2 when det A < 0, which is how Umeyama forbids
// reflections) equals √((a+e)² + (c-b)²), so the scale is that divided by
// (1/n) Σ |s_i|². It is the same optimum as the SVD, computed without one.
func EstimateSimilarity(src, dst [][2]float64) (imaging.Affine, error) {
	n := len(src)
	if n < 2 || len(dst) != n {
		return imaging.Affine{}, fmt.Errorf("estimate similarity: %d source and %d destination points: %w", n, len(dst), ErrDegenerate)
	}
	var sx, sy, dx, dy float64
	for i := range src {
		sx += src[i][0]
		sy += src[i][1]
		dx += dst[i][0]
		dy += dst[i][1]
	}
	fn := float64(n)
	sx, sy, dx, dy = sx/fn, sy/fn, dx/fn, dy/fn
	var a, b, c, e, v float64
	for i := range src {
		px, py := src[i][0]-sx, src[i][1]-sy
		qx, qy := dst[i][0]-dx, dst[i][1]-dy
		a += qx * px
		b += qx * py
		c += qy * px
		e += qy * py
		v += px*px + py*py
	}
	a, b, c, e, v = a/fn, b/fn, c/fn, e/fn, v/fn
	p, q := a+e, c-b
	norm := math.Hypot(p, q)
	if !(v > 1e-12) || !(norm > 1e-12) || math.IsInf(v, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return imaging.Affine{}, fmt.Errorf("estimate similarity: %w", ErrDegenerate)
	}
	scale := norm / v
	cos, sin := p/norm, q/norm
	r00, r01, r10, r11 := scale*cos, -scale*sin, scale*sin, scale*cos
	return imaging.Affine{
		{r00, r01, dx - (r00*sx + r01*sy)},
		{r10, r11, dy - (r10*sx + r11*sy)},
	}, nil
}

// AlignTransform is InsightFace's estimate_norm: the similarity transform
// from the five landmarks to the ArcFace template for a size×size crop.
func AlignTransform(landmarks [5][2]float32, size int) (imaging.Affine, error) {
	dst, err := Template(size)
	if err != nil {
		return imaging.Affine{}, fmt.Errorf("align: %w", err)
	}
	src := make([][2]float64, 5)
	for i, p := range landmarks {
		src[i] = [2]float64{float64(p[0]), float64(p[1])}
	}
	m, err := EstimateSimilarity(src, dst[:])
	if err != nil {
		return imaging.Affine{}, fmt.Errorf("align: %w", err)
	}
	return m, nil
}

// AlignedCrop is InsightFace's norm_crop: the face warped (bilinear, black
// border) so that its five landmarks sit on the ArcFace template in a
// size×size crop. It also returns the transform from image to crop.
func AlignedCrop(img *imaging.Image, landmarks [5][2]float32, size int) (*imaging.Image, imaging.Affine, error) {
	m, err := AlignTransform(landmarks, size)
	if err != nil {
		return nil, imaging.Affine{}, err
	}
	crop, err := img.WarpAffine(m, size, size)
	if err != nil {
		return nil, imaging.Affine{}, fmt.Errorf("align: %w", err)
	}
	return crop, m, nil
}
