package face

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
)

// engTestSmallLFW loads the 20 pre-aligned 112×112 crops of insightface/small_lfw.
func engTestSmallLFW(tb testing.TB, testdata string) []*imaging.Image {
	tb.Helper()
	imgs := make([]*imaging.Image, 20)
	for i := range imgs {
		imgs[i] = engTestImage(tb, testdata, "insightface", "small_lfw", fmt.Sprintf("%02d.jpg", i))
		if imgs[i].Width() != 112 || imgs[i].Height() != 112 {
			tb.Fatalf("small_lfw %02d.jpg is %dx%d, want 112x112", i, imgs[i].Width(), imgs[i].Height())
		}
	}
	return imgs
}

func TestRecognizerBatchEqualsSingle(t *testing.T) {
	rt, models, testdata := engTestEnv(t)
	m := engTestModel(t, modelpack.Recognizer)
	r, err := NewRecognizer(rt, models, m, engTestModelOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Dim() != 128 {
		t.Errorf("dim %d, want 128", r.Dim())
	}
	imgs := engTestSmallLFW(t, testdata)
	batch, err := r.EmbedImages(imgs)
	if err != nil {
		t.Fatal(err)
	}
	// RGB bytes, one at a time, must give the same vectors as the BGR batch.
	for i, img := range imgs {
		one, err := r.EmbedOne(img.RGB())
		if err != nil {
			t.Fatal(err)
		}
		var n float64
		for _, x := range one {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-5 {
			t.Errorf("crop %d: |v|² = %v, want 1", i, n)
		}
		if c := Cosine(one, batch[i]); c < 0.9999 {
			t.Errorf("crop %d: batched vs single cosine %.6f, want ≥ 0.9999", i, c)
		}
	}
	// Splitting into runs of 3 changes nothing either.
	opts := engTestModelOptions()
	opts.MaxBatch = 3
	r3, err := NewRecognizer(rt, models, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	split, err := r3.EmbedImages(imgs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range split {
		if c := Cosine(split[i], batch[i]); c < 0.9999 {
			t.Errorf("crop %d: runs of 3 vs one run cosine %.6f", i, c)
		}
	}
	if v, err := r.Embed(nil); v != nil || err != nil {
		t.Errorf("empty request: %v, %v", v, err)
	}
}

func TestRecognizerRejects(t *testing.T) {
	rt, models, _ := engTestEnv(t)
	m := engTestModel(t, modelpack.Recognizer)
	r, err := NewRecognizer(rt, models, m, engTestModelOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Embed([][]byte{make([]byte, 3*112*112), make([]byte, 3*96*96)}); !errors.Is(err, ErrCropSize) {
		t.Errorf("96x96 crop: %v, want ErrCropSize", err)
	}
	small, _ := imaging.FromRGB(96, 96, make([]byte, 3*96*96))
	if _, err := r.EmbedImages([]*imaging.Image{small}); !errors.Is(err, ErrCropSize) {
		t.Errorf("96x96 image: %v, want ErrCropSize", err)
	}
	bad := []func(*modelpack.Model){
		func(m *modelpack.Model) { m.Kind = modelpack.Emotion },
		func(m *modelpack.Model) { m.Arch = "facenet" },
		func(m *modelpack.Model) { m.EmbeddingDim = 512 },
		func(m *modelpack.Model) { m.ColorOrder = "YUV" },
		func(m *modelpack.Model) { m.InputWidth, m.InputHeight = 96, 96 },
		func(m *modelpack.Model) { m.File = "no/such.onnx" },
	}
	for i, mod := range bad {
		mm := m
		mod(&mm)
		if r, err := NewRecognizer(rt, models, mm, engTestModelOptions()); err == nil {
			r.Close()
			t.Errorf("bad manifest %d accepted: %+v", i, mm)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := r.Embed([][]byte{make([]byte, 3*112*112)}); err == nil {
		t.Error("Embed after Close succeeded")
	}
}
