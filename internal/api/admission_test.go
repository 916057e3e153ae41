package api

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// workStream applies the definitions with the work stream bounded to
// perStage messages per subject.
func workStream(t *testing.T, perStage int64) *natstest.Server {
	t.Helper()
	srv := natstest.Start(t)
	if _, err := fsnats.Apply(context.Background(), srv.JS, fsnats.WithMemoryStorage(), fsnats.WithMaxMsgsPerSubject(fsnats.StreamWork, perStage)); err != nil {
		t.Fatal(err)
	}
	return srv
}

// fill publishes n messages to subject, as another producer or a stage.
func fill(t *testing.T, srv *natstest.Server, subject string, n int) {
	t.Helper()
	for range n {
		if _, err := srv.JS.Publish(context.Background(), subject, []byte("queued")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAdmission: images are admitted until the work stream, all stages
// together, as last read plus what was admitted since, reaches the
// high-water mark; then each is refused with 503 overloaded and a
// Retry-After, counted by reason.
func TestAdmission(t *testing.T) {
	srv := workStream(t, 20)
	reg := prometheus.NewPedanticRegistry()
	a, err := newAdmission(srv.JS, 50, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.every = time.Hour // read once, then count locally
	ctx := context.Background()
	fill(t, srv, events.SubjectImageAccepted, 2)
	fill(t, srv, events.SubjectFacesDetected, 2)
	for i := range 6 { // 4 in the stream + 6 admitted = 10 = 50 % of 20 per stage
		if p := a.admit(ctx); p != nil {
			t.Fatalf("image %d refused below the mark: %+v", i, p)
		}
	}
	p := a.admit(ctx)
	if p == nil || p.Status != http.StatusServiceUnavailable || p.Code != CodeOverloaded || p.RetryAfter < 1 || p.Title == "" {
		t.Fatalf("at the mark: %+v, want 503 overloaded with retry_after", p)
	}
	if p := a.check(ctx); p == nil {
		t.Error("check admits at the mark")
	}
	if got := testutil.ToFloat64(a.refused.WithLabelValues(refusedBacklog)); got != 2 {
		t.Errorf("backlog refusals = %v, want 2", got)
	}

	// The next read sees what the stream really holds: 4 messages, room again.
	a.every = 0
	if p := a.admit(ctx); p != nil {
		t.Fatalf("after a read of 4 messages: %+v", p)
	}
	fill(t, srv, events.SubjectFacesEmbedded, 6)
	if p := a.admit(ctx); p == nil {
		t.Fatal("10 messages in a stream of 20 per stage at 50 %: admitted")
	}

	if p := a.full(); p.Status != http.StatusServiceUnavailable || p.Code != CodeOverloaded || p.RetryAfter < 1 {
		t.Errorf("full: %+v", p)
	}
	if got := testutil.ToFloat64(a.refused.WithLabelValues(refusedStreamFull)); got != 1 {
		t.Errorf("stream_full refusals = %v, want 1", got)
	}
}

// TestAdmissionRetryAfterFollowsTheDrainRate: Retry-After is the messages
// above the mark over the images leaving per second, between 1 and 60.
func TestAdmissionRetryAfterFollowsTheDrainRate(t *testing.T) {
	a := &admission{highWater: 50, limit: 1000, consumers: 5}
	for _, tt := range []struct {
		msgs uint64
		rate float64 // messages removed per second
		want int
	}{
		{600, 0, 5},      // rate unknown
		{600, 50, 11},    // 101 over, 10 images/s
		{500, 50, 1},     // at the mark
		{1000, 5, 60},    // 501 over at 1 image/s: capped
		{600, 5000, 1},   // fast
		{700, 25, 41},    // 201 over, 5 images/s
		{100, 50, 1},     // below (stream_full from another producer)
		{1000, 1000, 3},  // 501 over, 200 images/s
		{1000, 10000, 1}, // 501 over, 2000 images/s
	} {
		a.msgs, a.rate = tt.msgs, tt.rate
		if got := a.retryAfterLocked(); got != tt.want {
			t.Errorf("%d messages, %v removed/s: retry after %d, want %d", tt.msgs, tt.rate, got, tt.want)
		}
	}
}

// TestSubmitIntoAFullWorkStream: a publish the work stream refuses (new
// images at their limit, filled behind the edge's back) is 503 overloaded
// with Retry-After, never a 500, and leaves neither an "accepted" row nor
// a claim check behind.
func TestSubmitIntoAFullWorkStream(t *testing.T) {
	srv := workStream(t, 100)
	db := pgtest.NewMigrated(t)
	reg := prometheus.NewPedanticRegistry()
	s, err := New(Config{BacklogHighWater: 90, InlineMax: 1 << 10}, Deps{JS: srv.JS, DB: db, Blobs: events.NewBlobStore(srv.JS), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := auth.NewStore(db).Create(context.Background(), auth.CreateOptions{Tenant: "t1", Name: "test", Scopes: []string{auth.ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	s.adm.every = time.Hour // the edge last saw an empty stream
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	img := testJPEG(t)
	post := func(path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, ts.URL+path, bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "image/jpeg")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := post("/v1/images"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first image: %d", resp.StatusCode)
	}
	fill(t, srv, events.SubjectImageSubmitted, 99) // another producer fills image.submitted

	resp := post("/v1/images")
	var p Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || p.Code != CodeOverloaded || resp.Header.Get("Retry-After") == "" || p.RetryAfter < 1 {
		t.Fatalf("into a full stream: %d %+v, Retry-After %q; want 503 overloaded with Retry-After", resp.StatusCode, p, resp.Header.Get("Retry-After"))
	}
	var rows int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM facestream.images`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d image rows, want 1 (the refused image's row removed)", rows)
	}
	store, err := srv.JS.ObjectStore(context.Background(), fsnats.BucketImages)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Errorf("%d claim checks in the bucket, want 1 (the refused image's deleted)", len(objs))
	}
	if got := testutil.ToFloat64(s.adm.refused.WithLabelValues(refusedStreamFull)); got != 1 {
		t.Errorf("stream_full refusals = %v, want 1", got)
	}

	// Once the edge reads the full stream, every image-submitting route
	// refuses at once (backlog), the synchronous ones included.
	s.adm.every = 0
	for _, path := range []string{"/v1/images", "/v1/analyze"} {
		resp := post(path)
		var p Problem
		err := json.NewDecoder(resp.Body).Decode(&p)
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable || p.Code != CodeOverloaded || resp.Header.Get("Retry-After") == "" {
			t.Errorf("POST %s into a full stream: %d %+v (%v), Retry-After %q; want 503 overloaded", path, resp.StatusCode, p, err, resp.Header.Get("Retry-After"))
		}
	}
	if got := testutil.ToFloat64(s.adm.refused.WithLabelValues(refusedBacklog)); got != 2 {
		t.Errorf("backlog refusals = %v, want 2", got)
	}
}

// testJPEG is a small valid JPEG, larger than the 1 KiB inline limit of
// TestSubmitIntoAFullWorkStream, so that it travels as a claim check.
func testJPEG(t *testing.T) []byte {
	t.Helper()
	im := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			im.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 4), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, im, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
