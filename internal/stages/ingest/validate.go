package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"

	"github.com/facestream/facestream/pkg/events"
)

// Limits bound what Validate accepts.
type Limits struct {
	// MaxBytes bounds the encoded size.
	MaxBytes int64
	// MaxPixels bounds width×height as declared by the header.
	MaxPixels int64
	// MaxDecodedBytes bounds width×height×bytes per pixel of the header's
	// colour model (what a full decode would allocate): above it, the image
	// is a decompression bomb.
	MaxDecodedBytes int64
	// BombMinPixels and BombPixelsPerByte flag a decompression bomb: an
	// image of at least BombMinPixels pixels with more than
	// BombPixelsPerByte pixels per encoded byte (photos hold well under one
	// hundred; a 1-bit PNG of one colour can reach thousands).
	BombMinPixels     int64
	BombPixelsPerByte int64
}

// DefaultLimits match config's defaults: 20 MiB, 40 megapixels, 256 MiB of
// decoded pixels, and a bomb above 4 megapixels at more than 1000 pixels per
// byte.
var DefaultLimits = Limits{
	MaxBytes:          20 << 20,
	MaxPixels:         40_000_000,
	MaxDecodedBytes:   256 << 20,
	BombMinPixels:     4_000_000,
	BombPixelsPerByte: 1000,
}

// Header is what Validate learnt about a valid image, without decoding its
// pixels.
type Header struct {
	// Format is "jpeg", "png", "webp", "bmp" or "tiff": the formats
	// internal/imaging decodes.
	Format string
	// Width and Height are as stored, before the EXIF orientation.
	Width, Height int
	// Orientation is the EXIF orientation of a JPEG (1..8), 0 when none.
	Orientation int
}

// Rejection is why Validate refused an image. It is an error.
type Rejection struct {
	Reason  events.RejectReason
	Message string
}

func (r *Rejection) Error() string { return string(r.Reason) + ": " + r.Message }

func reject(reason events.RejectReason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Sniff names the format of data from its magic bytes: one of the formats
// internal/imaging decodes, or "" (GIF, for one, is not among them).
func Sniff(data []byte) string {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return "jpeg"
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	case bytes.HasPrefix(data, []byte("BM")) && len(data) >= 26:
		return "bmp"
	case bytes.HasPrefix(data, []byte("II*\x00")) || bytes.HasPrefix(data, []byte("MM\x00*")):
		return "tiff"
	}
	return ""
}

