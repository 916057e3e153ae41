package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/pkg/events"
)

// Config configures the ingest stage.
type Config struct {
	// Limits bound what is accepted; zero fields take DefaultLimits'.
	Limits Limits
	// InlineMax is the largest image carried inside image.accepted; larger
	// ones go to Bucket and travel as a BlobRef. 0 means
	// events.MaxInlineBytes.
	InlineMax int64
	// Bucket is the object store bucket of claim checks, and the only
	// bucket a submitted BlobRef may point into; "facestream-images" by
	// default.
	Bucket string
	// DefaultPack is the model pack of images whose options name none
	// (config models.pack). Required: it is part of the cache key.
	DefaultPack string
	// CacheOnly is graceful degradation while inference is down: images
	// whose result the cache holds are answered from it, every other valid
	// image is rejected with events.RejectInferenceUnavailable (retryable)
	// instead of being queued for stages that cannot run.
	CacheOnly bool
}

// Handler is the ingest stage's events.Handler, for image.submitted. It is
// safe for concurrent use.
type Handler struct {
	cfg   Config
	blobs *events.BlobStore
	cache *resultcache.Cache
}

// New returns the ingest handler. blobs is required; cache may be nil (no
// result cache).
func New(cfg Config, blobs *events.BlobStore, cache *resultcache.Cache) (*Handler, error) {
	d := DefaultLimits
	l := &cfg.Limits
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxPixels == 0 {
		l.MaxPixels = d.MaxPixels
	}
	if l.MaxDecodedBytes == 0 {
		l.MaxDecodedBytes = d.MaxDecodedBytes
	}
	if l.BombMinPixels == 0 {
		l.BombMinPixels = d.BombMinPixels
	}
	if l.BombPixelsPerByte == 0 {
		l.BombPixelsPerByte = d.BombPixelsPerByte
	}
	if cfg.InlineMax == 0 {
		cfg.InlineMax = events.MaxInlineBytes
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "facestream-images"
	}
	switch {
	case blobs == nil:
		return nil, errors.New("new ingest: no blob store")
	case cfg.DefaultPack == "":
		return nil, errors.New("new ingest: no default model pack")
	}
	return &Handler{cfg: cfg, blobs: blobs, cache: cache}, nil
}

