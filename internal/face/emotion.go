package face

import (
	"fmt"
	"math"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// FERLabels are the OpenCV Zoo facial expression recognizer's classes, in
// output order (facial_fer_model.py getDesc). A manifest without labels gets
// these.
var FERLabels = []string{"angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"}

// Emotion is one face's predicted expression.
type Emotion struct {
	// Label is the most probable class and Score its probability.
	Label string  `json:"label"`
	Score float32 `json:"score"`
	// Probs is the softmax probability of every class.
	Probs map[string]float32 `json:"probs"`
}

// EmotionModel classifies facial expressions from aligned crops (the OpenCV
// Zoo FER model: 112×112 ArcFace-aligned, RGB, (x/255 − 0.5)/0.5, 7 logits).
// It is safe for concurrent use.
type EmotionModel struct {
	r      *cropRunner
	labels []string
	model  modelpack.Model
}

// NewEmotion loads the emotion model m from modelsDir.
func NewEmotion(rt *onnx.Runtime, modelsDir string, m modelpack.Model, opts ModelOptions) (*EmotionModel, error) {
	if m.Kind != modelpack.Emotion {
		return nil, fmt.Errorf("load emotion %s: kind is %q, want %q", m.Name, m.Kind, modelpack.Emotion)
	}
	if m.Arch != "" && m.Arch != modelpack.ArchFEROpenCVZoo {
		return nil, fmt.Errorf("load emotion %s: unsupported arch %q", m.Name, m.Arch)
	}
	labels := m.Labels
	if len(labels) == 0 {
		labels = FERLabels
	}
	r, err := newCropRunner(rt, modelsDir, m, opts, 112)
	if err != nil {
		return nil, fmt.Errorf("load emotion: %w", err)
	}
	if s := r.sess.Outputs()[0].Shape; len(s) != 2 || (s[1] > 0 && int(s[1]) != len(labels)) {
		_ = r.close()
		return nil, fmt.Errorf("load emotion %s: output shape %v, want [N,%d] for labels %v", m.Name, s, len(labels), labels)
	}
	return &EmotionModel{r: r, labels: append([]string(nil), labels...), model: m}, nil
}

// Labels are the class names in output order.
func (e *EmotionModel) Labels() []string { return append([]string(nil), e.labels...) }

// InputSize is the width and height of the aligned crops Predict takes.
func (e *EmotionModel) InputSize() (w, h int) { return e.r.w, e.r.h }

// Model is the manifest entry the model was loaded from.
func (e *EmotionModel) Model() modelpack.Model { return e.model }

// Predict returns one result per aligned crop (InputSize() pixels,
// interleaved RGB).
func (e *EmotionModel) Predict(crops [][]byte) ([]Emotion, error) {
	return e.predict(crops, false)
}

// PredictImages is Predict for aligned crops held as images (for example
// from AlignedCrop), read without a colour conversion.
func (e *EmotionModel) PredictImages(crops []*imaging.Image) ([]Emotion, error) {
	pix, err := e.r.images(crops)
	if err != nil {
		return nil, fmt.Errorf("predict emotion: %w", err)
	}
	return e.predict(pix, true)
}

func (e *EmotionModel) predict(crops [][]byte, bgr bool) ([]Emotion, error) {
	if len(crops) == 0 {
		return nil, nil
	}
	rows, err := e.r.run(crops, bgr)
	if err != nil {
		return nil, fmt.Errorf("predict emotion: %w", err)
	}
	out := make([]Emotion, len(rows))
	for i, row := range rows {
		if out[i], err = DecodeEmotion(row, e.labels); err != nil {
			return nil, fmt.Errorf("predict emotion: crop %d: %w", i, err)
		}
	}
	return out, nil
}

// Close releases the model. It is idempotent.
func (e *EmotionModel) Close() error {
	if err := e.r.close(); err != nil {
		return fmt.Errorf("close emotion: %w", err)
	}
	return nil
}

// DecodeEmotion applies a numerically stable softmax to one row of logits
// and names the most probable class. Ties go to the earlier label.
func DecodeEmotion(logits []float32, labels []string) (Emotion, error) {
	if len(logits) != len(labels) || len(labels) == 0 {
		return Emotion{}, fmt.Errorf("decode emotion: %d logits for %d labels", len(logits), len(labels))
	}
	hi := logits[0]
	for _, v := range logits[1:] {
		hi = max(hi, v)
	}
	p := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp(float64(v - hi))
		sum += p[i]
	}
	em := Emotion{Probs: make(map[string]float32, len(labels))}
	best := -1
	for i, l := range labels {
		q := float32(p[i] / sum)
		em.Probs[l] = q
		if best < 0 || q > em.Score {
			best, em.Score = i, q
		}
	}
	em.Label = labels[best]
	return em, nil
}
