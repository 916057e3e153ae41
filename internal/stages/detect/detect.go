package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/stages/crops"
	"github.com/facestream/facestream/pkg/events"
)

// Config configures a Handler.
type Config struct {
	// Pack is the model pack the detector and the later models come from.
	Pack modelpack.Pack
	// Detector finds the faces. Required.
	Detector face.Detector
	// GenderAge, when set, decides whether a bbox-centred crop is cut too.
	GenderAge *face.GenderAgeModel
	// Blobs reads images and writes crop sets in the object store. Required.
	Blobs *events.BlobStore
	// Bucket holds crop sets too large to inline; "facestream-images" by default.
	Bucket string
	// InlineMax is the largest crop set carried inline;
	// events.MaxInlineBytes by default.
	InlineMax int
	// Limits bound decoding; imaging.DefaultLimits by default.
	Limits imaging.Limits
	// DecodeMinSide, when above 0, lets a large JPEG be decoded reduced by
	// 2, 4 or 8 as long as its longer side stays at least this many pixels
	// (face.DecodeOptions.MinSide; 640, the detector's input, is the natural
	// value). Faces too small in the reduced picture for full-resolution
	// crops (face.CropMinFace) are cut from a second, less reduced decode.
	// 0 decodes every picture whole.
	DecodeMinSide int
	// Logger receives the stage's logs (component=stages.detect).
	Logger *slog.Logger
}

// DefaultBucket is the object store bucket of images and crops.
const DefaultBucket = "facestream-images"

// Handler is the detect stage's events.Handler.
type Handler struct {
	cfg    Config
	det    string
	logger *slog.Logger
}

// New returns the detect handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Detector == nil || cfg.Blobs == nil {
		return nil, errors.New("new detect handler: detector and blob store are required")
	}
	dm, ok := cfg.Pack.Model(modelpack.Detector)
	if !ok {
		return nil, fmt.Errorf("new detect handler: pack %q has no detector", cfg.Pack.Name)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.InlineMax <= 0 {
		cfg.InlineMax = events.MaxInlineBytes
	}
	if cfg.Limits == (imaging.Limits{}) {
		cfg.Limits = imaging.DefaultLimits
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, det: dm.Name, logger: cfg.Logger.With("component", "stages.detect")}, nil
}

