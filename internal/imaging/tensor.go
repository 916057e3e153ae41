package imaging

import (
	"fmt"
	"image"
	"runtime"

	"gocv.io/x/gocv"
)

// ColorOrder is the channel order a model expects.
type ColorOrder string

// The channel orders.
const (
	RGB ColorOrder = "RGB"
	BGR ColorOrder = "BGR"
)

// Normalize says how 8-bit pixels become model input: channel c (in Order)
// becomes (value - Mean[c]) / Std[c].
type Normalize struct {
	Order ColorOrder
	Mean  [3]float32
	Std   [3]float32
}

// lut is a per-channel lookup table of normalised values, plus the byte
// offset of each output plane's channel inside a BGR pixel.
type lut struct {
	v   [3][256]float32
	off [3]int
}

func (n Normalize) table() (*lut, error) {
	t := new(lut)
	switch n.Order {
	case RGB:
		t.off = [3]int{2, 1, 0}
	case BGR, "":
		t.off = [3]int{0, 1, 2}
	default:
		return nil, fmt.Errorf("normalize: unknown colour order %q", n.Order)
	}
	for c := 0; c < 3; c++ {
		if n.Std[c] == 0 {
			return nil, fmt.Errorf("normalize: std[%d] is 0", c)
		}
		for v := 0; v < 256; v++ {
			t.v[c][v] = (float32(v) - n.Mean[c]) / n.Std[c]
		}
	}
	return t, nil
}

// Letterbox records how LetterboxTensor placed the picture in the model
// input: scaled by Scale and put at the top-left corner, the rest padded
// with black (0) pixels. It maps model coordinates back to the source.
type Letterbox struct {
	// Scale is model pixels per source pixel. As in InsightFace's scrfd.py it
	// is ResizedHeight / source height (the width is rounded down from it).
	Scale float64
	// ResizedWidth and ResizedHeight are the size of the picture inside the input.
	ResizedWidth, ResizedHeight int
	// InputWidth and InputHeight are the size of the model input.
	InputWidth, InputHeight int
}

// ToSource maps a point of the model input back to source-image coordinates.
func (l Letterbox) ToSource(x, y float32) (float32, float32) {
	s := float32(l.Scale)
	return x / s, y / s
}

// LetterboxSize computes the aspect-preserving fit of a srcW×srcH picture
// into a w×h input exactly as InsightFace's scrfd.py does (integer sizes
// rounded down, scale taken from the height).
func LetterboxSize(srcW, srcH, w, h int) Letterbox {
	imRatio := float64(srcH) / float64(srcW)
	modelRatio := float64(h) / float64(w)
	var nw, nh int
	if imRatio > modelRatio {
		nh = h
		nw = int(float64(nh) / imRatio)
	} else {
		nw = w
		nh = int(float64(nw) * imRatio)
	}
	nw, nh = max(nw, 1), max(nh, 1)
	return Letterbox{
		Scale:         float64(nh) / float64(srcH),
		ResizedWidth:  nw,
		ResizedHeight: nh,
		InputWidth:    w,
		InputHeight:   h,
	}
}

// LetterboxTensor resizes the image (bilinear, aspect kept) into the
// top-left corner of a w×h canvas padded with black, and writes it into dst
// as a normalised NCHW float32 tensor of shape [1,3,h,w] (len(dst) must be
// 3*w*h). Resizing is done by OpenCV; colour order, mean/std and the HWC→CHW
// transpose are done in one pass over the resized pixels.
func (m *Image) LetterboxTensor(dst []float32, w, h int, n Normalize) (Letterbox, error) {
	return m.LetterboxTensorFit(dst, w, h, w, h, n)
}

// LetterboxTensorFit is LetterboxTensor with the picture fitted into a
// fitW×fitH box (at most the canvas) at the top-left of the w×h canvas: a
// model with a fixed input size can so see the picture at a smaller scale.
// The returned Letterbox has InputWidth/InputHeight = fitW/fitH.
func (m *Image) LetterboxTensorFit(dst []float32, w, h, fitW, fitH int, n Normalize) (Letterbox, error) {
	if w <= 0 || h <= 0 || len(dst) != 3*w*h {
		return Letterbox{}, fmt.Errorf("letterbox: %d values for a %dx%d input", len(dst), w, h)
	}
	if fitW <= 0 || fitH <= 0 || fitW > w || fitH > h {
		return Letterbox{}, fmt.Errorf("letterbox: fit %dx%d outside the %dx%d input", fitW, fitH, w, h)
	}
	if m == nil || len(m.pix) == 0 {
		return Letterbox{}, fmt.Errorf("letterbox: %w", ErrEmpty)
	}
	t, err := n.table()
	if err != nil {
		return Letterbox{}, fmt.Errorf("letterbox: %w", err)
	}
	lb := LetterboxSize(m.w, m.h, fitW, fitH)
	if lb.ResizedWidth == m.w && lb.ResizedHeight == m.h {
		fillPlanes(dst, m.pix, m.w, m.h, w, h, t)
		return lb, nil
	}
	src, err := m.toMat()
	if err != nil {
		return Letterbox{}, fmt.Errorf("letterbox: %w", err)
	}
	defer src.Close()
	resized := gocv.NewMat()
	defer resized.Close()
	gocv.Resize(src, &resized, image.Pt(lb.ResizedWidth, lb.ResizedHeight), 0, 0, gocv.InterpolationLinear)
	data, err := resized.DataPtrUint8()
	if err != nil {
		return Letterbox{}, fmt.Errorf("letterbox: %w", err)
	}
	fillPlanes(dst, data, lb.ResizedWidth, lb.ResizedHeight, w, h, t)
	runtime.KeepAlive(m)
	return lb, nil
}

