package ingest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/ingest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// TestCacheOnly: in cache-only mode (inference down) a cached image is
// still answered from the cache, any other valid image is rejected with
// the retryable reason inference_unavailable (its claim check removed), and
// invalid input keeps its own reason.
func TestCacheOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hs := newHarness(t)
	kv, err := hs.srv.JS.KeyValue(ctx, fsnats.BucketCache)
	if err != nil {
		t.Fatal(err)
	}
	cache := resultcache.New(resultcache.Config{KV: kv})
	h, err := ingest.New(ingest.Config{DefaultPack: "dev", CacheOnly: true}, hs.blobs, cache)
	if err != nil {
		t.Fatal(err)
	}
	jpg := testdata(t, "insightface/images/t1.jpg")
	if err := cache.Put(ctx, resultcache.Key{Tenant: "acme", SHA256: hexSHA(jpg), Pack: "dev"},
		resultcache.Entry{ImageID: "first", Recognizer: "m", Faces: []events.Face{{Index: 0, Score: 0.9}}, AnalyzedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	outs, err := h.Handle(ctx, delivery(t, events.Submission{ImageID: "c1", Tenant: "acme", Image: jpg}))
	if ev := one(t, outs, err, events.TypeFacesAnalyzed); ev.CloudEvent.Extensions()[resultcache.ExtCachedFrom] != "first" {
		t.Errorf("cached answer without cachedfrom: %v", ev.CloudEvent)
	}

	ref, err := hs.blobs.Put(ctx, fsnats.BucketImages, "uploads/c2.jpg", "image/jpeg", jpg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []events.Submission{
		{ImageID: "c2", Tenant: "other", Ref: &ref},                                                  // not cached for this tenant
		{ImageID: "c3", Tenant: "acme", Image: jpg, Options: events.RequestOptions{SkipCache: true}}, // asks for a fresh analysis
		{ImageID: "c4", Tenant: "acme", Image: smallPNG(t, 64, 48)},                                  // never analysed
	} {
		outs, err := h.Handle(ctx, delivery(t, s))
		var rej events.ImageRejected
		if err := one(t, outs, err, events.TypeImageRejected).Decode(&rej); err != nil {
			t.Fatal(err)
		}
		if rej.Reason != events.RejectInferenceUnavailable || rej.Message == "" || rej.ImageID != s.ImageID {
			t.Errorf("%s: rejected %+v, want %s", s.ImageID, rej, events.RejectInferenceUnavailable)
		}
	}
	if _, err := hs.blobs.Get(ctx, ref); !errors.Is(err, events.ErrBlobNotFound) {
		t.Errorf("claim check of a rejected image still stored: %v", err)
	}

	outs, err = h.Handle(ctx, delivery(t, events.Submission{ImageID: "c5", Tenant: "acme", Image: []byte("not an image")}))
	var rej events.ImageRejected
	if err := one(t, outs, err, events.TypeImageRejected).Decode(&rej); err != nil || rej.Reason != events.RejectUnsupportedFormat {
		t.Errorf("bad input in cache-only mode: %+v %v", rej, err)
	}
}
