package face

import (
	"math"
	"testing"
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
