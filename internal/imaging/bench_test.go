package imaging_test

import (
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

var benchNorm = imaging.Normalize{Order: imaging.RGB, Mean: [3]float32{127.5, 127.5, 127.5}, Std: [3]float32{128, 128, 128}}

// BenchmarkLetterbox splits the detector's preprocessing of t1.jpg
// (1280×886 → 640×443 in a 640×640 input) into its parts.
func BenchmarkLetterbox(b *testing.B) {
	img, err := imaging.Decode(testdata(b, "insightface/images/t1.jpg"), imaging.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, 3*640*640)
	b.Run("letterbox", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := img.LetterboxTensor(dst, 640, 640, benchNorm); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("resize-only", func(b *testing.B) {
		b.ReportAllocs()
		lb := imaging.LetterboxSize(img.Width(), img.Height(), 640, 640)
		for b.Loop() {
			if _, err := img.Resize(lb.ResizedWidth, lb.ResizedHeight); err != nil {
				b.Fatal(err)
			}
		}
	})
	small, _ := img.Resize(640, 640)
	b.Run("normalise-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := small.Tensor(dst, benchNorm); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	data := testdata(b, "insightface/images/t1.jpg")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := imaging.Decode(data, imaging.DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}
