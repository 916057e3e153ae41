package aggregate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/store"
	"github.com/facestream/facestream/pkg/events"
)

// ConsumerRecorder is the durable consumer of the rejection recorder on the
// results stream (nats/consumers/recorder.json), and its stage name.
const ConsumerRecorder = "recorder"

// maxResultEmbeddingBytes bounds the embeddings carried in image.analyzed:
// beyond it (hundreds of faces) they are left out so that the result stays
// far below the server's max_payload; they are stored either way.
const maxResultEmbeddingBytes = 256 << 10

// ThresholdFunc returns the similarity at which a face embedded by model of
// pack matches an enrolled subject, and false when it is not known (no
// matching then).
type ThresholdFunc func(pack, model string) (float32, bool)

// PackThresholds returns a ThresholdFunc that reads the recognizer's
// threshold from the model packs known to modelpack.Lookup.
func PackThresholds() ThresholdFunc {
	return func(pack, model string) (float32, bool) {
		p, err := modelpack.Lookup(pack)
		if err != nil {
			return 0, false
		}
		m, ok := p.Model(modelpack.Recognizer)
		if !ok || m.Name != model || m.Threshold <= 0 {
			return 0, false
		}
		return m.Threshold, true
	}
}

// Handler is the aggregate stage's events.Handler, for faces.analyzed. It
// is safe for concurrent use.
type Handler struct {
	store     *store.Store
	blobs     *events.BlobStore
	cache     *resultcache.Cache
	threshold ThresholdFunc
	now       func() time.Time
}

// New returns the aggregate handler. st and blobs are required; cache may
// be nil (no result cache) and threshold nil (PackThresholds).
func New(st *store.Store, blobs *events.BlobStore, cache *resultcache.Cache, threshold ThresholdFunc) (*Handler, error) {
	if st == nil || blobs == nil {
		return nil, errors.New("new aggregate: store and blob store are required")
	}
	if threshold == nil {
		threshold = PackThresholds()
	}
	return &Handler{store: st, blobs: blobs, cache: cache, threshold: threshold, now: time.Now}, nil
}

// Handle stores one analysed image and publishes its result:
//
//  1. store.SaveAnalysis, one idempotent transaction (tenant created on
//     demand);
//  2. unless the request says skip_match, every face with an embedding is
//     matched against the tenant's enrolled subjects of the same model at
//     the pack's recognizer threshold;
//  3. the image payload and crop blobs are deleted from the object store;
//  4. the result cache is filled (key tenant + sha256 + pack);
//  5. the outputs: one face.matched per matched face, then image.analyzed
//     with face ids, matches and timings (cached and cached_from when the
//     input carries the cachedfrom extension).
//
// A payload that does not decode or that the database refuses as invalid is
// permanent (dead-lettered); any other failure is transient and retried.
// Every step is idempotent, so a redelivery repeats them harmlessly.
func (h *Handler) Handle(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
	start := time.Now()
	var in events.FacesAnalyzed
	if err := d.Decode(&in); err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	if in.Image.ImageID == "" {
		in.Image.ImageID = d.ImageID()
	}
	if in.Image.Tenant == "" {
		in.Image.Tenant = d.Tenant()
	}
	opts, err := d.Options()
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	cachedFrom, _ := d.CloudEvent.Extensions()[resultcache.ExtCachedFrom].(string)
	imageID := in.Image.ImageID
	analyzedAt := d.CloudEvent.Time().UTC()
	if analyzedAt.IsZero() {
		analyzedAt = h.now().UTC()
	}

	t0 := time.Now()
	err = h.store.SaveAnalysis(ctx, store.Analysis{
		Image: in.Image, Pack: in.Pack, Source: cmp.Or(in.Image.Source, d.CloudEvent.Source()), Faces: in.Faces, AnalyzedAt: analyzedAt,
	})
	events.ObserveStep(ctx, events.StepDatabase, time.Since(t0))
	if errors.Is(err, store.ErrInvalid) {
		return nil, events.Permanent(fmt.Errorf("aggregate: %w", err))
	}
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}

	faces := make([]events.Face, len(in.Faces))
	copy(faces, in.Faces)
	for i := range faces {
		faces[i].ID = store.FaceID(imageID, faces[i].Index)
		faces[i].Match = nil
	}
	var outs []events.Event
	if !opts.SkipMatch {
		matched, err := h.match(ctx, in, faces)
		if err != nil {
			return nil, err
		}
		outs = matched
	}

	refs := append([]events.BlobRef(nil), in.CropRefs...)
	if in.ImageRef != nil {
		refs = append(refs, *in.ImageRef)
	}
	for _, ref := range refs {
		if err := h.blobs.Delete(ctx, ref); err != nil {
			return nil, fmt.Errorf("aggregate %s: %w", imageID, err)
		}
	}

	if h.cache != nil {
		entry := resultcache.Entry{
			ImageID: imageID, Detector: in.Detector, Recognizer: in.Recognizer, Faces: in.Faces, AnalyzedAt: analyzedAt,
		}
		if cachedFrom != "" {
			entry.ImageID = cachedFrom
		}
		if err := h.cache.Put(ctx, resultcache.Key{Tenant: in.Image.Tenant, SHA256: in.Image.SHA256, Pack: in.Pack}, entry); err != nil {
			return nil, fmt.Errorf("aggregate %s: %w", imageID, err)
		}
	}

	embBytes := 0
	for _, f := range faces {
		if f.Embedding != nil {
			embBytes += 4 * len(f.Embedding.Vector)
		}
	}
	if embBytes > maxResultEmbeddingBytes {
		for i := range faces {
			faces[i].Embedding = nil
		}
	}
	result, err := events.New(imageID, &events.ImageAnalyzed{
		Image: in.Image, Pack: in.Pack, Detector: in.Detector, Recognizer: in.Recognizer, Faces: faces,
		Cached: cachedFrom != "", CachedFrom: cachedFrom,
		Timings:    in.Timings.With(events.StageAggregate, time.Since(start)),
		AnalyzedAt: analyzedAt,
	})
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("aggregate: %w", err))
	}
	return append(outs, result), nil
}

