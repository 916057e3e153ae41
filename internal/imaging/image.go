package imaging

import (
	"errors"
	"fmt"
	"image"
	"image/color"
)

// Image is a decoded picture held in Go memory as 8-bit BGR (OpenCV's native
// order), interleaved, with rows packed: the pixel (x, y) starts at
// 3*(y*Width+x).
//
// An Image is immutable after construction and safe for concurrent use. It
// holds no native memory, so it needs no Close. The zero value is an empty
// image (0×0).
type Image struct {
	w, h int
	pix  []byte
}

// ErrEmpty reports an image or region with no pixels.
var ErrEmpty = errors.New("imaging: empty image or region")

// FromBGR wraps pix (8-bit BGR, packed rows) as a w×h Image. The Image takes
// ownership of pix: the caller must not modify it afterwards.
func FromBGR(w, h int, pix []byte) (*Image, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("image from bgr: %dx%d: %w", w, h, ErrEmpty)
	}
	if len(pix) != 3*w*h {
		return nil, fmt.Errorf("image from bgr: %d bytes for %dx%d, want %d", len(pix), w, h, 3*w*h)
	}
	return &Image{w: w, h: h, pix: pix}, nil
}

// FromRGB copies pix (8-bit RGB, packed rows) into a new w×h Image.
func FromRGB(w, h int, pix []byte) (*Image, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("image from rgb: %dx%d: %w", w, h, ErrEmpty)
	}
	if len(pix) != 3*w*h {
		return nil, fmt.Errorf("image from rgb: %d bytes for %dx%d, want %d", len(pix), w, h, 3*w*h)
	}
	return &Image{w: w, h: h, pix: swapRB(pix)}, nil
}

// FromStd copies a standard library image into a new Image (alpha is
// dropped, not composited).
func FromStd(src image.Image) (*Image, error) {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("image from std: %w", ErrEmpty)
	}
	pix := make([]byte, 3*w*h)
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(src.At(x, y)).(color.NRGBA)
			pix[i], pix[i+1], pix[i+2] = c.B, c.G, c.R
			i += 3
		}
	}
	return &Image{w: w, h: h, pix: pix}, nil
}

// Width is the image width in pixels.
func (m *Image) Width() int { return m.w }

// Height is the image height in pixels.
func (m *Image) Height() int { return m.h }

// Bounds is the rectangle (0,0)-(Width,Height).
func (m *Image) Bounds() image.Rectangle { return image.Rect(0, 0, m.w, m.h) }

// BGR returns the pixel buffer itself (BGR, packed rows). It is shared with
// the Image: treat it as read-only.
func (m *Image) BGR() []byte { return m.pix }

// RGB returns a new buffer with the pixels in RGB order, packed rows.
func (m *Image) RGB() []byte { return swapRB(m.pix) }

// At returns the pixel at (x, y) as R, G, B. It panics outside the bounds.
func (m *Image) At(x, y int) (r, g, b uint8) {
	if x < 0 || y < 0 || x >= m.w || y >= m.h {
		panic(fmt.Sprintf("imaging: At(%d, %d) outside %dx%d", x, y, m.w, m.h))
	}
	i := 3 * (y*m.w + x)
	return m.pix[i+2], m.pix[i+1], m.pix[i]
}

// Std returns a copy as a standard library *image.RGBA (opaque).
func (m *Image) Std() *image.RGBA {
	out := image.NewRGBA(m.Bounds())
	for i, j := 0, 0; i < len(m.pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.pix[i+2], m.pix[i+1], m.pix[i], 255
	}
	return out
}

func swapRB(pix []byte) []byte {
	out := make([]byte, len(pix))
	for i := 0; i+2 < len(pix); i += 3 {
		out[i], out[i+1], out[i+2] = pix[i+2], pix[i+1], pix[i]
	}
	return out
}

// Rotate90 returns the image turned k quarter turns clockwise (k may be
// negative or above 3; it is taken modulo 4). k ≡ 0 returns m itself.
//
// A point (x, y) of m lands, for k ≡ 1, at (H-1-y, x) in pixel-index
// coordinates, or (H-y, x) in continuous coordinates; see [Image.Orient] for
// the general EXIF-style transforms.
func (m *Image) Rotate90(k int) *Image {
	switch ((k % 4) + 4) % 4 {
	case 1:
		return m.Orient(6)
	case 2:
		return m.Orient(3)
	case 3:
		return m.Orient(8)
	default:
		return m
	}
}

// Orient applies an EXIF orientation tag (1..8) so that the result is the
// upright picture: 1 is unchanged, 2 mirrors horizontally, 3 rotates 180°,
// 4 mirrors vertically, 5 transposes, 6 rotates 90° clockwise, 7 transverses,
// 8 rotates 90° counter-clockwise. Unknown values return m unchanged.
func (m *Image) Orient(tag int) *Image {
	if tag < 2 || tag > 8 || len(m.pix) == 0 {
		return m
	}
	w, h := m.w, m.h
	ow, oh := w, h
	if tag >= 5 {
		ow, oh = h, w
	}
	// Each destination pixel (x, y) reads the source pixel at the byte offset
	// s0 + x*dx + y*dy: every orientation is linear in x and y.
	var s0, dx, dy int
	last, row := 3*(w-1), 3*w
	bottom := 3 * (h - 1) * w
	switch tag {
	case 2: // mirror: src(w-1-x, y)
		s0, dx, dy = last, -3, row
	case 3: // 180°: src(w-1-x, h-1-y)
		s0, dx, dy = bottom+last, -3, -row
	case 4: // flip: src(x, h-1-y)
		s0, dx, dy = bottom, 3, -row
	case 5: // transpose: src(y, x)
		s0, dx, dy = 0, row, 3
	case 6: // 90° clockwise: src(y, h-1-x)
		s0, dx, dy = bottom, -row, 3
	case 7: // transverse: src(w-1-y, h-1-x)
		s0, dx, dy = bottom+last, -row, -3
	case 8: // 90° counter-clockwise: src(w-1-y, x)
		s0, dx, dy = last, row, -3
	}
	out := make([]byte, len(m.pix))
	d := 0
	for y := 0; y < oh; y++ {
		s := s0 + y*dy
		for x := 0; x < ow; x++ {
			out[d], out[d+1], out[d+2] = m.pix[s], m.pix[s+1], m.pix[s+2]
			d += 3
			s += dx
		}
	}
	return &Image{w: ow, h: oh, pix: out}
}
