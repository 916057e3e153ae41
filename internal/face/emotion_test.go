package face

import (
	"math"
	"slices"
	"testing"

	"github.com/facestream/facestream/internal/imaging"

	"github.com/facestream/facestream/internal/modelpack"
)

func TestDecodeEmotion(t *testing.T) {
	logits := []float32{0.5, -1, 0.2, 4.0, 1.0, -0.3, 0.0}
	em, err := DecodeEmotion(logits, FERLabels)
	if err != nil {
		t.Fatal(err)
	}
	if em.Label != "happy" {
		t.Errorf("label %q, want happy", em.Label)
	}
	var sum, z float64
	for _, v := range logits {
		z += math.Exp(float64(v))
	}
	for i, l := range FERLabels {
		want := math.Exp(float64(logits[i])) / z
		if math.Abs(float64(em.Probs[l])-want) > 1e-6 {
			t.Errorf("P(%s) = %v, want %v", l, em.Probs[l], want)
		}
		sum += float64(em.Probs[l])
	}
	if math.Abs(sum-1) > 1e-5 || em.Score != em.Probs["happy"] {
		t.Errorf("probabilities sum to %v; score %v", sum, em.Score)
	}
	// Large logits must not overflow.
	em, err = DecodeEmotion([]float32{1000, 999, -1000, 0, 0, 0, 1001}, FERLabels)
	if err != nil || em.Label != "surprised" || math.IsNaN(float64(em.Score)) || em.Score < 0.6 {
		t.Errorf("large logits: %+v, %v", em, err)
	}
	if _, err := DecodeEmotion(logits[:6], FERLabels); err == nil {
		t.Error("6 logits accepted for 7 labels")
	}
}

// TestAttributeModelsBatchEqualSingle runs the fixed-batch emotion model and
// the dynamic-batch gender-age model on several aligned crops at once and
// one at a time.
func TestAttributeModelsBatchEqualSingle(t *testing.T) {
	rt, models, testdata := engTestEnv(t)
	crops := engTestSmallLFW(t, testdata)[:5]
	em, err := NewEmotion(rt, models, engTestModel(t, modelpack.Emotion), engTestModelOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	ga, err := NewGenderAge(rt, models, engTestModel(t, modelpack.GenderAge), engTestModelOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Close()
	if ga.Crop() != modelpack.CropArcFace112 {
		t.Errorf("2018 genderage crop %q", ga.Crop())
	}
	ems, err := em.PredictImages(crops)
	if err != nil {
		t.Fatal(err)
	}
	gas, err := ga.PredictImages(crops)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range crops {
		e1, err := em.Predict([][]byte{c.RGB()})
		if err != nil {
			t.Fatal(err)
		}
		for l, p := range ems[i].Probs {
			if math.Abs(float64(p-e1[0].Probs[l])) > 1e-5 {
				t.Errorf("crop %d: P(%s) batched %v, single %v", i, l, p, e1[0].Probs[l])
			}
		}
		g1, err := ga.Predict([][]byte{c.RGB()})
		if err != nil {
			t.Fatal(err)
		}
		if g1[0].Gender != gas[i].Gender || g1[0].Age != gas[i].Age || math.Abs(float64(g1[0].GenderScore-gas[i].GenderScore)) > 1e-5 {
			t.Errorf("crop %d: age/gender batched %+v, single %+v", i, gas[i], g1[0])
		}
	}
}

// TestCropTensorIsTheEngineInput: CropTensor builds exactly the tensor the
// engine feeds the per-face models for an aligned crop.
func TestCropTensorIsTheEngineInput(t *testing.T) {
	rt, models, testdata := engTestEnv(t)
	crops := engTestSmallLFW(t, testdata)[:3]
	for _, kind := range []modelpack.Kind{modelpack.Emotion, modelpack.Recognizer, modelpack.GenderAge} {
		m := engTestModel(t, kind)
		r, err := newCropRunner(rt, models, m, engTestModelOptions(), 112)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range crops {
			got, err := CropTensor(m, c)
			if err != nil {
				t.Fatalf("%s crop %d: %v", kind, i, err)
			}
			want := make([]float32, r.cropBytes())
			r.norm.fill(want, c.BGR(), true)
			if !slices.Equal(got.Data, want) || !slices.Equal(got.Shape, []int64{1, 3, int64(r.h), int64(r.w)}) {
				t.Errorf("%s crop %d: CropTensor differs from the engine's input", kind, i)
			}
		}
		_ = r.close()
	}
	if _, err := CropTensor(engTestModel(t, modelpack.Emotion), blank10(t)); err == nil {
		t.Error("a 10x10 crop was accepted")
	}
}

func blank10(t *testing.T) *imaging.Image {
	t.Helper()
	img, err := imaging.FromBGR(10, 10, make([]byte, 10*10*3))
	if err != nil {
		t.Fatal(err)
	}
	return img
}
