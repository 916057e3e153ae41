package face

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/pkg/onnx"
)

// BenchmarkDetect measures, per model and image, with 2 intra-op threads:
//
//	run          the bare Session.Run on the prepared 640×640 tensor
//	preprocess   letterbox + normalise into the tensor
//	postprocess  decode + NMS of the raw outputs
//	detect       Detect on the decoded image (preprocess + run + postprocess)
//	decode+detect  the same, starting from the encoded file bytes
//
// detect/run is the pre- and post-processing overhead ratio.
func BenchmarkDetect(b *testing.B) {
	for _, bc := range []struct{ model, image string }{
		{"det_500m", "insightface/images/t1.jpg"},
		{"det_500m", "deepface/couple.jpg"},
		{"det_2.5g", "insightface/images/t1.jpg"},
		{"yunet", "insightface/images/t1.jpg"},
	} {
		b.Run(bc.model+"/"+filepath.Base(bc.image), func(b *testing.B) {
			_, _, testdata := detEnv(b)
			data, err := os.ReadFile(filepath.Join(testdata, bc.image))
			if err != nil {
				b.Fatal(err)
			}
			img := detImage(b, bc.image)
			d := detOpen(b, bc.model, DetectorOptions{Session: onnx.SessionConfig{IntraOpThreads: 2}}).(*netDetector)
			in := onnx.Tensor{Shape: []int64{1, 3, int64(d.h), int64(d.w)}, Data: make([]float32, 3*d.w*d.h)}
			if _, err := img.LetterboxTensor(in.Data, d.w, d.h, d.norm); err != nil {
				b.Fatal(err)
			}
			outs, err := d.sess.Run(in)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("run", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := d.sess.Run(in); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("preprocess", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := img.LetterboxTensor(in.Data, d.w, d.h, d.norm); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("postprocess", func(b *testing.B) {
				b.ReportAllocs()
				var c []candidate
				for b.Loop() {
					c, err = d.dec.decode(outs, d.w, d.h, d.thresh, c[:0])
					if err != nil {
						b.Fatal(err)
					}
					sortByScore(c)
					if d.arch == "yunet" {
						nmsIntRects(c, d.thresh, d.nmsThresh)
					} else {
						nmsInclusive(c, d.nmsThresh)
					}
				}
			})
			b.Run("detect", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := d.Detect(img); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("decode+detect", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					im, err := imaging.Decode(data, imaging.DefaultLimits)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := d.Detect(im); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
