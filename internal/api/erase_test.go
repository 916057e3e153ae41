package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// deadLetters returns the dead letters in FACESTREAM_DLQ by sequence.
func deadLetters(t *testing.T, ctx context.Context, js jetstream.JetStream) map[uint64]*jetstream.RawStreamMsg {
	t.Helper()
	stream, err := js.Stream(ctx, fsnats.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*jetstream.RawStreamMsg{}
	if info.State.Msgs == 0 {
		return out
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[seq] = m
	}
	return out
}

// TestEraseRemovesDeadLetters: messages of an image that a stage gave up on
// wait in the dead-letter stream with the image inline. Erasing the image
// removes them — the dead letters of events and of a message that was not
// even an event but names the image — and leaves other images' dead
// letters alone. Erasing it again answers 204 and finds nothing left.
func TestEraseRemovesDeadLetters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := natstest.Start(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewMigrated(t)
	s, err := New(Config{InlineMax: 1 << 20}, Deps{JS: srv.JS, DB: db, Blobs: events.NewBlobStore(srv.JS), Registerer: prometheus.NewPedanticRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	keys := auth.NewStore(db)
	writer, _, err := keys.Create(ctx, auth.CreateOptions{Tenant: "t1", Name: "writer", Scopes: []string{auth.ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := keys.Create(ctx, auth.CreateOptions{Tenant: "t1", Name: "admin", Scopes: []string{auth.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	call := func(method, path, key string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "image/jpeg")
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b.Bytes()
	}
	img := testJPEG(t)
	submit := func() string {
		t.Helper()
		code, body := call(http.MethodPost, "/v1/images", writer, img)
		var out struct{ ID string }
		if code != http.StatusAccepted || json.Unmarshal(body, &out) != nil || out.ID == "" {
			t.Fatalf("submit: %d %s", code, body)
		}
		return out.ID
	}
	erased, other := submit(), submit()
	// A message that is not an event at all, but names the image.
	junk := nats.NewMsg(events.SubjectImageSubmitted)
	junk.Header.Set("ce-subject", erased)
	junk.Data = img
	if _, err := srv.JS.PublishMsg(ctx, junk); err != nil {
		t.Fatal(err)
	}

	// An ingest that gives up on everything dead-letters all three.
	cons, err := srv.JS.Consumer(ctx, fsnats.StreamWork, events.StageIngest)
	if err != nil {
		t.Fatal(err)
	}
	poison := events.HandlerFunc(func(context.Context, *events.Delivery) ([]events.Event, error) {
		return nil, events.Permanent(errors.New("poison"))
	})
	r, err := events.NewRunner(srv.JS, cons, poison, events.RunnerConfig{Stage: events.StageIngest, Concurrency: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for len(deadLetters(t, ctx, srv.JS)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want 3", len(deadLetters(t, ctx, srv.JS)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	inline := 0
	for _, m := range deadLetters(t, ctx, srv.JS) {
		var dl events.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(dl.Original.Data, img) {
			inline++
		}
	}
	if inline != 3 {
		t.Fatalf("%d dead letters carry the image inline, want 3 (the test needs them)", inline)
	}

	if code, body := call(http.MethodDelete, "/v1/images/"+erased, admin, nil); code != http.StatusNoContent {
		t.Fatalf("erase: %d %s", code, body)
	}
	left := deadLetters(t, ctx, srv.JS)
	for seq, m := range left {
		if bytes.Contains(m.Data, []byte(erased)) || m.Header.Get("ce-subject") == erased {
			t.Errorf("dead letter %d of the erased image remains", seq)
		}
	}
	if len(left) != 1 {
		t.Errorf("%d dead letters remain, want the other image's 1", len(left))
	}
	for _, m := range left {
		if m.Header.Get("ce-subject") != other {
			t.Errorf("the remaining dead letter is about %q, want %q", m.Header.Get("ce-subject"), other)
		}
	}

	// Again: the image is erased already; its copies are looked for again.
	if code, body := call(http.MethodDelete, "/v1/images/"+erased, admin, nil); code != http.StatusNoContent {
		t.Errorf("erase again: %d %s, want 204", code, body)
	}
	if n := len(deadLetters(t, ctx, srv.JS)); n != 1 {
		t.Errorf("after erasing again, %d dead letters, want 1", n)
	}
	// An id that never was an image of the tenant is still 404.
	if code, _ := call(http.MethodDelete, "/v1/images/3f1f6c2b-9a10-4d59-9d7e-0b6f0e1e8d4c", admin, nil); code != http.StatusNotFound {
		t.Errorf("erase an unknown image: %d, want 404", code)
	}
}
