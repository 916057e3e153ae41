package face

import (
	"errors"
	"fmt"
	"time"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// EngineOptions configure an Engine. Start from DefaultEngineOptions.
type EngineOptions struct {
	// Threads is the intra-op thread count of each model session; 0 lets
	// ONNX Runtime choose (one per core). InterOpThreads likewise.
	Threads, InterOpThreads int
	// Provider is the execution provider (CPU when empty) on GPU DeviceID;
	// FallbackToCPU runs on the CPU when it cannot be attached instead of
	// failing.
	Provider      onnx.Provider
	DeviceID      int
	FallbackToCPU bool
	// MaxBatch bounds one Run of a dynamic-batch model (DefaultMaxBatch when 0).
	MaxBatch int
	// NoSpinning and Observe are passed to every session (onnx.SessionConfig):
	// intra-op threads that sleep instead of spinning, and a hook timing
	// every model run (the service's inference histogram).
	NoSpinning bool
	Observe    func(model string, batch int, d time.Duration)
	// Detection tunes the detector: score threshold, max faces, minimum face
	// size, rotation retry, second scale. Its Session, when zero, is the one
	// Threads, Provider and FallbackToCPU describe.
	Detection DetectorOptions
	// Quality decides which faces are usable for recognition.
	Quality QualityThresholds
	// SkipVerify loads the model files without checking their size and
	// sha256 against the pack (modelpack.VerifyModel, which hashes each file
	// once per process).
	SkipVerify bool
}

// DefaultEngineOptions are the engine's defaults: ONNX Runtime's own
// threading, CPU, every face, a second detection pass at 320 px (so that a
// face filling the picture is found: happy.png, a 112×112 crop), the
// rotation search unless an upright face scores DefaultRotationAccept,
// DefaultQualityThresholds.
func DefaultEngineOptions() EngineOptions {
	return EngineOptions{
		Detection: DetectorOptions{SecondScale: DefaultSecondScale, TryRotations: true, RotationAccept: DefaultRotationAccept},
		Quality:   DefaultQualityThresholds(),
	}
}

// DefaultRotationAccept is the score of an upright-looking face (mouth below
// the eyes) that ends the engine's rotation search. SCRFD-500M scores clear
// upright faces 0.75–0.9, so the detector's own 0.9 would turn nearly every
// photo three more times (4× the detection cost); sideways and upside-down
// faces never count as upright whatever their score, so a lower bar does
// not stop the search on a turned photo.
const DefaultRotationAccept = 0.7

// DefaultSecondScale is the engine's second detection pass: the picture
// fitted into 320×320, where SCRFD's largest anchors cover a face that fills
// the frame.
const DefaultSecondScale = 320

func (o EngineOptions) session() onnx.SessionConfig {
	return onnx.SessionConfig{
		IntraOpThreads: o.Threads, InterOpThreads: o.InterOpThreads,
		Provider: o.Provider, DeviceID: o.DeviceID, FallbackToCPU: o.FallbackToCPU,
		NoSpinning: o.NoSpinning, Observe: o.Observe,
	}
}

func (o EngineOptions) model() ModelOptions {
	return ModelOptions{Session: o.session(), MaxBatch: o.MaxBatch}
}

// AnalyzeOptions choose what Analyze computes for each face.
type AnalyzeOptions struct {
	// Embedding computes the recognizer's embedding.
	Embedding bool
	// NoAttributes skips age, gender and emotion (pose and quality, which
	// need no model, are always given).
	NoAttributes bool
}

// FaceResult is everything the engine says about one face.
type FaceResult struct {
	// Box is x1, y1, x2, y2 and Landmarks the 5 points (LeftEye …
	// RightMouth), in source image pixels.
	Box       [4]float32    `json:"box"`
	Landmarks [5][2]float32 `json:"landmarks"`
	// Score is the detector's confidence.
	Score float32 `json:"det_score"`
	// AgeGender is nil when attributes were not asked for or the pack has no
	// genderage model; its fields appear inline in JSON.
	*AgeGender
	// Emotion is nil when attributes were not asked for or the pack has no
	// emotion model.
	Emotion *Emotion `json:"emotion,omitempty"`
	Pose    Pose     `json:"pose"`
	Quality Quality  `json:"quality"`
	// Embedding is the L2-normalised recognizer output, when asked for.
	Embedding []float32 `json:"embedding,omitempty"`
}

// Face returns the detection part of r.
func (r FaceResult) Face() Face { return Face{Box: r.Box, Landmarks: r.Landmarks, Score: r.Score} }

// Engine is the whole face pipeline in one process: detection, alignment,
// recognition, age and gender, emotion, head pose and quality, built from a
// model pack. Its parts are usable on their own (Detector, Recognizer,
// GenderAge, Emotion, and the functions EstimatePose and MeasureQuality)
// for pipeline stages that run them separately.
//
// An Engine is safe for concurrent use by multiple goroutines. Close
// releases every model; it must not be called while Analyze is in flight.
type Engine struct {
	opts EngineOptions
	pack string
	det  Detector
	rec  *Recognizer
	ga   *GenderAgeModel
	emo  *EmotionModel
}

// NewEngine verifies and loads pack's models from modelsDir. The pack must
// have a detector with landmarks; recognizer, genderage and emotion models
// are optional (their results are then absent).
func NewEngine(rt *onnx.Runtime, pack modelpack.Pack, modelsDir string, opts EngineOptions) (*Engine, error) {
	dm, ok := pack.Model(modelpack.Detector)
	if !ok {
		return nil, fmt.Errorf("new engine: pack %s has no detector", pack.Name)
	}
	if !opts.SkipVerify {
		if err := pack.Verify(modelsDir); err != nil {
			return nil, fmt.Errorf("new engine: pack %s: %w", pack.Name, err)
		}
	}
	do := opts.Detection
	if do.Session.IntraOpThreads == 0 && do.Session.InterOpThreads == 0 && do.Session.Provider == "" {
		do.Session = opts.session()
	}
	det, err := NewDetector(rt, modelsDir, dm, do)
	if err != nil {
		return nil, fmt.Errorf("new engine: %w", err)
	}
	e := &Engine{opts: opts, pack: pack.Name, det: det}
	mo := opts.model()
	if m, ok := pack.Model(modelpack.Recognizer); ok {
		if e.rec, err = NewRecognizer(rt, modelsDir, m, mo); err != nil {
			return nil, errors.Join(fmt.Errorf("new engine: %w", err), e.Close())
		}
	}
	if m, ok := pack.Model(modelpack.GenderAge); ok {
		if e.ga, err = NewGenderAge(rt, modelsDir, m, mo); err != nil {
			return nil, errors.Join(fmt.Errorf("new engine: %w", err), e.Close())
		}
	}
	if m, ok := pack.Model(modelpack.Emotion); ok {
		if e.emo, err = NewEmotion(rt, modelsDir, m, mo); err != nil {
			return nil, errors.Join(fmt.Errorf("new engine: %w", err), e.Close())
		}
	}
	return e, nil
}

// Pack is the name of the model pack the engine was built from.
func (e *Engine) Pack() string { return e.pack }

// Detector is the engine's face detector.
func (e *Engine) Detector() Detector { return e.det }

// Recognizer is the engine's recognizer, or nil when the pack has none.
func (e *Engine) Recognizer() *Recognizer { return e.rec }

// GenderAge is the engine's age and gender model, or nil.
func (e *Engine) GenderAge() *GenderAgeModel { return e.ga }

// Emotion is the engine's expression model, or nil.
func (e *Engine) Emotion() *EmotionModel { return e.emo }

// AnalyzeBytes decodes an encoded image whole (with imaging.DefaultLimits)
// and analyses it.
func (e *Engine) AnalyzeBytes(data []byte, opts AnalyzeOptions) ([]FaceResult, error) {
	return e.AnalyzeEncoded(data, DecodeOptions{}, opts)
}

// AnalyzeEncoded decodes an encoded image as d says and analyses it as the
// pipeline does: the detector runs on the (possibly reduced) picture, the
// crops come from Picture.ForCrops, and boxes, landmarks and quality are in
// the stored picture's coordinates.
func (e *Engine) AnalyzeEncoded(data []byte, d DecodeOptions, opts AnalyzeOptions) ([]FaceResult, error) {
	p, err := DecodePicture(data, d)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	found, err := e.det.Detect(p.Image())
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	stored := p.ToStored(found)
	if p, err = p.ForCrops(data, stored); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	return e.describe(p.Image(), p.FromStored(stored), stored, opts)
}

// Analyze detects the faces in img and describes each one. No face is an
// empty result and a nil error. Every model runs once per image on all its
// faces (one batch).
func (e *Engine) Analyze(img *imaging.Image, opts AnalyzeOptions) ([]FaceResult, error) {
	faces, err := e.det.Detect(img)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	return e.Describe(img, faces, opts)
}

// Describe is Analyze for faces already detected in img.
func (e *Engine) Describe(img *imaging.Image, faces []Face, opts AnalyzeOptions) ([]FaceResult, error) {
	return e.describe(img, faces, faces, opts)
}

// describe cuts the crops of faces (in img's coordinates) and reports each
// face as stored (the same faces in the stored picture's coordinates, which
// its box, landmarks and quality are given in).
func (e *Engine) describe(img *imaging.Image, faces, stored []Face, opts AnalyzeOptions) ([]FaceResult, error) {
	if len(faces) == 0 {
		return []FaceResult{}, nil
	}
	res := make([]FaceResult, len(faces))
	crops := make([]*imaging.Image, len(faces))
	for i, f := range faces {
		if !f.HasLandmarks() {
			return nil, fmt.Errorf("analyze face %d: no landmarks (the engine needs a detector with 5 keypoints)", i)
		}
		crop, _, err := AlignedCrop(img, f.Landmarks, 112)
		if err != nil {
			return nil, fmt.Errorf("analyze face %d: %w", i, err)
		}
		crops[i] = crop
		s := stored[i]
		pose := EstimatePose(s.Landmarks)
		q, err := MeasureQuality(crop, s, pose, e.opts.Quality)
		if err != nil {
			return nil, fmt.Errorf("analyze face %d: %w", i, err)
		}
		res[i] = FaceResult{Box: s.Box, Landmarks: s.Landmarks, Score: s.Score, Pose: pose, Quality: q}
	}
	if opts.Embedding && e.rec != nil {
		embs, err := e.rec.EmbedImages(e.cropsFor(img, faces, crops, e.rec.r.w))
		if err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
		for i := range res {
			res[i].Embedding = embs[i]
		}
	}
	if opts.NoAttributes {
		return res, nil
	}
	if e.ga != nil {
		gaCrops := crops
		if e.ga.Crop() == modelpack.CropBBox || e.ga.r.w != 112 {
			gaCrops = make([]*imaging.Image, len(faces))
			for i, f := range faces {
				c, err := e.ga.CropImage(img, f)
				if err != nil {
					return nil, fmt.Errorf("analyze face %d: %w", i, err)
				}
				gaCrops[i] = c
			}
		}
		ags, err := e.ga.PredictImages(gaCrops)
		if err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
		for i := range res {
			res[i].AgeGender = &ags[i]
		}
	}
	if e.emo != nil {
		ems, err := e.emo.PredictImages(e.cropsFor(img, faces, crops, e.emo.r.w))
		if err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
		for i := range res {
			res[i].Emotion = &ems[i]
		}
	}
	return res, nil
}

// cropsFor returns the aligned crops at size: the 112 ones already cut, or
// new ones for a model with another input size.
func (e *Engine) cropsFor(img *imaging.Image, faces []Face, crops112 []*imaging.Image, size int) []*imaging.Image {
	if size == 112 {
		return crops112
	}
	out := make([]*imaging.Image, len(faces))
	for i, f := range faces {
		c, _, err := AlignedCrop(img, f.Landmarks, size)
		if err != nil {
			c = crops112[i] // the size check in the model reports it
		}
		out[i] = c
	}
	return out
}

// MeasureQuality measures a face on its aligned crop (sharpness, brightness)
// and its detection (size, score, pose) and applies t.
func MeasureQuality(crop *imaging.Image, f Face, pose Pose, t QualityThresholds) (Quality, error) {
	sharp, err := crop.Sharpness(crop.Bounds())
	if err != nil {
		return Quality{}, fmt.Errorf("measure quality: %w", err)
	}
	bright, err := crop.Brightness(crop.Bounds())
	if err != nil {
		return Quality{}, fmt.Errorf("measure quality: %w", err)
	}
	return t.Assess(QualityMeasures{
		Sharpness:  float32(sharp),
		Brightness: float32(bright),
		FaceSize:   faceBoxMinSide(f.Box),
		Score:      f.Score,
		Yaw:        pose.Yaw,
		Pitch:      pose.Pitch,
	}), nil
}

// Close releases every model. It is idempotent.
func (e *Engine) Close() error {
	var errs []error
	if e.det != nil {
		errs = append(errs, e.det.Close())
	}
	if e.rec != nil {
		errs = append(errs, e.rec.Close())
	}
	if e.ga != nil {
		errs = append(errs, e.ga.Close())
	}
	if e.emo != nil {
		errs = append(errs, e.emo.Close())
	}
	return errors.Join(errs...)
}
