package attrs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/stages/crops"
	"github.com/facestream/facestream/pkg/events"
)

// Config configures a Handler.
type Config struct {
	// GenderAge and Emotion are the pack's attribute models; nil ones are
	// skipped (their attributes stay empty).
	GenderAge *face.GenderAgeModel
	Emotion   *face.EmotionModel
	// Quality decides usability; face.DefaultQualityThresholds when zero.
	Quality face.QualityThresholds
	// Blobs reads crop sets held in the object store. Required.
	Blobs *events.BlobStore
}

// Handler is the attrs stage's events.Handler.
type Handler struct{ cfg Config }

// New returns the attrs handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Blobs == nil {
		return nil, fmt.Errorf("new attrs handler: blob store is required")
	}
	if cfg.Quality == (face.QualityThresholds{}) {
		cfg.Quality = face.DefaultQualityThresholds()
	}
	if e := cfg.Emotion; e != nil {
		if w, h := e.InputSize(); w != 112 || h != 112 {
			return nil, fmt.Errorf("new attrs handler: emotion input %dx%d; the pipeline cuts 112x112 aligned crops", w, h)
		}
	}
	return &Handler{cfg: cfg}, nil
}

// Handle implements events.Handler.
func (h *Handler) Handle(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
	start := time.Now()
	var in events.FacesEmbedded
	if err := d.Decode(&in); err != nil {
		return nil, fmt.Errorf("attrs: %w", err)
	}
	faces := make([]events.Face, len(in.Faces))
	copy(faces, in.Faces)
	if len(faces) > 0 {
		t0 := time.Now()
		err := h.analyze(ctx, in.Crops, faces)
		events.ObserveStep(ctx, events.StepInference, time.Since(t0))
		if err != nil {
			return nil, fmt.Errorf("attrs: %w", err)
		}
	}
	out := events.FacesAnalyzed{
		Image: in.Image, ImageRef: in.ImageRef, Pack: in.Pack, Detector: in.Detector,
		Recognizer: in.Recognizer, Faces: faces, CropRefs: crops.Refs(in.Crops),
		Timings: in.Timings.With(events.StageAttrs, time.Since(start)),
	}
	e, err := events.New(in.Image.ImageID, &out)
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("attrs: %w", err))
	}
	return []events.Event{e}, nil
}

func (h *Handler) analyze(ctx context.Context, sets []events.CropSet, faces []events.Face) error {
	aligned, ok, err := crops.Load(ctx, h.cfg.Blobs, sets, events.CropAligned112)
	if err != nil {
		return err
	}
	if !ok || aligned.Width != 112 || aligned.Height != 112 {
		return events.Permanent(fmt.Errorf("no 112x112 %s crops", events.CropAligned112))
	}
	pix := make([][]byte, len(faces))
	for i, f := range faces {
		if pix[i], err = aligned.Crop(f.Index); err != nil {
			return events.Permanent(err)
		}
		a := &events.Attributes{}
		if f.Attributes != nil {
			*a = *f.Attributes
		}
		ff := face.Face{Box: f.Box, Landmarks: f.Landmarks, Score: f.Score}
		pose := face.EstimatePose(f.Landmarks)
		img, err := imaging.FromRGB(112, 112, pix[i])
		if err != nil {
			return events.Permanent(fmt.Errorf("face %d: %w", f.Index, err))
		}
		q, err := face.MeasureQuality(img, ff, pose, h.cfg.Quality)
		if err != nil {
			return fmt.Errorf("face %d: %w", f.Index, err)
		}
		a.Pose = &events.Pose{Yaw: pose.Yaw, Pitch: pose.Pitch, Roll: pose.Roll}
		a.Quality = Quality(q)
		faces[i].Attributes = a
	}
	if ga := h.cfg.GenderAge; ga != nil {
		gaPix := pix
		if ga.Crop() == modelpack.CropBBox {
			set, ok, err := crops.Load(ctx, h.cfg.Blobs, sets, events.CropCentered96)
			if err != nil {
				return err
			}
			if !ok {
				return events.Permanent(fmt.Errorf("no %s crops for %s", events.CropCentered96, ga.Model().Name))
			}
			gaPix = make([][]byte, len(faces))
			for i, f := range faces {
				if gaPix[i], err = set.Crop(f.Index); err != nil {
					return events.Permanent(err)
				}
			}
		}
		ags, err := ga.Predict(gaPix)
		if err != nil {
			return err
		}
		for i, ag := range ags {
			age := float32(ag.Age)
			faces[i].Attributes.Age = &age
			faces[i].Attributes.Gender = &events.Gender{Label: string(ag.Gender), Score: ag.GenderScore}
		}
	}
	if em := h.cfg.Emotion; em != nil {
		ems, err := em.Predict(pix)
		if err != nil {
			return err
		}
		for i, e := range ems {
			faces[i].Attributes.Emotion = &events.Emotion{Label: e.Label, Score: e.Score, Probabilities: e.Probs}
		}
	}
	return nil
}

// Quality converts the face engine's quality into the event's: brightness
// scaled to 0..1, and the first failed rule as a QualityReason.
func Quality(q face.Quality) *events.Quality {
	out := &events.Quality{
		Sharpness:  q.Sharpness,
		Brightness: q.Brightness / 255,
		FaceSize:   q.FaceSize,
		DetScore:   q.Score,
		Usable:     q.Usable,
	}
	if !q.Usable {
		out.Reason = reason(q.Reason)
	}
	return out
}

// reason maps the first rule of face.QualityThresholds.Assess's reason text.
func reason(s string) events.QualityReason {
	first, _, _ := strings.Cut(s, ";")
	switch {
	case strings.HasPrefix(first, "blurry"):
		return events.QualityBlurry
	case strings.HasPrefix(first, "too dark"):
		return events.QualityTooDark
	case strings.HasPrefix(first, "too bright"):
		return events.QualityTooBright
	case strings.HasPrefix(first, "too small"):
		return events.QualityTooSmall
	case strings.HasPrefix(first, "low detection score"):
		return events.QualityLowScore
	default: // "turned away", "tilted"
		return events.QualityExtremePose
	}
}
