package imaging_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// BenchmarkDecodeTestSet decodes every JPEG of the test set (the images
// `facestream bench` drives) whole and reduced as the detect stage's
// default allows (longer side at least 640); one op is the whole set.
func BenchmarkDecodeTestSet(b *testing.B) {
	dir := os.Getenv("FACESTREAM_TESTDATA")
	if dir == "" {
		b.Fatal("FACESTREAM_TESTDATA is not set (the Makefile sets it to ../shared/testdata)")
	}
	var files [][]byte
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := strings.ToLower(filepath.Ext(p)); ext == ".jpg" || ext == ".jpeg" {
			data, err := os.ReadFile(p)
			files = append(files, data)
			return err
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		b.Fatalf("%d JPEGs under %s: %v", len(files), dir, err)
	}
	for _, minSide := range []int{0, 640} {
		b.Run(fmt.Sprintf("min-side-%d", minSide), func(b *testing.B) {
			for b.Loop() {
				for _, data := range files {
					c, err := imaging.DecodeConfig(data)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := imaging.DecodeReduced(data, imaging.DefaultLimits, imaging.Reduction(c, minSide)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(len(files)), "ms/image")
		})
	}
}