// fillPlanes writes the sw×sh BGR pixels of src at the top-left of three
// w×h planes of dst, normalised through t, and pads the rest with the
// normalised value of a black pixel. It is one pass: a table lookup per
// byte, loops shaped so that the compiler drops the bounds checks. (Two
// goroutines were tried: slower whenever the cores are busy with ONNX
// Runtime or other requests, so it stays serial.)
func fillPlanes(dst []float32, src []byte, sw, sh, w, h int, t *lut) {
	plane := w * h
	planes := [3][]float32{dst[:plane], dst[plane : 2*plane], dst[2*plane : 3*plane]}
	fillRows(planes, src, sw, w, 0, sh, t)
	for c := range planes {
		fill(planes[c][sh*w:], t.v[c][0])
	}
}

// fillRows converts rows y0..y1 of src (sw BGR pixels each) into the planes
// (width w), padding each row beyond sw.
func fillRows(planes [3][]float32, src []byte, sw, w, y0, y1 int, t *lut) {
	l0, l1, l2 := &t.v[0], &t.v[1], &t.v[2]
	rgb := t.off[0] == 2
	for y := y0; y < y1; y++ {
		row := src[y*sw*3 : (y+1)*sw*3]
		d0 := planes[0][y*w : y*w+w]
		d1 := planes[1][y*w : y*w+w]
		d2 := planes[2][y*w : y*w+w]
		d0, d1, d2 = d0[:sw], d1[:sw], d2[:sw]
		if rgb {
			for x := range d0 {
				px := row[3*x : 3*x+3 : 3*x+3]
				d0[x], d1[x], d2[x] = l0[px[2]], l1[px[1]], l2[px[0]]
			}
		} else {
			for x := range d0 {
				px := row[3*x : 3*x+3 : 3*x+3]
				d0[x], d1[x], d2[x] = l0[px[0]], l1[px[1]], l2[px[2]]
			}
		}
		if sw < w {
			fill(planes[0][y*w+sw:y*w+w], l0[0])
			fill(planes[1][y*w+sw:y*w+w], l1[0])
			fill(planes[2][y*w+sw:y*w+w], l2[0])
		}
	}
}

func fill(s []float32, v float32) {
	if len(s) == 0 {
		return
	}
	s[0] = v
	for i := 1; i < len(s); i *= 2 {
		copy(s[i:], s[:i])
	}
}

// Tensor writes the whole image into dst as a normalised NCHW float32 tensor
// of shape [1,3,Height,Width] (len(dst) must be 3*Width*Height). Use it on
// crops that already have the model's input size; dst may be a slice of a
// larger batch tensor.
func (m *Image) Tensor(dst []float32, n Normalize) error {
	if m == nil || len(m.pix) == 0 {
		return fmt.Errorf("tensor: %w", ErrEmpty)
	}
	if len(dst) != 3*m.w*m.h {
		return fmt.Errorf("tensor: %d values for a %dx%d image", len(dst), m.w, m.h)
	}
	t, err := n.table()
	if err != nil {
		return fmt.Errorf("tensor: %w", err)
	}
	fillPlanes(dst, m.pix, m.w, m.h, m.w, m.h, t)
	return nil
}

// Resize returns the image scaled to w×h with bilinear interpolation.
func (m *Image) Resize(w, h int) (*Image, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("resize to %dx%d: %w", w, h, ErrEmpty)
	}
	src, err := m.toMat()
	if err != nil {
		return nil, fmt.Errorf("resize: %w", err)
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.Resize(src, &dst, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
	out, err := fromMat(dst)
	runtime.KeepAlive(m)
	if err != nil {
		return nil, fmt.Errorf("resize: %w", err)
	}
	return out, nil
}
