package aggregate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	efSearch  int
	now       func() time.Time
}

// New returns the aggregate handler. st and blobs are required; cache may
// be nil (no result cache) and threshold nil (PackThresholds). efSearch is
// the hnsw.ef_search of subject matching (facestream.identify's default
// when 0 or less).
func New(st *store.Store, blobs *events.BlobStore, cache *resultcache.Cache, threshold ThresholdFunc, efSearch int) (*Handler, error) {
	if st == nil || blobs == nil {
		return nil, errors.New("new aggregate: store and blob store are required")
	}
	if threshold == nil {
		threshold = PackThresholds()
	}
	return &Handler{store: st, blobs: blobs, cache: cache, threshold: threshold, efSearch: efSearch, now: time.Now}, nil
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
// An image erased while it was in the pipeline (store.ErrErased at step 1,
// or erased by the time the cache is filled) is not stored: its blobs are
// deleted, its cache entry removed, and the only output is image.rejected
// with reason erased.
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
		Image: in.Image, Pack: in.Pack, Detector: in.Detector, Source: cmp.Or(in.Image.Source, d.CloudEvent.Source()), Faces: in.Faces, AnalyzedAt: analyzedAt,
	})
	events.ObserveStep(ctx, events.StepDatabase, time.Since(t0))
	if errors.Is(err, store.ErrErased) {
		return h.erased(ctx, in)
	}
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

	cacheKey := resultcache.Key{Tenant: in.Image.Tenant, SHA256: in.Image.SHA256, Pack: in.Pack}
	if h.cache != nil {
		entry := resultcache.Entry{
			ImageID: imageID, Detector: in.Detector, Recognizer: in.Recognizer, Faces: in.Faces, AnalyzedAt: analyzedAt,
		}
		if cachedFrom != "" {
			entry.ImageID = cachedFrom
		}
		if err := h.cache.Put(ctx, cacheKey, entry); err != nil {
			return nil, fmt.Errorf("aggregate %s: %w", imageID, err)
		}
	}

	// An erasure that committed after SaveAnalysis has deleted the rows, but
	// may have cleared the cache before the Put above: look again, after
	// the Put. Erased now, the entry goes and the image ends as erased; not
	// erased now, the erasure's own cache purge comes after the Put.
	t0 = time.Now()
	erased, err := h.store.ImageErased(ctx, imageID)
	events.ObserveStep(ctx, events.StepDatabase, time.Since(t0))
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	if erased {
		if h.cache != nil {
			if err := h.cache.Delete(ctx, cacheKey); err != nil {
				return nil, fmt.Errorf("aggregate %s: %w", imageID, err)
			}
		}
		return h.erased(ctx, in)
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

// erased ends an image that was erased while it was in the pipeline: its
// payload and crops are deleted, nothing is stored or cached, and the
// result is image.rejected with reason erased, which carries nothing of the
// image but its id.
func (h *Handler) erased(ctx context.Context, in events.FacesAnalyzed) ([]events.Event, error) {
	imageID := in.Image.ImageID
	refs := append([]events.BlobRef(nil), in.CropRefs...)
	if in.ImageRef != nil {
		refs = append(refs, *in.ImageRef)
	}
	for _, ref := range refs {
		if err := h.blobs.Delete(ctx, ref); err != nil {
			return nil, fmt.Errorf("aggregate %s (erased): %w", imageID, err)
		}
	}
	e, err := events.New(imageID, &events.ImageRejected{
		ImageID: imageID, Tenant: in.Image.Tenant, Stage: events.StageAggregate,
		Reason: events.RejectErased, Message: "the image was erased while it was being analysed; nothing was stored",
		SubmittedAt: in.Image.SubmittedAt,
	})
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("aggregate: %w", err))
	}
	return []events.Event{e}, nil
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
		matches, err := h.store.MatchSubjects(ctx, in.Image.Tenant, model, vecs, threshold, h.efSearch)
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
// stored outcome. It returns no outputs, but for an image erased while in
// flight (Handle). It is safe for concurrent use.
type Recorder struct {
	store       *store.Store
	js          jetstream.JetStream
	defaultPack string
}

// NewRecorder returns the rejection recorder. defaultPack is the pack
// stored for images whose options name none (config models.pack). js, when
// not nil, lets it remove from the results stream the rejections of images
// erased while in flight (Handle).
func NewRecorder(st *store.Store, js jetstream.JetStream, defaultPack string) (*Recorder, error) {
	if st == nil || defaultPack == "" {
		return nil, errors.New("new recorder: store and default pack are required")
	}
	return &Recorder{store: st, js: js, defaultPack: defaultPack}, nil
}

// Handle stores one image.rejected with store.SaveRejection (idempotent,
// never over an analysed image).
//
// The rejection of an erased image is not stored (store.ErrErased): the
// erasure is its outcome. A stage that did not know the image was erased
// may have rejected it for another reason (no_face; blob_missing, its
// payload deleted by the erasure), published after the erasure purged the
// image's results and carrying the image's sha256 and size: Handle then
// returns image.rejected with reason erased and nothing of the image, and
// once that one comes back to it, purges the image's earlier rejections
// from the results stream, so that the stream keeps only the erased
// outcome.
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
	if errors.Is(err, store.ErrErased) {
		return r.erased(ctx, d, rej)
	}
	if errors.Is(err, store.ErrInvalid) {
		return nil, events.Permanent(fmt.Errorf("record rejection: %w", err))
	}
	if err != nil {
		return nil, fmt.Errorf("record rejection: %w", err)
	}
	return nil, nil
}

// erased handles the rejection rej of an erased image (see Handle).
func (r *Recorder) erased(ctx context.Context, d *events.Delivery, rej events.ImageRejected) ([]events.Event, error) {
	if rej.Reason != events.RejectErased {
		e, err := events.New(rej.ImageID, &events.ImageRejected{
			ImageID: rej.ImageID, Tenant: rej.Tenant, Stage: ConsumerRecorder, Reason: events.RejectErased,
			Message: "the image was erased while it was being analysed; nothing was stored", SubmittedAt: rej.SubmittedAt,
		})
		if err != nil {
			return nil, events.Permanent(fmt.Errorf("record rejection: %w", err))
		}
		return []events.Event{e}, nil
	}
	if r.js == nil || d.Stream == "" || d.Sequence == 0 {
		return nil, nil
	}
	stream, err := r.js.Stream(ctx, d.Stream)
	if err != nil {
		return nil, fmt.Errorf("record rejection: %w", err)
	}
	// Every rejection of the image stored before this one.
	subject := events.ResultSubject(events.TypeImageRejected, rej.ImageID)
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(d.Sequence)); err != nil {
		return nil, fmt.Errorf("record rejection: purge earlier rejections of erased %s: %w", rej.ImageID, err)
	}
	return nil, nil
}
