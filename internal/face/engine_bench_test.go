package face

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// The model benchmarks time, in one loop and on the same crops, the public
// call ("full": crops → tensor, Session.Run, decode/normalise) and the bare
// Session.Run of the same model on the tensor already prepared. They report
// µs/face for both and overhead-%: the median over iterations of
// full/bare − 1, the engine's own pre- and post-processing cost relative to
// model time. Interleaving the two and taking the median of the paired
// ratios keeps the figure honest on a busy machine, where one slow Run
// would skew a ratio of totals. prep-µs/face times the crop → tensor step
// alone (no model), the deterministic part of the overhead. allocs/op counts
// both calls, full-allocs/op the public call alone.

func benchCrops(n, w, h int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	crops := make([][]byte, n)
	for i := range crops {
		c := make([]byte, 3*w*h)
		for j := range c {
			c[j] = byte(rng.IntN(256))
		}
		crops[i] = c
	}
	return crops
}

// benchPair runs full and, on the tensor r would prepare from crops, bare
// Session.Run, alternately.
func benchPair(b *testing.B, r *cropRunner, crops [][]byte, full func() error) {
	per := r.cropBytes()
	n := len(crops)
	if r.batch > 0 {
		n = r.batch
	}
	in := onnx.NewTensor(int64(n), 3, int64(r.h), int64(r.w))
	for i, c := range crops[:min(len(crops), n)] {
		r.norm.fill(in.Data[i*per:(i+1)*per], c, false)
	}
	runs := (len(crops) + n - 1) / n
	bare := func() error {
		for range runs {
			if _, err := r.sess.Run(in); err != nil {
				return err
			}
		}
		return nil
	}
	for _, f := range []func() error{full, bare} { // warm up both
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	fullAllocs := testing.AllocsPerRun(3, func() { _ = full() })
	var tFull, tBare time.Duration
	var ratios []float64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if err := full(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := bare(); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tFull += t1.Sub(t0)
		tBare += t2.Sub(t1)
		ratios = append(ratios, float64(t1.Sub(t0))/float64(t2.Sub(t1)))
	}
	b.StopTimer()
	slices.Sort(ratios)
	const prepRounds = 20
	scratch := make([]float32, per)
	t0 := time.Now()
	for range prepRounds {
		for _, c := range crops {
			r.norm.fill(scratch, c, false)
		}
	}
	prep := time.Since(t0)
	faces := float64(b.N * len(crops))
	b.ReportMetric(float64(tFull.Microseconds())/faces, "µs/face")
	b.ReportMetric(float64(tBare.Microseconds())/faces, "bare-µs/face")
	b.ReportMetric(100*(ratios[len(ratios)/2]-1), "overhead-%")
	b.ReportMetric(float64(prep.Nanoseconds())/1e3/float64(prepRounds*len(crops)), "prep-µs/face")
	b.ReportMetric(fullAllocs, "full-allocs/op")
}

func BenchmarkRecognizer(b *testing.B) {
	rt, models, _ := engTestEnv(b)
	r, err := NewRecognizer(rt, models, engTestModel(b, modelpack.Recognizer), engTestModelOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for _, n := range []int{1, 8} {
		crops := benchCrops(n, 112, 112)
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			benchPair(b, r.r, crops, func() error { _, err := r.Embed(crops); return err })
		})
	}
}

func BenchmarkGenderAge(b *testing.B) {
	rt, models, _ := engTestEnv(b)
	g, err := NewGenderAge(rt, models, engTestModel(b, modelpack.GenderAge), engTestModelOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	for _, n := range []int{1, 8} {
		crops := benchCrops(n, 112, 112)
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			benchPair(b, g.r, crops, func() error { _, err := g.Predict(crops); return err })
		})
	}
}

func BenchmarkEmotion(b *testing.B) {
	rt, models, _ := engTestEnv(b)
	e, err := NewEmotion(rt, models, engTestModel(b, modelpack.Emotion), engTestModelOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for _, n := range []int{1, 8} {
		crops := benchCrops(n, 112, 112)
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			benchPair(b, e.r, crops, func() error { _, err := e.Predict(crops); return err })
		})
	}
}

// BenchmarkRecognizerFromImage adds the 5-point alignment (the affine warp
// out of the decoded photo) to the embedding, against the same bare run:
// the whole per-face cost of recognition after detection.
func BenchmarkRecognizerFromImage(b *testing.B) {
	rt, models, testdata := engTestEnv(b)
	r, err := NewRecognizer(rt, models, engTestModel(b, modelpack.Recognizer), engTestModelOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	img := engTestImage(b, testdata, "deepface", "img5.jpg")
	det, err := NewDetector(rt, models, engTestModel(b, modelpack.Detector), DetectorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer det.Close()
	faces, err := det.Detect(img)
	if err != nil || len(faces) != 1 {
		b.Fatalf("img5.jpg: %d faces, %v", len(faces), err)
	}
	for _, n := range []int{1, 8} {
		crops := make([][]byte, n)
		for i := range crops {
			c, _, err := AlignedCrop(img, faces[0].Landmarks, 112)
			if err != nil {
				b.Fatal(err)
			}
			crops[i] = c.BGR()
		}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			benchPair(b, r.r, crops, func() error {
				aligned := make([]*imaging.Image, n)
				for i := range aligned {
					c, _, err := AlignedCrop(img, faces[0].Landmarks, 112)
					if err != nil {
						return err
					}
					aligned[i] = c
				}
				_, err := r.EmbedImages(aligned)
				return err
			})
		})
	}
}

// BenchmarkEngineAnalyze is the whole engine on one photo: decode not
// included; detection (two scales), alignment, quality, pose, embedding,
// age/gender and emotion for every face.
func BenchmarkEngineAnalyze(b *testing.B) {
	rt, models, testdata := engTestEnv(b)
	opts := DefaultEngineOptions()
	opts.Threads = 1
	e, err := NewEngine(rt, engTestPack(b), models, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for _, c := range []struct{ name, file string }{{"faces=1", "deepface/img5.jpg"}, {"faces=6", "insightface/images/t1.jpg"}} {
		img := engTestImage(b, testdata, filepath.FromSlash(c.file))
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			faces := 0
			for b.Loop() {
				res, err := e.Analyze(img, AnalyzeOptions{Embedding: true})
				if err != nil {
					b.Fatal(err)
				}
				faces = len(res)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/image")
			b.ReportMetric(float64(faces), "faces")
		})
	}
}
