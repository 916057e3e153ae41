package imaging_test

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

// fuzzLimits keep each fuzzed decode small: 1 MiB in, 1 megapixel out.
var fuzzLimits = imaging.Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, MaxDimension: 4096, MaxDecodedBytes: 8 << 20}

// FuzzDecode feeds arbitrary bytes to DecodeConfig and Decode (OpenCV):
// neither may panic or crash; every error matches one of the package's
// sentinels; a decoded image has the header's dimensions, within the limits;
// no gocv Mat is left behind (with -tags matprofile).
func FuzzDecode(f *testing.F) {
	img := image.NewRGBA(image.Rect(0, 0, 9, 5))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 13)
	}
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		f.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, nil); err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{p.Bytes(), j.Bytes(), p.Bytes()[:40], j.Bytes()[:len(j.Bytes())/2],
		[]byte("RIFF\x1a\x00\x00\x00WEBPVP8L"), []byte("BM"), []byte("II*\x00\x08\x00\x00\x00\x00\x00"), nil} {
		f.Add(s)
	}
	before, counting := imaging.LiveMats()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, cerr := imaging.DecodeConfig(data)
		if cerr != nil && !errors.Is(cerr, imaging.ErrUnsupportedFormat) && !errors.Is(cerr, imaging.ErrCorrupt) && !errors.Is(cerr, imaging.ErrTooLarge) {
			t.Fatalf("DecodeConfig error without a sentinel: %v", cerr)
		}
		m, err := imaging.Decode(data, fuzzLimits)
		if counting {
			if n, _ := imaging.LiveMats(); n != before {
				t.Fatalf("%d gocv Mats alive after Decode, %d before", n, before)
			}
		}
		if err != nil {
			if !errors.Is(err, imaging.ErrUnsupportedFormat) && !errors.Is(err, imaging.ErrCorrupt) && !errors.Is(err, imaging.ErrTooLarge) {
				t.Fatalf("Decode error without a sentinel: %v", err)
			}
			return
		}
		if cerr != nil {
			t.Fatalf("Decode succeeded where DecodeConfig failed: %v", cerr)
		}
		if m.Width() != cfg.Width || m.Height() != cfg.Height {
			t.Fatalf("decoded %dx%d, header says %dx%d", m.Width(), m.Height(), cfg.Width, cfg.Height)
		}
		if int64(m.Width())*int64(m.Height()) > fuzzLimits.MaxPixels || len(m.BGR()) != 3*m.Width()*m.Height() {
			t.Fatalf("decoded %dx%d with %d bytes", m.Width(), m.Height(), len(m.BGR()))
		}
	})
}
