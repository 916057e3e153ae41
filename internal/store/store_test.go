package store_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"

	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/store"
	"github.com/facestream/facestream/pkg/events"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// unit returns a 4-d unit vector pointing mostly along axis.
func unit(axis int, tilt float32) []float32 {
	v := make([]float32, 4)
	v[axis] = 1
	v[(axis+1)%4] = tilt
	n := float32(math.Sqrt(float64(1 + tilt*tilt)))
	for i := range v {
		v[i] /= n
	}
	return v
}

func f32(v float32) *float32 { return &v }

func sampleAnalysis(imageID, tenant string, faces int) store.Analysis {
	a := store.Analysis{
		Image: events.ImageInfo{
			ImageID: imageID, Tenant: tenant,
			SHA256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			Format: "jpeg", Width: 640, Height: 480, Size: 12345,
			SubmittedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		},
		Pack:       "dev",
		Source:     "/test",
		AnalyzedAt: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
	}
	for i := range faces {
		a.Faces = append(a.Faces, events.Face{
			Index:     i,
			Box:       events.Box{10, 20, 110, 140},
			Landmarks: events.Landmarks{{30, 50}, {80, 50}, {55, 80}, {35, 110}, {75, 110}},
			Score:     0.9,
			Embedding: &events.Embedding{Model: "m4", Dim: 4, Vector: unit(i%4, 0.1)},
			Attributes: &events.Attributes{
				Age:     f32(31),
				Gender:  &events.Gender{Label: "female", Score: 0.8},
				Emotion: &events.Emotion{Label: "happiness", Score: 0.7, Probabilities: map[string]float32{"happiness": 0.7, "neutral": 0.3}},
				Pose:    &events.Pose{Yaw: 1, Pitch: 2, Roll: 3},
				Quality: &events.Quality{Sharpness: 100, Brightness: 0.5, FaceSize: 100, DetScore: 0.9, Usable: true},
			},
		})
	}
	return a
}

// snapshot returns every row of the result tables, for comparisons.
func snapshot(t *testing.T, s *store.Store) []string {
	t.Helper()
	rows, err := s.Pool().Query(ctxT(t), `
SELECT 'i ' || row_to_json(i)::text FROM facestream.images i
UNION ALL SELECT 'f ' || row_to_json(f)::text FROM facestream.faces f
UNION ALL SELECT 'e ' || row_to_json(e)::text FROM facestream.embeddings e
UNION ALL SELECT 't ' || row_to_json(t)::text FROM facestream.tenants t
ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, s *store.Store, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(ctxT(t), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSaveAnalysisIdempotentAndCreatesTenant(t *testing.T) {
	s := store.New(pgtest.NewMigrated(t))
	ctx := ctxT(t)
	a := sampleAnalysis("camera-7/frame-1", "acme", 3)
	if err := s.SaveAnalysis(ctx, a); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t, s)
	if err := s.SaveAnalysis(ctx, a); err != nil {
		t.Fatal(err)
	}
	if second := snapshot(t, s); !reflect.DeepEqual(first, second) {
		t.Errorf("second save changed rows:\n%v\n%v", first, second)
	}
	if n := count(t, s, `SELECT count(*) FROM facestream.faces WHERE tenant_id = 'acme'`); n != 3 {
		t.Errorf("faces = %d", n)
	}
	if n := count(t, s, `SELECT count(*) FROM facestream.embeddings WHERE model = 'm4'`); n != 3 {
		t.Errorf("embeddings = %d", n)
	}
	if n := count(t, s, `SELECT count(*) FROM facestream.embedding_models WHERE model = 'm4' AND dim = 4`); n != 1 {
		t.Errorf("embedding model rows = %d", n)
	}
	id := store.FaceID("camera-7/frame-1", 2)
	if n := count(t, s, `SELECT count(*) FROM facestream.faces WHERE id = $1 AND face_index = 2 AND image_id = $2`,
		id, store.ImageUUID("camera-7/frame-1")); n != 1 {
		t.Errorf("face 2 not stored under its derived id %s", id)
	}

	// A re-analysis with fewer faces leaves exactly those.
	b := sampleAnalysis("camera-7/frame-1", "acme", 1)
	if err := s.SaveAnalysis(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT count(*) FROM facestream.faces`); n != 1 {
		t.Errorf("faces after re-analysis = %d", n)
	}
	if n := count(t, s, `SELECT count(*) FROM facestream.embeddings`); n != 1 {
		t.Errorf("embeddings after re-analysis = %d", n)
	}
}