// Handle validates one submitted image and returns exactly one event:
// image.rejected (with a reason) for an image that will not be analysed,
// faces.analyzed (with the cachedfrom extension) when the same bytes were
// analysed before with the same pack for the same tenant, or image.accepted.
// Errors are transient (the object store or the cache unreachable) unless the
// event itself is not an image.submitted (permanent).
func (h *Handler) Handle(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
	start := time.Now()
	imageID := d.ImageID()
	submittedAt := d.CloudEvent.Time().UTC()
	if d.CloudEvent.Type() != events.TypeImageSubmitted {
		return nil, events.Permanent(fmt.Errorf("ingest: %s is not %s", d.CloudEvent.Type(), events.TypeImageSubmitted))
	}
	rejected := func(r *Rejection, sha string, size int64) ([]events.Event, error) {
		e, err := events.New(imageID, &events.ImageRejected{
			ImageID: imageID, Tenant: d.Tenant(), Stage: events.StageIngest,
			Reason: r.Reason, Message: r.Message, SHA256: sha, Size: size, SubmittedAt: submittedAt,
		})
		if err != nil {
			return nil, err
		}
		return []events.Event{e}, nil
	}
	sub, err := events.ParseImageSubmitted(d.Event)
	if err != nil {
		return rejected(reject(events.RejectInvalidRequest, "%v", err), "", 0)
	}
	pack := sub.Options.Pack
	if pack == "" {
		pack = h.cfg.DefaultPack
	}

	data := sub.Image
	if ref := sub.Ref; ref != nil {
		switch {
		case ref.Bucket != h.cfg.Bucket:
			return rejected(reject(events.RejectInvalidRequest, "blob reference into bucket %q, only %q is read", ref.Bucket, h.cfg.Bucket), "", 0)
		case ref.Size > h.cfg.Limits.MaxBytes:
			return rejected(reject(events.RejectTooLarge, "%d bytes, more than the %d allowed", ref.Size, h.cfg.Limits.MaxBytes), ref.SHA256, ref.Size)
		}
		data, err = h.blobs.Get(ctx, *ref)
		switch {
		case errors.Is(err, events.ErrBlobNotFound):
			return rejected(reject(events.RejectBlobMissing, "%v", err), ref.SHA256, ref.Size)
		case errors.Is(err, events.ErrBlobCorrupt):
			return rejected(reject(events.RejectCorrupt, "%v", err), ref.SHA256, ref.Size)
		case err != nil:
			return nil, fmt.Errorf("ingest %s: %w", imageID, err)
		}
	}
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	size := int64(len(data))

	hdr, err := Validate(data, h.cfg.Limits)
	var rej *Rejection
	if errors.As(err, &rej) {
		// The image will never be analysed: its claim check is not needed.
		if sub.Ref != nil {
			if err := h.blobs.Delete(ctx, *sub.Ref); err != nil {
				return nil, fmt.Errorf("ingest %s: %w", imageID, err)
			}
		}
		return rejected(rej, sha, size)
	}
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", imageID, err)
	}
	info := events.ImageInfo{
		ImageID: imageID, Tenant: d.Tenant(), SHA256: sha, Format: hdr.Format,
		Width: hdr.Width, Height: hdr.Height, Size: size, Orientation: hdr.Orientation, SubmittedAt: submittedAt,
		Source: d.CloudEvent.Source(),
	}
	if hdr.Orientation >= 5 { // 5..8 turn the image by 90°
		info.Width, info.Height = hdr.Height, hdr.Width
	}

	if h.cache != nil && !sub.Options.SkipCache {
		entry, _, ok, err := h.cache.Get(ctx, resultcache.Key{Tenant: d.Tenant(), SHA256: sha, Pack: pack})
		if err != nil {
			return nil, fmt.Errorf("ingest %s: %w", imageID, err)
		}
		if ok {
			faces := make([]events.Face, len(entry.Faces))
			for i, f := range entry.Faces {
				f.ID, f.Match = "", nil
				faces[i] = f
			}
			e, err := events.New(imageID, &events.FacesAnalyzed{
				Image: info, ImageRef: sub.Ref, Pack: pack, Detector: entry.Detector, Recognizer: entry.Recognizer,
				Faces: faces, Timings: events.Timings{}.With(events.StageIngest, time.Since(start)),
			})
			if err != nil {
				return nil, err
			}
			e.CloudEvent.SetExtension(resultcache.ExtCachedFrom, entry.ImageID)
			return []events.Event{e}, nil
		}
	}

	if h.cfg.CacheOnly {
		if sub.Ref != nil {
			if err := h.blobs.Delete(ctx, *sub.Ref); err != nil {
				return nil, fmt.Errorf("ingest %s: %w", imageID, err)
			}
		}
		return rejected(reject(events.RejectInferenceUnavailable,
			"inference is unavailable (cache-only mode) and no stored result matches; submit again later"), sha, size)
	}

	blob := events.Blob{Ref: sub.Ref}
	switch {
	case sub.Ref != nil:
	case size > h.cfg.InlineMax:
		key := "ingest/" + hex.EncodeToString(sha1Name(imageID))
		ref, err := h.blobs.Put(ctx, h.cfg.Bucket, key, sub.ContentType, data)
		if err != nil {
			return nil, fmt.Errorf("ingest %s: %w", imageID, err)
		}
		blob.Ref = &ref
	default:
		blob.Data = data
	}
	e, err := events.New(imageID, &events.ImageAccepted{
		Image: info, Data: blob, Timings: events.Timings{}.With(events.StageIngest, time.Since(start)),
	})
	if err != nil {
		return nil, err
	}
	return []events.Event{e}, nil
}

// sha1Name hashes an image id into an object name that any id can have.
func sha1Name(imageID string) []byte {
	s := sha256.Sum256([]byte(imageID))
	return s[:16]
}
