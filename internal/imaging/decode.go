package imaging

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"runtime"

	"gocv.io/x/gocv"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// Format is an encoded image format.
type Format string

// The formats Decode accepts.
const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
	WebP Format = "webp"
	BMP  Format = "bmp"
	TIFF Format = "tiff"
)

// Errors callers can test with errors.Is.
var (
	// ErrUnsupportedFormat means the bytes are not one of the accepted formats.
	ErrUnsupportedFormat = errors.New("imaging: unsupported image format")
	// ErrTooLarge means the encoded size or the header's dimensions exceed the Limits.
	ErrTooLarge = errors.New("imaging: image too large")
	// ErrCorrupt means the header or the pixel data could not be decoded.
	ErrCorrupt = errors.New("imaging: corrupt image")
)

// Limits bound what Decode accepts. A zero field means no limit.
type Limits struct {
	// MaxBytes bounds the encoded size.
	MaxBytes int64
	// MaxPixels bounds width × height as declared by the header.
	MaxPixels int64
	// MaxDimension bounds the longer side.
	MaxDimension int
	// MaxDecodedBytes bounds width × height × bytes per pixel of the source
	// colour model (e.g. 4 for RGBA, 8 for 16-bit RGBA), checked against the
	// header before any pixel is decoded.
	MaxDecodedBytes int64
}

// DefaultLimits accept photos up to 50 MB, 64 megapixels and 16384 pixels a
// side, with 256 MiB of decoded pixels.
var DefaultLimits = Limits{
	MaxBytes:        50 << 20,
	MaxPixels:       64 << 20,
	MaxDimension:    16384,
	MaxDecodedBytes: 256 << 20,
}

// Config is what the header of an encoded image declares.
type Config struct {
	Format Format
	Width  int
	Height int
	// BytesPerPixel of the stored colour model (1 grey, 3 YCbCr/RGB, 4 RGBA/CMYK, 8 RGBA64).
	BytesPerPixel int
}

// Sniff identifies the format from the magic bytes.
func Sniff(data []byte) (Format, error) {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return JPEG, nil
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, nil
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return WebP, nil
	case bytes.HasPrefix(data, []byte("BM")) && len(data) >= 26:
		return BMP, nil
	case bytes.HasPrefix(data, []byte("II*\x00")) || bytes.HasPrefix(data, []byte("MM\x00*")):
		return TIFF, nil
	}
	return "", fmt.Errorf("sniff image: %w", ErrUnsupportedFormat)
}

// DecodeConfig reads the format and dimensions from the header without
// decoding pixels.
func DecodeConfig(data []byte) (Config, error) {
	f, err := Sniff(data)
	if err != nil {
		return Config{}, err
	}
	var c image.Config
	r := bytes.NewReader(data)
	switch f {
	case JPEG:
		c, err = jpeg.DecodeConfig(r)
	case PNG:
		c, err = png.DecodeConfig(r)
	case WebP:
		c, err = webp.DecodeConfig(r)
	case BMP:
		c, err = bmp.DecodeConfig(r)
	case TIFF:
		c, err = tiff.DecodeConfig(r)
	}
	if err != nil {
		return Config{}, fmt.Errorf("decode %s header: %w: %w", f, ErrCorrupt, err)
	}
	if c.Width <= 0 || c.Height <= 0 {
		return Config{}, fmt.Errorf("decode %s header: %dx%d: %w", f, c.Width, c.Height, ErrCorrupt)
	}
	return Config{Format: f, Width: c.Width, Height: c.Height, BytesPerPixel: bytesPerPixel(c.ColorModel)}, nil
}

func bytesPerPixel(m color.Model) int {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel, color.NYCbCrAModel:
		return 4
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 4
}

// Check reports whether the header c is within the limits.
func (l Limits) Check(c Config) error {
	w, h := int64(c.Width), int64(c.Height)
	switch {
	case l.MaxDimension > 0 && (c.Width > l.MaxDimension || c.Height > l.MaxDimension):
		return fmt.Errorf("%dx%d: side over %d: %w", c.Width, c.Height, l.MaxDimension, ErrTooLarge)
	case l.MaxPixels > 0 && w*h > l.MaxPixels:
		return fmt.Errorf("%dx%d: %d pixels over %d: %w", c.Width, c.Height, w*h, l.MaxPixels, ErrTooLarge)
	case l.MaxDecodedBytes > 0 && w*h*int64(max(c.BytesPerPixel, 3)) > l.MaxDecodedBytes:
		return fmt.Errorf("%dx%d: %d decoded bytes over %d: %w", c.Width, c.Height, w*h*int64(max(c.BytesPerPixel, 3)), l.MaxDecodedBytes, ErrTooLarge)
	}
	return nil
}

// Decode decodes data (format sniffed from its magic bytes) into an Image.
// The encoded size and the header's dimensions are checked against lim
// before any pixel buffer is allocated. EXIF orientation is ignored: the
// pixels come out as stored.
func Decode(data []byte, lim Limits) (*Image, error) {
	return DecodeReduced(data, lim, 1)
}

// reducedFlags are OpenCV's read flags for a colour picture reduced by 1,
// 2, 4 or 8.
var reducedFlags = map[int]gocv.IMReadFlag{
	1: gocv.IMReadColor, 2: gocv.IMReadReducedColor2, 4: gocv.IMReadReducedColor4, 8: gocv.IMReadReducedColor8,
}

// DecodeReduced decodes data as Decode does, reduced by factor (1, 2, 4 or
// 8): the result is about width/factor × height/factor. A JPEG is reduced
// as it is decoded (libjpeg's scaled inverse DCT: the entropy decoding stays
// whole, the inverse transform, upsampling and colour conversion shrink
// with the picture); other formats are decoded whole and then resized by
// OpenCV. The limits apply to the stored size. Use Reduction to choose the
// factor.
func DecodeReduced(data []byte, lim Limits, factor int) (*Image, error) {
	flags, ok := reducedFlags[factor]
	if !ok {
		return nil, fmt.Errorf("decode image: reduction %d, want 1, 2, 4 or 8", factor)
	}
	if lim.MaxBytes > 0 && int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("decode image: %d bytes over %d: %w", len(data), lim.MaxBytes, ErrTooLarge)
	}
	cfg, err := DecodeConfig(data)
	if err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	if err := lim.Check(cfg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", cfg.Format, err)
	}
	mat, err := gocv.IMDecode(data, flags|gocv.IMReadIgnoreOrientation)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w: %w", cfg.Format, ErrCorrupt, err)
	}
	defer mat.Close()
	runtime.KeepAlive(data)
	if mat.Empty() {
		return nil, fmt.Errorf("decode %s: opencv could not decode it: %w", cfg.Format, ErrCorrupt)
	}
	img, err := fromMat(mat)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", cfg.Format, err)
	}
	return img, nil
}

// Reduction is the largest factor of DecodeReduced (1, 2, 4 or 8) that
// keeps the longer side of the picture c declares at least minSide, for a
// JPEG; 1 for other formats, whose decoding a reduction does not make
// cheaper, and when minSide is 0 or less.
func Reduction(c Config, minSide int) int {
	if c.Format != JPEG || minSide <= 0 {
		return 1
	}
	long := max(c.Width, c.Height)
	r := 1
	for r < 8 && (long+2*r-1)/(2*r) >= minSide {
		r *= 2
	}
	return r
}
