package embed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/stages/crops"
	"github.com/facestream/facestream/pkg/events"
)

// Config configures a Handler.
type Config struct {
	// Recognizer makes the embeddings. Required.
	Recognizer *face.Recognizer
	// Batcher batches the recognizer runs across Handle calls. Required;
	// build it with NewBatcher(Recognizer.Embed, ...).
	Batcher *Batcher
	// Blobs reads crop sets held in the object store. Required.
	Blobs *events.BlobStore
}

// Handler is the embed stage's events.Handler. It is safe for concurrent
// use: concurrent calls share recognizer batches.
type Handler struct {
	cfg   Config
	model string
	dim   int
}

// New returns the embed handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Recognizer == nil || cfg.Batcher == nil || cfg.Blobs == nil {
		return nil, errors.New("new embed handler: recognizer, batcher and blob store are required")
	}
	if w, h := cfg.Recognizer.InputSize(); w != 112 || h != 112 {
		return nil, fmt.Errorf("new embed handler: recognizer input %dx%d; the pipeline cuts 112x112 aligned crops", w, h)
	}
	return &Handler{cfg: cfg, model: cfg.Recognizer.Model().Name, dim: cfg.Recognizer.Dim()}, nil
}

// Handle implements events.Handler.
func (h *Handler) Handle(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
	start := time.Now()
	var in events.FacesDetected
	if err := d.Decode(&in); err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	out := events.FacesEmbedded{
		Image: in.Image, ImageRef: in.ImageRef, Pack: in.Pack, Detector: in.Detector,
		Recognizer: h.model, Faces: in.Faces, Crops: in.Crops,
	}
	if len(in.Faces) > 0 {
		set, ok, err := crops.Load(ctx, h.cfg.Blobs, in.Crops, events.CropAligned112)
		if err != nil {
			return nil, fmt.Errorf("embed: %w", err)
		}
		if !ok {
			return nil, events.Permanent(fmt.Errorf("embed: no %s crops in faces.detected", events.CropAligned112))
		}
		if set.Width != 112 || set.Height != 112 {
			return nil, events.Permanent(fmt.Errorf("embed: %s crops are %dx%d", set.Kind, set.Width, set.Height))
		}
		pix := make([][]byte, len(in.Faces))
		for i, f := range in.Faces {
			if pix[i], err = set.Crop(f.Index); err != nil {
				return nil, events.Permanent(fmt.Errorf("embed: %w", err))
			}
		}
		t0 := time.Now()
		vecs, err := h.cfg.Batcher.Embed(ctx, pix)
		events.ObserveStep(ctx, events.StepInference, time.Since(t0))
		if err != nil {
			return nil, fmt.Errorf("embed: %w", err)
		}
		out.Faces = make([]events.Face, len(in.Faces))
		for i, f := range in.Faces {
			f.Embedding = &events.Embedding{Model: h.model, Dim: len(vecs[i]), Vector: vecs[i]}
			out.Faces[i] = f
		}
	}
	out.Timings = in.Timings.With(events.StageEmbed, time.Since(start))
	e, err := events.New(in.Image.ImageID, &out)
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("embed: %w", err))
	}
	return []events.Event{e}, nil
}
