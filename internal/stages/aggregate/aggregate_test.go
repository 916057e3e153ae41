package aggregate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/aggregate"
	"github.com/facestream/facestream/internal/store"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}

const sha = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

type harness struct {
	js    jetstream.JetStream
	st    *store.Store
	blobs *events.BlobStore
	cache *resultcache.Cache
	h     *aggregate.Handler
}

func newHarness(t *testing.T, ctx context.Context) harness {
	srv := natstest.Start(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	kv, err := srv.JS.KeyValue(ctx, fsnats.BucketCache)
	if err != nil {
		t.Fatal(err)
	}
	hs := harness{js: srv.JS, st: store.New(pgtest.NewMigrated(t)), blobs: events.NewBlobStore(srv.JS)}
	hs.cache = resultcache.New(resultcache.Config{KV: kv})
	hs.h, err = aggregate.New(hs.st, hs.blobs, hs.cache, func(pack, model string) (float32, bool) {
		return 0.5, pack == "dev" && model == "m4"
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

func delivery(t *testing.T, p *events.FacesAnalyzed, ext map[string]string) *events.Delivery {
	e, err := events.New(p.Image.ImageID, p)
	if err != nil {
		t.Fatal(err)
	}
	e.CloudEvent.SetID("in-" + p.Image.ImageID)
	e.CloudEvent.SetSource("/facestream/attrs")
	e.CloudEvent.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	e.SetTenant(p.Image.Tenant)
	for k, v := range ext {
		e.CloudEvent.SetExtension(k, v)
	}
	return &events.Delivery{Event: e, Stage: events.StageAggregate, Attempt: 1}
}

func vec(axis int) events.Vector {
	v := make(events.Vector, 4)
	v[axis] = 1
	return v
}

func analyzed(imageID string) *events.FacesAnalyzed {
	p := &events.FacesAnalyzed{
		Image:      events.ImageInfo{ImageID: imageID, Tenant: "acme", SHA256: sha, Format: "jpeg", Width: 100, Height: 80, Size: 999},
		Pack:       "dev",
		Detector:   "det",
		Recognizer: "m4",
		Timings:    events.Timings{"ingest": 1, "detect": 2},
	}
	for i := range 2 {
		p.Faces = append(p.Faces, events.Face{
			Index: i, Box: events.Box{1, 2, 30, 40}, Score: 0.9,
			Embedding:  &events.Embedding{Model: "m4", Dim: 4, Vector: vec(i)},
			Attributes: &events.Attributes{Pose: &events.Pose{Yaw: 1, Pitch: 2, Roll: 3}},
		})
	}
	return p
}

func count(t *testing.T, st *store.Store, sql string) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAggregate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	hs := newHarness(t, ctx)

	// Enrol subject Ada with a reference face along axis 0.
	if err := hs.st.SaveAnalysis(ctx, store.Analysis{
		Image: events.ImageInfo{ImageID: "enrol", Tenant: "acme", SHA256: sha, Width: 1, Height: 1},
		Pack:  "dev", AnalyzedAt: time.Now(),
		Faces: []events.Face{{Index: 0, Box: events.Box{0, 0, 1, 1}, Score: 1, Embedding: &events.Embedding{Model: "m4", Dim: 4, Vector: vec(0)}}},
	}); err != nil {
		t.Fatal(err)
	}
	var ada string
	if err := hs.st.Pool().QueryRow(ctx, `INSERT INTO facestream.subjects (tenant_id, name) VALUES ('acme', 'Ada') RETURNING id::text`).Scan(&ada); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.st.Pool().Exec(ctx, `UPDATE facestream.faces SET subject_id = $1 WHERE id = $2`, ada, store.FaceID("enrol", 0)); err != nil {
		t.Fatal(err)
	}

	// The image and a crop set wait in the object store.
	imgRef, err := hs.blobs.Put(ctx, fsnats.BucketImages, "ingest/img", "image/jpeg", []byte("image bytes"))
	if err != nil {
		t.Fatal(err)
	}
	cropRef, err := hs.blobs.Put(ctx, fsnats.BucketImages, "crops/img", "", []byte("crop bytes"))
	if err != nil {
		t.Fatal(err)
	}
	in := analyzed("img-1")
	in.ImageRef, in.CropRefs = &imgRef, []events.BlobRef{cropRef}

	var first []events.Event
	for attempt := range 2 { // a redelivery repeats everything harmlessly
		outs, err := hs.h.Handle(ctx, delivery(t, in, nil))
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if attempt == 0 {
			first = outs
		}
		if len(outs) != 2 || outs[0].CloudEvent.Type() != events.TypeFaceMatched || outs[1].CloudEvent.Type() != events.TypeImageAnalyzed {
			t.Fatalf("outputs = %v", outs)
		}
	}
	if n := count(t, hs.st, `SELECT count(*) FROM facestream.faces WHERE image_id <> '`+store.ImageUUID("enrol").String()+`'`); n != 2 {
		t.Errorf("faces = %d, want 2 after two deliveries", n)
	}
	if n := count(t, hs.st, `SELECT count(*) FROM facestream.images WHERE status = 'analyzed' AND face_count = 2`); n != 1 {
		t.Errorf("analysed images with 2 faces = %d", n)
	}
	if n := count(t, hs.st, `SELECT count(*) FROM facestream.embeddings`); n != 3 {
		t.Errorf("embeddings = %d", n)
	}

	var fm events.FaceMatched
	if err := first[0].Decode(&fm); err != nil {
		t.Fatal(err)
	}
	if fm.SubjectID != ada || fm.SubjectName != "Ada" || fm.FaceIndex != 0 || fm.FaceID != store.FaceID("img-1", 0) || fm.Threshold != 0.5 || fm.Similarity < 0.99 || fm.Tenant != "acme" {
		t.Errorf("face.matched = %+v", fm)
	}
	var res events.ImageAnalyzed
	if err := first[1].Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.Cached || len(res.Faces) != 2 || res.Faces[0].ID != store.FaceID("img-1", 0) || res.Faces[0].Match == nil ||
		res.Faces[1].Match != nil || res.Timings["aggregate"] <= 0 || res.Timings["detect"] != 2 || res.AnalyzedAt.IsZero() {
		t.Errorf("image.analyzed = %+v", res)
	}

	// The blobs are gone; the result is cached for the same bytes and pack.
	for _, ref := range []events.BlobRef{imgRef, cropRef} {
		if _, err := hs.blobs.Get(ctx, ref); !errors.Is(err, events.ErrBlobNotFound) {
			t.Errorf("blob %s: %v, want not found", ref.Key, err)
		}
	}
	e, _, ok, err := hs.cache.Get(ctx, resultcache.Key{Tenant: "acme", SHA256: sha, Pack: "dev"})
	if err != nil || !ok || e.ImageID != "img-1" || len(e.Faces) != 2 || e.Faces[0].ID != "" {
		t.Errorf("cache entry: %+v %v %v", e, ok, err)
	}

	// A cached answer for a new image is stored like any other and marked.
	outs, err := hs.h.Handle(ctx, delivery(t, analyzed("img-2"), map[string]string{resultcache.ExtCachedFrom: "img-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := outs[len(outs)-1].Decode(&res); err != nil {
		t.Fatal(err)
	}
	if !res.Cached || res.CachedFrom != "img-1" || res.Image.ImageID != "img-2" {
		t.Errorf("cached result = %+v", res)
	}

	// skip_match: no face.matched.
	d := delivery(t, analyzed("img-3"), nil)
	if err := d.SetOptions(events.RequestOptions{SkipMatch: true}); err != nil {
		t.Fatal(err)
	}
	if outs, err := hs.h.Handle(ctx, d); err != nil || len(outs) != 1 {
		t.Errorf("skip_match: %d outputs, %v", len(outs), err)
	}
}

func TestAggregatePermanentErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hs := newHarness(t, ctx)
	bad := analyzed("bad")
	bad.Image.Tenant = "Not A Tenant"
	if _, err := hs.h.Handle(ctx, delivery(t, bad, nil)); !errors.Is(err, events.ErrPermanent) {
		t.Errorf("invalid tenant: %v, want permanent", err)
	}
	d := delivery(t, analyzed("x"), nil)
	if err := d.CloudEvent.SetData(events.ContentTypeJSON, []byte(`{"faces": 7}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.h.Handle(ctx, d); !errors.Is(err, events.ErrPermanent) {
		t.Errorf("malformed payload: %v, want permanent", err)
	}
}

func TestRecorder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := store.New(pgtest.NewMigrated(t))
	rec, err := aggregate.NewRecorder(st, nil, "dev")
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.New("r-1", &events.ImageRejected{ImageID: "r-1", Tenant: "fresh", Stage: "ingest", Reason: events.RejectDecompressionBomb, Message: "boom", Size: 5})
	if err != nil {
		t.Fatal(err)
	}
	e.CloudEvent.SetID("rej-1")
	e.CloudEvent.SetSource("/facestream/ingest")
	e.CloudEvent.SetTime(time.Now())
	for range 2 {
		outs, err := rec.Handle(ctx, &events.Delivery{Event: e, Stage: aggregate.ConsumerRecorder, Attempt: 1})
		if err != nil || len(outs) != 0 {
			t.Fatalf("record: %v %v", outs, err)
		}
	}
	if n := count(t, st, `SELECT count(*) FROM facestream.images WHERE tenant_id = 'fresh' AND status = 'rejected' AND reject_reason = 'decompression_bomb' AND model_pack = 'dev'`); n != 1 {
		t.Errorf("recorded rejections = %d", n)
	}
}
