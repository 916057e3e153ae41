package aggregate_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/aggregate"
	"github.com/facestream/facestream/internal/store"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// inFlight stores the accepted row of a new image as the HTTP edge does and
// puts its payload and crop set in the object store, as ingest and detect
// do; it returns the image's analysed event, with the blob references.
func inFlight(t *testing.T, ctx context.Context, hs harness) *events.FacesAnalyzed {
	t.Helper()
	id := uuid.NewString()
	if _, err := hs.st.Pool().Exec(ctx, `INSERT INTO facestream.tenants (id) VALUES ('acme') ON CONFLICT DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.st.Pool().Exec(ctx, `INSERT INTO facestream.images (id, tenant_id, sha256, source, byte_size, status, model_pack)
VALUES ($1::uuid, 'acme', $2, '/api/v1', 999, 'accepted', 'dev')`, id, sha); err != nil {
		t.Fatal(err)
	}
	imgRef, err := hs.blobs.Put(ctx, fsnats.BucketImages, "ingest/"+id, "image/jpeg", []byte("image bytes"))
	if err != nil {
		t.Fatal(err)
	}
	cropRef, err := hs.blobs.Put(ctx, fsnats.BucketImages, "crops/"+id, "", []byte("crop bytes"))
	if err != nil {
		t.Fatal(err)
	}
	in := analyzed(id)
	in.ImageRef, in.CropRefs = &imgRef, []events.BlobRef{cropRef}
	return in
}

func erase(t *testing.T, ctx context.Context, st *store.Store, imageID string) {
	t.Helper()
	var erased bool
	if err := st.Pool().QueryRow(ctx, `SELECT facestream.erase_image('acme', $1::uuid)`, imageID).Scan(&erased); err != nil || !erased {
		t.Fatalf("erase %s: %v, %v", imageID, erased, err)
	}
}

// assertErasedOutcome checks that the image ended as erased: one
// image.rejected with reason erased and nothing of the image in it, no row,
// no blob, no cache entry; and that the recorder stores nothing of it.
func assertErasedOutcome(t *testing.T, ctx context.Context, hs harness, in *events.FacesAnalyzed, outs []events.Event) {
	t.Helper()
	id := in.Image.ImageID
	if len(outs) != 1 || outs[0].CloudEvent.Type() != events.TypeImageRejected {
		t.Fatalf("outputs = %v, want one image.rejected", outs)
	}
	var rej events.ImageRejected
	if err := outs[0].Decode(&rej); err != nil {
		t.Fatal(err)
	}
	if rej.Reason != events.RejectErased || rej.ImageID != id || rej.Stage != events.StageAggregate || rej.SHA256 != "" || rej.Size != 0 || rej.Message == "" {
		t.Errorf("image.rejected = %+v, want reason erased and nothing of the image", rej)
	}
	if outs[0].CloudEvent.Subject() != id {
		t.Errorf("the rejection is about %q, want %q", outs[0].CloudEvent.Subject(), id)
	}
	if n := count(t, hs.st, `SELECT (SELECT count(*) FROM facestream.images WHERE id = '`+id+`')
 + (SELECT count(*) FROM facestream.faces WHERE image_id = '`+id+`')`); n != 0 {
		t.Errorf("the erased image has %d rows", n)
	}
	for _, ref := range append([]events.BlobRef{*in.ImageRef}, in.CropRefs...) {
		if _, err := hs.blobs.Get(ctx, ref); !errors.Is(err, events.ErrBlobNotFound) {
			t.Errorf("blob %s: %v, want not found", ref.Key, err)
		}
	}
	if e, tier, ok, err := hs.cache.Get(ctx, resultcache.Key{Tenant: "acme", SHA256: sha, Pack: "dev"}); ok || err != nil {
		t.Errorf("the cache answers for the erased image from %s: %+v (%v)", tier, e, err)
	}

	// The recorder takes the rejection and stores nothing.
	rec, err := aggregate.NewRecorder(hs.st, hs.js, "dev")
	if err != nil {
		t.Fatal(err)
	}
	out := outs[0]
	out.CloudEvent.SetID("rej-" + id)
	out.CloudEvent.SetSource("/facestream/aggregate")
	out.CloudEvent.SetTime(time.Now())
	if got, err := rec.Handle(ctx, &events.Delivery{Event: out, Stage: aggregate.ConsumerRecorder, Attempt: 1}); err != nil || len(got) != 0 {
		t.Errorf("recorder: %v, %v; want nothing and no error", got, err)
	}
	if n := count(t, hs.st, `SELECT count(*) FROM facestream.images WHERE id = '`+id+`'`); n != 0 {
		t.Errorf("the recorder stored the erased image (%d rows)", n)
	}
}

// TestAggregateErasedInFlight: an image erased while its messages are still
// in the pipeline reaches aggregate after the erasure. It must not be
// stored again: it ends as image.rejected (erased), with its blobs deleted
// and nothing cached — on every delivery.
func TestAggregateErasedInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	hs := newHarness(t, ctx)
	in := inFlight(t, ctx, hs)
	erase(t, ctx, hs.st, in.Image.ImageID)
	for attempt := range 2 { // a redelivery ends the same way
		outs, err := hs.h.Handle(ctx, delivery(t, in, nil))
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		assertErasedOutcome(t, ctx, hs, in, outs)
	}
}

// TestAggregateErasedWhileStoring: the erasure commits after aggregate has
// stored the image, and clears the cache before aggregate fills it. The
// image must still end erased, and the entry aggregate put in the cache
// must go. The erasure runs from the matching step, which comes between
// the two.
func TestAggregateErasedWhileStoring(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	hs := newHarness(t, ctx)
	in := inFlight(t, ctx, hs)
	var once sync.Once
	h, err := aggregate.New(hs.st, hs.blobs, hs.cache, func(string, string) (float32, bool) {
		once.Do(func() {
			if n := count(t, hs.st, `SELECT count(*) FROM facestream.images WHERE status = 'analyzed' AND id = '`+in.Image.ImageID+`'`); n != 1 {
				t.Errorf("the image is not stored when the erasure comes (%d rows)", n)
			}
			erase(t, ctx, hs.st, in.Image.ImageID)
			if err := hs.cache.Delete(ctx, resultcache.Key{Tenant: "acme", SHA256: sha, Pack: "dev"}); err != nil {
				t.Error(err)
			}
		})
		return 0.5, true
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := h.Handle(ctx, delivery(t, in, nil))
	if err != nil {
		t.Fatal(err)
	}
	assertErasedOutcome(t, ctx, hs, in, outs)
}

// TestRecorderErasedImage: a stage that did not know the image was erased
// rejects it for another reason (here no_face, with the image's sha256),
// after the erasure purged its results. The recorder stores nothing, turns
// the outcome into image.rejected erased, and once that one is stored
// removes the earlier rejection from the results stream.
func TestRecorderErasedImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	hs := newHarness(t, ctx)
	in := inFlight(t, ctx, hs)
	id := in.Image.ImageID
	erase(t, ctx, hs.st, id)
	rec, err := aggregate.NewRecorder(hs.st, hs.js, "dev")
	if err != nil {
		t.Fatal(err)
	}
	// publish stores e in the results stream and returns it as delivered.
	publish := func(e events.Event, eventID string) *events.Delivery {
		t.Helper()
		e.CloudEvent.SetID(eventID)
		e.CloudEvent.SetSource("/facestream/test")
		e.CloudEvent.SetTime(time.Now())
		msg, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := hs.js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		return &events.Delivery{Event: e, Stage: aggregate.ConsumerRecorder, Attempt: 1, Stream: ack.Stream, Sequence: ack.Sequence}
	}
	noFace, err := events.New(id, &events.ImageRejected{ImageID: id, Tenant: "acme", Stage: events.StageDetect,
		Reason: events.RejectNoFace, Message: "no face found", SHA256: sha, Size: 999})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := rec.Handle(ctx, publish(noFace, "no-face-"+id))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].CloudEvent.Type() != events.TypeImageRejected {
		t.Fatalf("outputs = %v, want one image.rejected", outs)
	}
	var rej events.ImageRejected
	if err := outs[0].Decode(&rej); err != nil {
		t.Fatal(err)
	}
	if rej.Reason != events.RejectErased || rej.ImageID != id || rej.SHA256 != "" || rej.Size != 0 {
		t.Errorf("the recorder's outcome = %+v, want erased and nothing of the image", rej)
	}
	// The runner publishes the outcome; it comes back to the recorder.
	if outs, err := rec.Handle(ctx, publish(outs[0], "erased-"+id)); err != nil || len(outs) != 0 {
		t.Fatalf("the erased outcome: %v, %v; want nothing", outs, err)
	}
	stream, err := hs.js.Stream(ctx, fsnats.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(events.ResultSubject(events.TypeImageRejected, id)))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[events.ResultSubject(events.TypeImageRejected, id)]; n != 1 {
		t.Fatalf("the results stream keeps %d rejections of the erased image, want 1", n)
	}
	last, err := stream.GetLastMsgForSubject(ctx, events.ResultSubject(events.TypeImageRejected, id))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(last.Data), `"reason":"erased"`) || strings.Contains(string(last.Data), sha) {
		t.Errorf("the rejection kept is %s, want the erased one", last.Data)
	}
	if n := count(t, hs.st, `SELECT count(*) FROM facestream.images WHERE id = '`+id+`'`); n != 0 {
		t.Errorf("the recorder stored the erased image (%d rows)", n)
	}
}
