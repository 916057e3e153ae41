package face

import (
	"fmt"
	"math"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// Gender is a predicted gender.
type Gender string

// The genders the InsightFace models predict; index 0 of their output is
// female and index 1 male.
const (
	Female Gender = "female"
	Male   Gender = "male"
)

// AgeGender is one face's predicted age and gender.
type AgeGender struct {
	Gender Gender `json:"gender"`
	// GenderScore is the softmax probability of Gender over the two gender
	// outputs, in [0.5, 1].
	GenderScore float32 `json:"gender_score"`
	// Age is in whole years.
	Age int `json:"age"`
}

// GenderAgeModel predicts age and gender. It serves both InsightFace
// contracts:
//
//   - arch genderage-buffalo (buffalo_* genderage.onnx): a 96×96 crop centred
//     on the detection box (see BBoxCropTransform), 3 outputs: gender =
//     argmax(out[0:2]), age = round(out[2]×100).
//   - arch genderage-2018 (the 2018 MXNet model): a 112×112 crop aligned to
//     the ArcFace template, RGB 0..255, 202 outputs: gender =
//     argmax(out[0:2]); age = the number of rows of out[2:202] seen as
//     (100,2) whose second column is larger than the first.
//
// Crop reports which crop the model wants. It is safe for concurrent use.
type GenderAgeModel struct {
	r     *cropRunner
	arch  string
	model modelpack.Model
}

// NewGenderAge loads the genderage model m from modelsDir.
func NewGenderAge(rt *onnx.Runtime, modelsDir string, m modelpack.Model, opts ModelOptions) (*GenderAgeModel, error) {
	if m.Kind != modelpack.GenderAge {
		return nil, fmt.Errorf("load genderage %s: kind is %q, want %q", m.Name, m.Kind, modelpack.GenderAge)
	}
	size, outLen := 0, 0
	switch m.Arch {
	case modelpack.ArchGenderAgeBuffalo:
		size, outLen = 96, 3
	case modelpack.ArchGenderAge2018:
		size, outLen = 112, 202
	default:
		return nil, fmt.Errorf("load genderage %s: unsupported arch %q", m.Name, m.Arch)
	}
	r, err := newCropRunner(rt, modelsDir, m, opts, size)
	if err != nil {
		return nil, fmt.Errorf("load genderage: %w", err)
	}
	if s := r.sess.Outputs()[0].Shape; len(s) != 2 || (s[1] > 0 && int(s[1]) != outLen) {
		_ = r.close()
		return nil, fmt.Errorf("load genderage %s: output shape %v, want [N,%d] for %s", m.Name, s, outLen, m.Arch)
	}
	return &GenderAgeModel{r: r, arch: m.Arch, model: m}, nil
}

// Crop is the crop kind the model takes: modelpack.CropArcFace112 for the
// 2018 model, modelpack.CropBBox for buffalo's.
func (g *GenderAgeModel) Crop() string {
	if g.arch == modelpack.ArchGenderAgeBuffalo {
		return modelpack.CropBBox
	}
	return modelpack.CropArcFace112
}

// InputSize is the width and height of the crops Predict takes.
func (g *GenderAgeModel) InputSize() (w, h int) { return g.r.w, g.r.h }

// Model is the manifest entry the model was loaded from.
func (g *GenderAgeModel) Model() modelpack.Model { return g.model }

// Predict returns one result per crop (InputSize() pixels, interleaved RGB,
// cut as Crop() says).
func (g *GenderAgeModel) Predict(crops [][]byte) ([]AgeGender, error) {
	return g.predict(crops, false)
}

// PredictImages is Predict for crops held as images, read without a colour
// conversion.
func (g *GenderAgeModel) PredictImages(crops []*imaging.Image) ([]AgeGender, error) {
	pix, err := g.r.images(crops)
	if err != nil {
		return nil, fmt.Errorf("predict age and gender: %w", err)
	}
	return g.predict(pix, true)
}

// CropImage cuts the crop this model takes for face f from img (see
// CropFor): the aligned crop for the 2018 model, the bbox-centred crop for
// buffalo's. Callers that already hold an aligned crop of the right size can
// pass that to PredictImages instead.
func (g *GenderAgeModel) CropImage(img *imaging.Image, f Face) (*imaging.Image, error) {
	m := g.model
	m.Crop = g.Crop()
	m.InputWidth, m.InputHeight = g.r.w, g.r.h
	return CropFor(img, f, m)
}

func (g *GenderAgeModel) predict(crops [][]byte, bgr bool) ([]AgeGender, error) {
	if len(crops) == 0 {
		return nil, nil
	}
	rows, err := g.r.run(crops, bgr)
	if err != nil {
		return nil, fmt.Errorf("predict age and gender: %w", err)
	}
	out := make([]AgeGender, len(rows))
	for i, row := range rows {
		if g.arch == modelpack.ArchGenderAgeBuffalo {
			out[i], err = DecodeGenderAgeBuffalo(row)
		} else {
			out[i], err = DecodeGenderAge2018(row)
		}
		if err != nil {
			return nil, fmt.Errorf("predict age and gender: crop %d: %w", i, err)
		}
	}
	return out, nil
}

// Close releases the model. It is idempotent.
func (g *GenderAgeModel) Close() error {
	if err := g.r.close(); err != nil {
		return fmt.Errorf("close genderage: %w", err)
	}
	return nil
}

// decodeGender picks argmax(out[0:2]) (0 = female, 1 = male) and its softmax
// probability.
func decodeGender(f, m float32) (Gender, float32) {
	// softmax of the winner over two values: 1 / (1 + e^-(|f-m|)).
	p := float32(1 / (1 + math.Exp(-math.Abs(float64(f-m)))))
	if m > f {
		return Male, p
	}
	return Female, p
}

// DecodeGenderAgeBuffalo decodes one row of buffalo genderage.onnx's [N,3]
// output: gender = argmax(out[0:2]) with 0 = female and 1 = male, age =
// round(out[2]×100) years (InsightFace attribute.py), clamped at 0.
func DecodeGenderAgeBuffalo(out []float32) (AgeGender, error) {
	if len(out) != 3 {
		return AgeGender{}, fmt.Errorf("decode genderage-buffalo: %d values, want 3", len(out))
	}
	g, p := decodeGender(out[0], out[1])
	age := int(math.Round(float64(out[2]) * 100))
	return AgeGender{Gender: g, GenderScore: p, Age: max(age, 0)}, nil
}

// DecodeGenderAge2018 decodes one row of the 2018 model's [N,202] output:
// gender = argmax(out[0:2]) with 0 = female and 1 = male; age = the count of
// the 100 pairs out[2+2k], out[3+2k] whose second value is larger (InsightFace
// gender-age face_model.py get_ga).
func DecodeGenderAge2018(out []float32) (AgeGender, error) {
	if len(out) != 202 {
		return AgeGender{}, fmt.Errorf("decode genderage-2018: %d values, want 202", len(out))
	}
	g, p := decodeGender(out[0], out[1])
	age := 0
	for k := 2; k < 202; k += 2 {
		if out[k+1] > out[k] {
			age++
		}
	}
	return AgeGender{Gender: g, GenderScore: p, Age: age}, nil
}

// BBoxCropTransform is the 2×3 affine matrix (source image → crop) of the
// bbox-centred crop buffalo's genderage.onnx takes (InsightFace attribute.py
// with face_align.transform, rotation 0): the box centre goes to the crop
// centre and the box's longer side is scaled to size/1.5, so the crop shows
// the face with a quarter of its size as margin on each side.
//
//	s = size / (1.5 × max(w, h))
//	M = [[s, 0, size/2 − s·cx], [0, s, size/2 − s·cy]]
func BBoxCropTransform(box [4]float32, size int) imaging.Affine {
	x1, y1, x2, y2 := float64(box[0]), float64(box[1]), float64(box[2]), float64(box[3])
	side := max(x2-x1, y2-y1)
	if side <= 0 {
		side = 1
	}
	return imaging.CenteredTransform((x1+x2)/2, (y1+y2)/2, float64(size)/(1.5*side), 0, size)
}