// Handle implements events.Handler.
func (h *Handler) Handle(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
	start := time.Now()
	var in events.ImageAccepted
	if err := d.Decode(&in); err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	opts, err := d.Options()
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	if opts.Pack != "" && opts.Pack != h.cfg.Pack.Name {
		return h.reject(in, events.RejectInvalidRequest, fmt.Sprintf("model pack %q is not served here (this service runs %q)", opts.Pack, h.cfg.Pack.Name))
	}
	t0 := time.Now()
	data, err := h.cfg.Blobs.Load(ctx, in.Data)
	events.ObserveStep(ctx, events.StepBlob, time.Since(t0))
	if errors.Is(err, events.ErrBlobNotFound) {
		return h.reject(in, events.RejectBlobMissing, err.Error())
	}
	if err != nil {
		return nil, fmt.Errorf("detect: load image: %w", err)
	}
	t0 = time.Now()
	pic, err := face.DecodePicture(data, face.DecodeOptions{Limits: h.cfg.Limits, MinSide: h.cfg.DecodeMinSide, Orientation: in.Image.Orientation})
	if err != nil {
		return h.reject(in, events.RejectCorrupt, err.Error())
	}
	events.ObserveStep(ctx, events.StepDecode, time.Since(t0))

	t0 = time.Now()
	found, err := h.cfg.Detector.Detect(pic.Image())
	events.ObserveStep(ctx, events.StepInference, time.Since(t0))
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	found = Select(pic.ToStored(found), opts)
	if len(found) == 0 {
		return h.reject(in, events.RejectNoFace, "no face found")
	}
	t0 = time.Now()
	if pic, err = pic.ForCrops(data, found); err != nil {
		return h.reject(in, events.RejectCorrupt, err.Error())
	}
	events.ObserveStep(ctx, events.StepDecode, time.Since(t0))
	img, cropFaces := pic.Image(), pic.FromStored(found)

	out := events.FacesDetected{
		Image:    in.Image,
		ImageRef: in.Data.Ref,
		Pack:     h.cfg.Pack.Name,
		Detector: h.det,
		Faces:    make([]events.Face, len(found)),
	}
	idx := make([]int, len(found))
	aligned := make([][]byte, len(found))
	for i, f := range found {
		idx[i] = i
		out.Faces[i] = events.Face{Index: i, Box: f.Box, Landmarks: f.Landmarks, Score: f.Score}
		c, _, err := face.AlignedCrop(img, cropFaces[i].Landmarks, 112)
		if err != nil {
			return nil, events.Permanent(fmt.Errorf("detect: align face %d: %w", i, err))
		}
		aligned[i] = c.RGB()
	}
	set, err := crops.Pack(ctx, h.cfg.Blobs, h.cfg.Bucket, h.cfg.InlineMax, in.Image.ImageID, events.CropAligned112, 112, 112, idx, aligned)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	out.Crops = append(out.Crops, set)
	if ga := h.cfg.GenderAge; ga != nil && ga.Crop() == modelpack.CropBBox {
		w, hh := ga.InputSize()
		centred := make([][]byte, len(found))
		for i, f := range cropFaces {
			c, err := ga.CropImage(img, f)
			if err != nil {
				return nil, events.Permanent(fmt.Errorf("detect: crop face %d: %w", i, err))
			}
			centred[i] = c.RGB()
		}
		set, err := crops.Pack(ctx, h.cfg.Blobs, h.cfg.Bucket, h.cfg.InlineMax, in.Image.ImageID, events.CropCentered96, w, hh, idx, centred)
		if err != nil {
			return nil, fmt.Errorf("detect: %w", err)
		}
		out.Crops = append(out.Crops, set)
	}
	out.Timings = in.Timings.With(events.StageDetect, time.Since(start))
	e, err := events.New(in.Image.ImageID, &out)
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("detect: %w", err))
	}
	return []events.Event{e}, nil
}

func (h *Handler) reject(in events.ImageAccepted, reason events.RejectReason, msg string) ([]events.Event, error) {
	e, err := events.New(in.Image.ImageID, &events.ImageRejected{
		ImageID:     in.Image.ImageID,
		Tenant:      in.Image.Tenant,
		Stage:       events.StageDetect,
		Reason:      reason,
		Message:     msg,
		SHA256:      in.Image.SHA256,
		Size:        in.Image.Size,
		SubmittedAt: in.Image.SubmittedAt,
	})
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("detect: %w", err))
	}
	return []events.Event{e}, nil
}

// Select applies the request's face options to the detector's faces: faces
// smaller than MinFaceSize on their shorter side are dropped, and with
// MaxFaces only the largest are kept (in detector order).
func Select(faces []face.Face, o events.RequestOptions) []face.Face {
	if o.MinFaceSize > 0 {
		faces = slices.DeleteFunc(slices.Clone(faces), func(f face.Face) bool {
			return min(f.Width(), f.Height()) < float32(o.MinFaceSize)
		})
	}
	if o.MaxFaces > 0 && len(faces) > o.MaxFaces {
		order := make([]int, len(faces))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			aa, ab := faces[a].Width()*faces[a].Height(), faces[b].Width()*faces[b].Height()
			switch {
			case aa > ab:
				return -1
			case aa < ab:
				return 1
			}
			return 0
		})
		keep := order[:o.MaxFaces]
		slices.Sort(keep)
		out := make([]face.Face, len(keep))
		for i, k := range keep {
			out[i] = faces[k]
		}
		faces = out
	}
	return faces
}
