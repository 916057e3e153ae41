package ingest_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/facestream/facestream/internal/stages/ingest"
)

// fuzzSeeds are tiny valid images and their broken cousins; the committed
// corpus in testdata/fuzz/FuzzValidate adds crashers found earlier.
func fuzzSeeds(t testing.TB) [][]byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 6))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, nil); err != nil {
		t.Fatal(err)
	}
	gray := image.NewGray(image.Rect(0, 0, 3, 3))
	gray.Set(1, 1, color.Gray{Y: 200})
	var g bytes.Buffer
	if err := png.Encode(&g, gray); err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		p.Bytes(), j.Bytes(), g.Bytes(),
		p.Bytes()[:len(p.Bytes())/2], j.Bytes()[:len(j.Bytes())-3],
		[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), []byte("BM\x00\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00"),
		[]byte("II*\x00\x08\x00\x00\x00"), []byte("GIF89a"), {},
	}
}

// FuzzValidate feeds arbitrary bytes to Validate: it must never panic, and
// it must either refuse them with a *Rejection carrying a reason or return a
// header within the limits.
func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	lim := ingest.Limits{MaxBytes: 1 << 20, MaxPixels: 4_000_000, MaxDecodedBytes: 64 << 20, BombMinPixels: 100_000, BombPixelsPerByte: 1000}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ingest.Validate(data, lim)
		if err != nil {
			var rej *ingest.Rejection
			if !errors.As(err, &rej) || rej.Reason == "" {
				t.Fatalf("Validate error %v (%T) is not a Rejection with a reason", err, err)
			}
			return
		}
		if h.Format == "" || h.Format != ingest.Sniff(data) {
			t.Fatalf("format %q, sniffed %q", h.Format, ingest.Sniff(data))
		}
		if h.Width <= 0 || h.Height <= 0 || int64(h.Width)*int64(h.Height) > lim.MaxPixels {
			t.Fatalf("accepted %dx%d", h.Width, h.Height)
		}
		if h.Orientation < 0 || h.Orientation > 8 {
			t.Fatalf("orientation %d", h.Orientation)
		}
	})
}
