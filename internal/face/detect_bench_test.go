package face

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

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

// BenchmarkDetectOverhead interleaves, in every iteration, the bare
// Session.Run on the prepared tensor, Detect on the decoded image, and
// Decode+Detect from the file bytes, so that both sides of each ratio see
// the same machine load (the development machines are shared). It reports
// the medians in milliseconds and the median of the paired ratios
// detect/run − 1 and decode+detect/run − 1 in percent.
func BenchmarkDetectOverhead(b *testing.B) {
	for _, bc := range []struct{ model, image string }{
		{"det_500m", "insightface/images/t1.jpg"},
		{"det_500m", "deepface/selfie-many-people.jpg"},
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
			var run, det, full, detRatio, fullRatio []float64
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if _, err := d.sess.Run(in); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := d.Detect(img); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				im, err := imaging.Decode(data, imaging.DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.Detect(im); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				r, dt, f := t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), t3.Sub(t2).Seconds()
				run, det, full = append(run, r), append(det, dt), append(full, f)
				detRatio, fullRatio = append(detRatio, dt/r-1), append(fullRatio, f/r-1)
			}
			b.ReportMetric(median(run)*1e3, "run-ms")
			b.ReportMetric(median(det)*1e3, "detect-ms")
			b.ReportMetric(median(full)*1e3, "decode+detect-ms")
			b.ReportMetric(median(detRatio)*100, "detect-overhead-%")
			b.ReportMetric(median(fullRatio)*100, "decode+detect-overhead-%")
		})
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
