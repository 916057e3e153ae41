package face

import (
	"fmt"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// Recognizer turns aligned face crops into L2-normalised embeddings with an
// ArcFace-style model (any embedding dimension, colour order and
// normalisation, as the manifest says).
//
// It is safe for concurrent use by multiple goroutines. Close releases the
// model; it must not be called while Embed calls are in flight.
type Recognizer struct {
	r         *cropRunner
	dim       int
	threshold float32
	model     modelpack.Model
}

// NewRecognizer loads the recognizer m (kind recognizer, arch arcface) from
// modelsDir. The crop it takes is m.InputWidth×m.InputHeight, or the model's
// own input size, or 112×112 when both are dynamic.
func NewRecognizer(rt *onnx.Runtime, modelsDir string, m modelpack.Model, opts ModelOptions) (*Recognizer, error) {
	if m.Kind != modelpack.Recognizer {
		return nil, fmt.Errorf("load recognizer %s: kind is %q, want %q", m.Name, m.Kind, modelpack.Recognizer)
	}
	if m.Arch != "" && m.Arch != modelpack.ArchArcFace {
		return nil, fmt.Errorf("load recognizer %s: unsupported arch %q", m.Name, m.Arch)
	}
	r, err := newCropRunner(rt, modelsDir, m, opts, 112)
	if err != nil {
		return nil, fmt.Errorf("load recognizer: %w", err)
	}
	dim, err := embeddingDim(r.sess.Outputs()[0], m.EmbeddingDim)
	if err != nil {
		_ = r.close()
		return nil, fmt.Errorf("load recognizer %s: %w", m.Name, err)
	}
	return &Recognizer{r: r, dim: dim, threshold: m.Threshold, model: m}, nil
}

func embeddingDim(out onnx.TensorInfo, want int) (int, error) {
	if len(out.Shape) != 2 {
		return 0, fmt.Errorf("output %s has shape %v, want [N,D]", out.Name, out.Shape)
	}
	got := int(out.Shape[1])
	switch {
	case got > 0 && want > 0 && got != want:
		return 0, fmt.Errorf("output %s has %d values, manifest says embedding_dim %d", out.Name, got, want)
	case want > 0:
		return want, nil
	case got > 0:
		return got, nil
	default:
		return 0, fmt.Errorf("output %s has a dynamic width and the manifest gives no embedding_dim", out.Name)
	}
}

// Dim is the embedding dimension.
func (r *Recognizer) Dim() int { return r.dim }

// InputSize is the width and height of the aligned crops Embed takes.
func (r *Recognizer) InputSize() (w, h int) { return r.r.w, r.r.h }

// Threshold is the manifest's cosine similarity at or above which two faces
// are taken to be the same person.
func (r *Recognizer) Threshold() float32 { return r.threshold }

// Model is the manifest entry the recognizer was loaded from.
func (r *Recognizer) Model() modelpack.Model { return r.model }

// Embed returns one L2-normalised embedding per crop. Each crop is an aligned
// face, InputSize() pixels, interleaved RGB bytes row by row (the colour
// order and normalisation the model wants are applied here). Crops from
// different images may be mixed freely: a dynamic-batch model sees them in
// runs of up to MaxBatch; a fixed-batch model is run once per batch.
// A zero-length request returns no embeddings and no error.
func (r *Recognizer) Embed(crops [][]byte) ([][]float32, error) {
	return r.embed(crops, false)
}

// EmbedImages is Embed for aligned crops held as images (for example from
// AlignedCrop), read without a colour conversion.
func (r *Recognizer) EmbedImages(crops []*imaging.Image) ([][]float32, error) {
	pix, err := r.r.images(crops)
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	return r.embed(pix, true)
}

func (r *Recognizer) embed(crops [][]byte, bgr bool) ([][]float32, error) {
	if len(crops) == 0 {
		return nil, nil
	}
	rows, err := r.r.run(crops, bgr)
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	for i, v := range rows {
		if len(v) != r.dim {
			return nil, fmt.Errorf("embed: %s gave %d values for crop %d, want %d", r.model.Name, len(v), i, r.dim)
		}
		Normalize(v)
	}
	return rows, nil
}

// EmbedOne embeds a single aligned crop.
func (r *Recognizer) EmbedOne(crop []byte) ([]float32, error) {
	v, err := r.Embed([][]byte{crop})
	if err != nil {
		return nil, err
	}
	return v[0], nil
}

// Match reports whether two embeddings of this recognizer are the same person
// at its threshold, with their cosine similarity.
func (r *Recognizer) Match(a, b []float32) (bool, float32) {
	s := Cosine(a, b)
	return s >= r.threshold, s
}

// Close releases the model. It is idempotent.
func (r *Recognizer) Close() error {
	if err := r.r.close(); err != nil {
		return fmt.Errorf("close recognizer: %w", err)
	}
	return nil
}