// match matches the embedded faces, sets faces[i].Match and returns one
// face.matched per match, in face order.
func (h *Handler) match(ctx context.Context, in events.FacesAnalyzed, faces []events.Face) ([]events.Event, error) {
	byModel := map[string][]int{}
	var models []string
	for i, f := range faces {
		if f.Embedding == nil || len(f.Embedding.Vector) == 0 {
			continue
		}
		m := f.Embedding.Model
		if _, ok := byModel[m]; !ok {
			models = append(models, m)
		}
		byModel[m] = append(byModel[m], i)
	}
	for _, model := range models {
		threshold, ok := h.threshold(in.Pack, model)
		if !ok {
			continue
		}
		idx := byModel[model]
		vecs := make([][]float32, len(idx))
		for j, i := range idx {
			vecs[j] = faces[i].Embedding.Vector
		}
		t0 := time.Now()
		matches, err := h.store.MatchSubjects(ctx, in.Image.Tenant, model, vecs, threshold)
		events.ObserveStep(ctx, events.StepDatabase, time.Since(t0))
		if errors.Is(err, store.ErrInvalid) {
			return nil, events.Permanent(fmt.Errorf("aggregate: %w", err))
		}
		if err != nil {
			return nil, fmt.Errorf("aggregate: %w", err)
		}
		for j, i := range idx {
			faces[i].Match = matches[j]
		}
	}
	var outs []events.Event
	for _, f := range faces {
		if f.Match == nil {
			continue
		}
		e, err := events.New(in.Image.ImageID, &events.FaceMatched{
			ImageID: in.Image.ImageID, Tenant: in.Image.Tenant, FaceIndex: f.Index, FaceID: f.ID,
			Model: f.Embedding.Model, SubjectID: f.Match.SubjectID, SubjectName: f.Match.SubjectName,
			Similarity: f.Match.Similarity, Threshold: f.Match.Threshold,
		})
		if err != nil {
			return nil, events.Permanent(fmt.Errorf("aggregate: %w", err))
		}
		outs = append(outs, e)
	}
	return outs, nil
}

// Recorder is the events.Handler that records rejections: run it on the
// durable consumer ConsumerRecorder of the results stream (filtered on
// image.rejected), so that every submitted image ends with exactly one
// stored outcome. It returns no outputs. It is safe for concurrent use.
type Recorder struct {
	store       *store.Store
	defaultPack string
}

// NewRecorder returns the rejection recorder. defaultPack is the pack
// stored for images whose options name none (config models.pack).
func NewRecorder(st *store.Store, defaultPack string) (*Recorder, error) {
	if st == nil || defaultPack == "" {
		return nil, errors.New("new recorder: store and default pack are required")
	}
	return &Recorder{store: st, defaultPack: defaultPack}, nil
}

// Handle stores one image.rejected with store.SaveRejection (idempotent,
// never over an analysed image).
func (r *Recorder) Handle(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
	var rej events.ImageRejected
	if err := d.Decode(&rej); err != nil {
		return nil, fmt.Errorf("record rejection: %w", err)
	}
	opts, err := d.Options()
	if err != nil {
		return nil, fmt.Errorf("record rejection: %w", err)
	}
	pack := opts.Pack
	if pack == "" {
		pack = r.defaultPack
	}
	if rej.ImageID == "" {
		rej.ImageID = d.ImageID()
	}
	if rej.Tenant == "" {
		rej.Tenant = d.Tenant()
	}
	submitted := rej.SubmittedAt
	if submitted.IsZero() {
		submitted = d.CloudEvent.Time()
	}
	t0 := time.Now()
	err = r.store.SaveRejection(ctx, store.Rejection{
		ImageID: rej.ImageID, Tenant: rej.Tenant, Reason: rej.Reason, Message: rej.Message,
		SHA256: rej.SHA256, Size: rej.Size, Pack: pack, Source: d.CloudEvent.Source(), SubmittedAt: submitted,
	})
	events.ObserveStep(ctx, events.StepDatabase, time.Since(t0))
	if errors.Is(err, store.ErrInvalid) {
		return nil, events.Permanent(fmt.Errorf("record rejection: %w", err))
	}
	if err != nil {
		return nil, fmt.Errorf("record rejection: %w", err)
	}
	return nil, nil
}