// Validate checks an encoded image against lim by its bytes and headers
// alone — no pixel is decoded — and returns its header, or a *Rejection.
// The checks, in order: empty, too_large, unsupported_format, truncated
// (the encoding's end marker is missing), corrupt (the header does not
// parse), too_many_pixels, decompression_bomb.
func Validate(data []byte, lim Limits) (Header, error) {
	if len(data) == 0 {
		return Header{}, reject(events.RejectEmpty, "no image bytes")
	}
	if lim.MaxBytes > 0 && int64(len(data)) > lim.MaxBytes {
		return Header{}, reject(events.RejectTooLarge, "%d bytes, more than the %d allowed", len(data), lim.MaxBytes)
	}
	h := Header{Format: Sniff(data)}
	if h.Format == "" {
		return Header{}, reject(events.RejectUnsupportedFormat, "not a JPEG, PNG, WebP, BMP or TIFF image")
	}
	if err := checkComplete(h.Format, data, &h); err != nil {
		return Header{}, err
	}
	var (
		cfg image.Config
		err error
	)
	r := bytes.NewReader(data)
	switch h.Format {
	case "jpeg":
		cfg, err = jpeg.DecodeConfig(r)
	case "png":
		cfg, err = png.DecodeConfig(r)
	case "webp":
		cfg, err = webp.DecodeConfig(r)
	case "bmp":
		cfg, err = bmp.DecodeConfig(r)
	case "tiff":
		cfg, err = tiff.DecodeConfig(r)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return Header{}, reject(events.RejectTruncated, "%s header ends early", h.Format)
	}
	if err != nil {
		return Header{}, reject(events.RejectCorrupt, "%s header: %v", h.Format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Header{}, reject(events.RejectCorrupt, "%s header declares %dx%d pixels", h.Format, cfg.Width, cfg.Height)
	}
	h.Width, h.Height = cfg.Width, cfg.Height
	pixels := int64(cfg.Width) * int64(cfg.Height)
	if lim.MaxPixels > 0 && pixels > lim.MaxPixels {
		return Header{}, reject(events.RejectTooManyPixels, "%dx%d is %d pixels, more than the %d allowed", cfg.Width, cfg.Height, pixels, lim.MaxPixels)
	}
	if decoded := pixels * int64(bytesPerPixel(cfg.ColorModel)); lim.MaxDecodedBytes > 0 && decoded > lim.MaxDecodedBytes {
		return Header{}, reject(events.RejectDecompressionBomb, "%dx%d would decode to %d bytes, more than the %d allowed", cfg.Width, cfg.Height, decoded, lim.MaxDecodedBytes)
	}
	if lim.BombPixelsPerByte > 0 && pixels >= lim.BombMinPixels && pixels > lim.BombPixelsPerByte*int64(len(data)) {
		return Header{}, reject(events.RejectDecompressionBomb, "%dx%d pixels from %d bytes (%d pixels per byte, at most %d plausible)",
			cfg.Width, cfg.Height, len(data), pixels/int64(len(data)), lim.BombPixelsPerByte)
	}
	return h, nil
}

func bytesPerPixel(m color.Model) int {
	switch m {
	case color.GrayModel:
		return 1
	case color.Gray16Model:
		return 2
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	case color.YCbCrModel:
		return 3
	}
	return 4
}

// checkComplete rejects an encoding whose end is missing: a JPEG without
// its EOI marker after the last scan, a PNG without the IEND chunk, a WebP
// or BMP shorter than its header says. For a JPEG it also reads the EXIF
// orientation into h.
func checkComplete(format string, data []byte, h *Header) error {
	switch format {
	case "jpeg":
		return walkJPEG(data, h)
	case "png":
		return walkPNG(data)
	case "webp":
		if n := int64(binary.LittleEndian.Uint32(data[4:8])) + 8; int64(len(data)) < n {
			return reject(events.RejectTruncated, "WebP of %d bytes, RIFF header says %d", len(data), n)
		}
	case "bmp":
		if n := int64(binary.LittleEndian.Uint32(data[2:6])); n > 0 && int64(len(data)) < n {
			return reject(events.RejectTruncated, "BMP of %d bytes, header says %d", len(data), n)
		}
	}
	return nil
}

// walkPNG follows the chunks to IEND.
func walkPNG(data []byte) error {
	p := 8
	for {
		if p+8 > len(data) {
			return reject(events.RejectTruncated, "PNG ends after %d bytes without IEND", len(data))
		}
		n := int(binary.BigEndian.Uint32(data[p : p+4]))
		typ := string(data[p+4 : p+8])
		end := p + 12 + n
		if n < 0 || end < p || end > len(data) {
			return reject(events.RejectTruncated, "PNG chunk %q at %d runs past the end", typ, p)
		}
		if typ == "IEND" {
			return nil
		}
		p = end
	}
}

// walkJPEG follows the markers and the entropy-coded scans to EOI, reading
// the EXIF orientation from APP1 on the way.
func walkJPEG(data []byte, h *Header) error {
	p := 2
	truncated := func() error {
		return reject(events.RejectTruncated, "JPEG ends after %d bytes without its EOI marker", len(data))
	}
	for {
		// Find the next marker (0xFF, fill bytes, then the code).
		for p < len(data) && data[p] != 0xFF {
			p++
		}
		for p < len(data) && data[p] == 0xFF {
			p++
		}
		if p >= len(data) {
			return truncated()
		}
		code := data[p]
		p++
		switch {
		case code == 0xD9: // EOI
			return nil
		case code == 0x01 || (code >= 0xD0 && code <= 0xD7): // TEM, RSTn: no length
			continue
		}
		if p+2 > len(data) {
			return truncated()
		}
		n := int(binary.BigEndian.Uint16(data[p : p+2]))
		if n < 2 || p+n > len(data) {
			return truncated()
		}
		seg := data[p+2 : p+n]
		if code == 0xE1 && h.Orientation == 0 {
			h.Orientation = exifOrientation(seg)
		}
		p += n
		if code == 0xDA { // SOS: skip the entropy-coded data
			for {
				for p < len(data) && data[p] != 0xFF {
					p++
				}
				if p+1 >= len(data) {
					return truncated()
				}
				next := data[p+1]
				if next == 0x00 || (next >= 0xD0 && next <= 0xD7) || next == 0xFF {
					p++
					if next != 0xFF {
						p++
					}
					continue
				}
				break
			}
		}
	}
}

// exifOrientation reads tag 0x0112 from the IFD0 of an APP1 segment's body
// ("Exif\0\0" and a TIFF structure). It returns 0 for anything it cannot
// read or a value outside 1..8: garbage never fails an image.
func exifOrientation(seg []byte) int {
	if !bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
		return 0
	}
	t := seg[6:]
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:4]) != 42 {
		return 0
	}
	off := int64(bo.Uint32(t[4:8]))
	if off < 8 || off+2 > int64(len(t)) {
		return 0
	}
	n := int64(bo.Uint16(t[off : off+2]))
	for i := range n {
		e := off + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 0
		}
		if bo.Uint16(t[e:e+2]) != 0x0112 {
			continue
		}
		if typ := bo.Uint16(t[e+2 : e+4]); typ != 3 { // SHORT
			return 0
		}
		if v := int(bo.Uint16(t[e+8 : e+10])); v >= 1 && v <= 8 {
			return v
		}
		return 0
	}
	return 0
}