func TestSaveAnalysisInvalid(t *testing.T) {
	s := store.New(pgtest.NewMigrated(t))
	ctx := ctxT(t)
	bad := []func(*store.Analysis){
		func(a *store.Analysis) { a.Image.Tenant = "Not A Slug" },
		func(a *store.Analysis) { a.Image.SHA256 = "xyz" },
		func(a *store.Analysis) { a.Faces[1].Index = 0 },
		func(a *store.Analysis) { a.Faces[0].Embedding.Model = "" },
	}
	for i, edit := range bad {
		a := sampleAnalysis("img", "", 2)
		edit(&a)
		if err := s.SaveAnalysis(ctx, a); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("case %d: err = %v, want ErrInvalid", i, err)
		}
	}
	// The same image id under another tenant.
	if err := s.SaveAnalysis(ctx, sampleAnalysis("img", "one", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAnalysis(ctx, sampleAnalysis("img", "two", 1)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("other tenant: err = %v, want ErrInvalid", err)
	}
}

func TestSaveRejection(t *testing.T) {
	s := store.New(pgtest.NewMigrated(t))
	ctx := ctxT(t)
	r := store.Rejection{ImageID: "r1", Tenant: "newco", Reason: events.RejectTruncated, Pack: "dev", Size: 10}
	for range 2 {
		if err := s.SaveRejection(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM facestream.images WHERE status = 'rejected' AND reject_reason = 'truncated' AND tenant_id = 'newco'`); n != 1 {
		t.Errorf("rejected rows = %d", n)
	}
	// A rejection never overwrites an analysed image.
	a := sampleAnalysis("r2", "newco", 1)
	if err := s.SaveAnalysis(ctx, a); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	if err := s.SaveRejection(ctx, store.Rejection{ImageID: "r2", Tenant: "newco", Reason: events.RejectCorrupt, Pack: "dev"}); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, s); !reflect.DeepEqual(before, after) {
		t.Error("a rejection changed an analysed image")
	}
}

func TestLookupCached(t *testing.T) {
	s := store.New(pgtest.NewMigrated(t))
	ctx := ctxT(t)
	a := sampleAnalysis("c1", "", 2)
	// What a cached answer must give back like the first one: the detector
	// and why a face failed the quality gate (migration 0005).
	a.Detector = "det_500m"
	q := *a.Faces[1].Attributes.Quality
	q.Usable, q.Reason = false, events.QualityBlurry
	at := *a.Faces[1].Attributes
	at.Quality = &q
	a.Faces[1].Attributes = &at
	if _, ok, err := s.LookupCached(ctx, "", a.Image.SHA256, "dev"); err != nil || ok {
		t.Fatalf("before: ok=%v err=%v", ok, err)
	}
	if err := s.SaveAnalysis(ctx, a); err != nil {
		t.Fatal(err)
	}
	c, ok, err := s.LookupCached(ctx, "", a.Image.SHA256, "dev")
	if err != nil || !ok {
		t.Fatalf("after: ok=%v err=%v", ok, err)
	}
	if c.ImageID != store.ImageUUID("c1").String() || c.Width != 640 || c.Detector != "det_500m" || c.Recognizer != "m4" || len(c.Faces) != 2 {
		t.Errorf("cached = %+v", c)
	}
	if !reflect.DeepEqual(c.Faces[1], a.Faces[1]) {
		t.Errorf("face 1 round trip:\n got %+v %+v %+v\nwant %+v %+v %+v", c.Faces[1], c.Faces[1].Embedding, c.Faces[1].Attributes,
			a.Faces[1], a.Faces[1].Embedding, a.Faces[1].Attributes)
	}
	if _, ok, _ := s.LookupCached(ctx, "", a.Image.SHA256, "other-pack"); ok {
		t.Error("hit for another pack")
	}
	if _, ok, _ := s.LookupCached(ctx, "acme", a.Image.SHA256, "dev"); ok {
		t.Error("hit for another tenant")
	}
}

func TestMatchSubjects(t *testing.T) {
	s := store.New(pgtest.NewMigrated(t))
	ctx := ctxT(t)
	// Enrol: face 0 of an image becomes the reference of subject Ada.
	ref := sampleAnalysis("enrol", "acme", 1)
	if err := s.SaveAnalysis(ctx, ref); err != nil {
		t.Fatal(err)
	}
	var subject string
	if err := s.Pool().QueryRow(ctx, `INSERT INTO facestream.subjects (tenant_id, name) VALUES ('acme', 'Ada') RETURNING id::text`).Scan(&subject); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE facestream.faces SET subject_id = $1 WHERE id = $2`, subject, store.FaceID("enrol", 0)); err != nil {
		t.Fatal(err)
	}
	got, err := s.MatchSubjects(ctx, "acme", "m4", [][]float32{unit(0, 0.2), unit(2, 0)}, 0.5, 400)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] == nil || got[0].SubjectID != subject || got[0].SubjectName != "Ada" || got[0].Similarity < 0.9 || got[0].Threshold != 0.5 {
		t.Errorf("match 0 = %+v", got[0])
	}
	if got[1] != nil {
		t.Errorf("match 1 = %+v, want none", got[1])
	}
	// Another tenant sees no subjects; an unknown model matches nothing.
	if got, err := s.MatchSubjects(ctx, "other", "m4", [][]float32{unit(0, 0.2)}, 0.5, 0); err != nil || got[0] != nil {
		t.Errorf("other tenant: %v %v", got, err)
	}
	if got, err := s.MatchSubjects(ctx, "acme", "nope", [][]float32{unit(0, 0.2)}, 0.5, 0); err != nil || got[0] != nil {
		t.Errorf("unknown model: %v %v", got, err)
	}
	// The ef_search reaches search_faces, which refuses one above 1000.
	if _, err := s.MatchSubjects(ctx, "acme", "m4", [][]float32{unit(0, 0.2)}, 0.5, 1001); err == nil || !strings.Contains(err.Error(), "ef_search") {
		t.Errorf("ef_search 1001: err = %v, want search_faces to refuse it", err)
	}
}

func TestIDs(t *testing.T) {
	const u = "6f1c1f6e-4a5b-4c3d-9e8f-0123456789ab"
	if got := store.ImageUUID(u).String(); got != u {
		t.Errorf("ImageUUID(uuid) = %s", got)
	}
	if a1, a2 := store.ImageUUID("a"), store.ImageUUID("a"); a1 == store.ImageUUID("b") || a1 != a2 {
		t.Error("ImageUUID of strings is not a function of the string")
	}
	if f1, f2 := store.FaceID("a", 0), store.FaceID("a", 0); f1 == store.FaceID("a", 1) || f1 != f2 {
		t.Error("FaceID is not deterministic and distinct")
	}
}
