package nats_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func actions(changes []fsnats.Change) map[fsnats.Action]int {
	m := map[fsnats.Action]int{}
	for _, c := range changes {
		m[c.Action]++
	}
	return m
}

// TestApplyFromEmptyThenAgain: the first Apply creates every resource, the
// second changes nothing.
func TestApplyFromEmptyThenAgain(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	ctx := testCtx(t)

	first, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage())
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	// 3 streams, 6 consumers (the stages and the rejection recorder), 1 object store, 1 key-value bucket.
	if len(first) != 11 || actions(first)[fsnats.Created] != 11 {
		t.Fatalf("first apply: %+v", first)
	}
	for _, name := range []string{fsnats.StreamWork, fsnats.StreamResults, fsnats.StreamDLQ} {
		s, err := srv.JS.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if s.CachedInfo().Config.Storage != jetstream.MemoryStorage {
			t.Errorf("stream %s not in memory", name)
		}
	}
	if _, err := srv.JS.ObjectStore(ctx, fsnats.BucketImages); err != nil {
		t.Errorf("object store: %v", err)
	}
	kv, err := srv.JS.KeyValue(ctx, fsnats.BucketCache)
	if err != nil {
		t.Fatalf("key-value: %v", err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.TTL() != 24*time.Hour {
		t.Errorf("cache TTL = %v, want 24h", status.TTL())
	}

	// Work in the stream and a consumer's state survive a second Apply.
	if _, err := srv.JS.Publish(ctx, events.SubjectImageAccepted, []byte("x")); err != nil {
		t.Fatal(err)
	}
	second, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage())
	if err != nil {
		t.Fatalf("apply again: %v", err)
	}
	if actions(second)[fsnats.Unchanged] != 11 {
		t.Errorf("second apply changed something: %+v", second)
	}
	c, err := srv.JS.Consumer(ctx, fsnats.StreamWork, fsnats.ConsumerDetect)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx); err != nil || info.NumPending != 1 {
		t.Errorf("detect consumer after re-apply: pending %d, %v", info.NumPending, err)
	}
}

// TestApplyUpdatesInPlace: a changed setting is updated without losing the
// stream's messages or the consumer.
func TestApplyUpdatesInPlace(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	ctx := testCtx(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.JS.Publish(ctx, events.ResultSubject(events.TypeImageAnalyzed, "img-1"), []byte("result")); err != nil {
		t.Fatal(err)
	}

	defs, err := fsnats.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	for i := range defs.Consumers {
		if defs.Consumers[i].Name == fsnats.ConsumerEmbed {
			defs.Consumers[i].MaxAckPending = 32
		}
	}
	changes, err := fsnats.Apply(ctx, srv.JS,
		fsnats.WithDefinitions(defs),
		fsnats.WithMemoryStorage(),
		fsnats.WithMaxAge(fsnats.StreamResults, 2*time.Hour),
		fsnats.WithTTL(fsnats.BucketImages, 10*time.Minute),
	)
	if err != nil {
		t.Fatalf("apply changes: %v", err)
	}
	want := map[string]fsnats.Action{
		fsnats.StreamResults: fsnats.Updated,
		fsnats.StreamWork:    fsnats.Unchanged,
		fsnats.StreamWork + " > " + fsnats.ConsumerEmbed:  fsnats.Updated,
		fsnats.StreamWork + " > " + fsnats.ConsumerDetect: fsnats.Unchanged,
		fsnats.BucketImages: fsnats.Updated,
		fsnats.BucketCache:  fsnats.Unchanged,
	}
	for _, c := range changes {
		if a, ok := want[c.Name]; ok && a != c.Action {
			t.Errorf("%s %s: %s, want %s", c.Kind, c.Name, c.Action, a)
		}
	}

	s, err := srv.JS.Stream(ctx, fsnats.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 2*time.Hour || info.State.Msgs != 1 {
		t.Errorf("results stream: max age %v, %d messages; want 2h and the message kept", info.Config.MaxAge, info.State.Msgs)
	}
	c, err := srv.JS.Consumer(ctx, fsnats.StreamWork, fsnats.ConsumerEmbed)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.MaxAckPending; got != 32 {
		t.Errorf("embed max ack pending = %d, want 32", got)
	}
	os, err := srv.JS.ObjectStore(ctx, fsnats.BucketImages)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Status(ctx); err != nil || st.TTL() != 10*time.Minute {
		t.Errorf("images TTL = %v, %v; want 10m", st.TTL(), err)
	}
}

// TestApplyRejectsImpossibleChanges: what the server cannot change in place
// is an error, not a silent re-creation.
func TestApplyRejectsImpossibleChanges(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	ctx := testCtx(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	if _, err := fsnats.Apply(ctx, srv.JS); err == nil {
		t.Error("changing memory storage to file storage succeeded")
	}
}

// TestConsumerFiltersAreInsideTheirStreams, checked by the server: every
// consumer exists, is a durable pull consumer with explicit acks and filters
// on its stage's input subject, inside its stream.
func TestConsumerFiltersAreInsideTheirStreams(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	ctx := testCtx(t)
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	inputs := map[string]string{
		events.StageIngest:    events.SubjectImageSubmitted,
		events.StageDetect:    events.SubjectImageAccepted,
		events.StageEmbed:     events.SubjectFacesDetected,
		events.StageAttrs:     events.SubjectFacesEmbedded,
		events.StageAggregate: events.SubjectFacesAnalyzed,
	}
	s, err := srv.JS.Stream(ctx, fsnats.StreamWork)
	if err != nil {
		t.Fatal(err)
	}
	subjects := s.CachedInfo().Config.Subjects
	for stage, subject := range inputs {
		c, err := srv.JS.Consumer(ctx, fsnats.StreamWork, stage)
		if err != nil {
			t.Errorf("consumer %s: %v", stage, err)
			continue
		}
		cfg := c.CachedInfo().Config
		if cfg.FilterSubject != subject || !slices.Contains(subjects, cfg.FilterSubject) {
			t.Errorf("consumer %s filters %q, want %q inside %v", stage, cfg.FilterSubject, subject, subjects)
		}
		if cfg.Durable != stage || cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.DeliverSubject != "" {
			t.Errorf("consumer %s: %+v", stage, cfg)
		}
		backoffOK := len(cfg.BackOff) == 0 || (cfg.AckWait == cfg.BackOff[0] && cfg.MaxDeliver >= len(cfg.BackOff))
		if !backoffOK || cfg.AckWait <= 0 || cfg.MaxDeliver < 1 || cfg.MaxAckPending < 1 {
			t.Errorf("consumer %s: ack wait %v, backoff %v, max deliver %d, max ack pending %d",
				stage, cfg.AckWait, cfg.BackOff, cfg.MaxDeliver, cfg.MaxAckPending)
		}
	}

	// Every subject of the event contract lands in exactly the right stream.
	for _, typ := range events.Types() {
		subject, ok := events.SubjectFor(typ, "00000000-0000-4000-8000-000000000001")
		if !ok {
			subject = events.DLQSubject(events.StageDetect)
		}
		name, err := srv.JS.StreamNameBySubject(ctx, subject)
		if err != nil {
			t.Errorf("no stream for %s: %v", subject, err)
			continue
		}
		want := fsnats.StreamResults
		switch {
		case strings.HasPrefix(subject, events.SubjectDLQPrefix):
			want = fsnats.StreamDLQ
		case slices.Contains(subjects, subject):
			want = fsnats.StreamWork
		}
		if name != want {
			t.Errorf("%s is stored in %s, want %s", subject, name, want)
		}
	}
}

// TestMaxMsgSizeFitsTheAllInOneServer: with an 8 MiB max_payload, an 8 MB
// inline image is stored; the default 1 MB server refuses it before it is
// sent.
func TestMaxMsgSizeFitsTheAllInOneServer(t *testing.T) {
	t.Parallel()
	big := make([]byte, 8<<20-4096)
	for _, tt := range []struct {
		name    string
		payload int32
		ok      bool
	}{{"all-in-one 8 MiB", 8 << 20, true}, {"default 1 MB", 0, false}} {
		t.Run(tt.name, func(t *testing.T) {
			var opts []natstest.Option
			if tt.payload > 0 {
				opts = append(opts, natstest.WithMaxPayload(tt.payload))
			}
			srv := natstest.Start(t, opts...)
			ctx := testCtx(t)
			if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
				t.Fatal(err)
			}
			_, err := srv.JS.Publish(ctx, events.SubjectImageSubmitted, big)
			if (err == nil) != tt.ok {
				t.Errorf("publish %d bytes: err = %v, want ok=%v", len(big), err, tt.ok)
			}
		})
	}
}

// TestApplyBoundsAnExistingWorkStream: a work stream created by an earlier
// release (max age 1h, discard old, unbounded) is updated in place to the
// bounded definition without losing its messages. Once a subject is full it
// refuses a publish and keeps everything it holds, while the other subjects
// — the stages' hand-offs — still take theirs.
func TestApplyBoundsAnExistingWorkStream(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	ctx := testCtx(t)
	defs, err := fsnats.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	var old jetstream.StreamConfig
	for _, s := range defs.Streams {
		if s.Name == fsnats.StreamWork {
			old = s.Config()
		}
	}
	old.Storage, old.MaxAge, old.Discard, old.MaxMsgsPerSubject, old.DiscardNewPerSubject = jetstream.MemoryStorage, time.Hour, jetstream.DiscardOld, -1, false
	if _, err := srv.JS.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := srv.JS.Publish(ctx, events.SubjectImageSubmitted, []byte("queued")); err != nil {
			t.Fatal(err)
		}
	}

	changes, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage(), fsnats.WithMaxMsgsPerSubject(fsnats.StreamWork, 5))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, c := range changes {
		if c.Name == fsnats.StreamWork && c.Action != fsnats.Updated {
			t.Errorf("work stream: %s, want updated", c.Action)
		}
	}
	s, err := srv.JS.Stream(ctx, fsnats.StreamWork)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.MaxAge != 0 || c.Discard != jetstream.DiscardNew || !c.DiscardNewPerSubject || c.MaxMsgsPerSubject != 5 || info.State.Msgs != 3 {
		t.Fatalf("work stream after apply: max age %v, discard %v, new per subject %v, max per subject %d, %d messages; want 0, new, true, 5, 3",
			c.MaxAge, c.Discard, c.DiscardNewPerSubject, c.MaxMsgsPerSubject, info.State.Msgs)
	}

	for range 2 {
		if _, err := srv.JS.Publish(ctx, events.SubjectImageSubmitted, []byte("fits")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = srv.JS.Publish(ctx, events.SubjectImageSubmitted, []byte("one too many"))
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Description, "maximum messages per subject exceeded") {
		t.Fatalf("publish into a full subject: %v, want maximum messages per subject exceeded", err)
	}
	// The next stage's hand-off still fits: no stage waits for submissions.
	if _, err := srv.JS.Publish(ctx, events.SubjectImageAccepted, []byte("handed on")); err != nil {
		t.Errorf("publish into another subject while image.submitted is full: %v", err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 6 || info.State.FirstSeq != 1 {
		t.Errorf("work stream: %+v, %v; want all 6 messages kept", info.State, err)
	}
}

// TestApplyDropsAnOldBackOffList: a deployment whose aggregate consumer
// still has the earlier release's BackOff list loses it in place.
func TestApplyDropsAnOldBackOffList(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	ctx := testCtx(t)
	old, err := fsnats.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	for i := range old.Consumers {
		if old.Consumers[i].Name == fsnats.ConsumerAggregate {
			d := func(s string) fsnats.Duration { v, _ := time.ParseDuration(s); return fsnats.Duration(v) }
			old.Consumers[i].BackOff = []fsnats.Duration{d("30s"), d("1m"), d("2m"), d("5m")}
			old.Consumers[i].MaxDeliver = 8
		}
	}
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithDefinitions(old), fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	if _, err := fsnats.Apply(ctx, srv.JS, fsnats.WithMemoryStorage()); err != nil {
		t.Fatal(err)
	}
	c, err := srv.JS.Consumer(ctx, fsnats.StreamWork, fsnats.ConsumerAggregate)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; len(cfg.BackOff) != 0 || cfg.MaxDeliver != 10 || cfg.AckWait != 30*time.Second {
		t.Errorf("aggregate after apply: backoff %v, max deliver %d, ack wait %v; want none, 10, 30s", cfg.BackOff, cfg.MaxDeliver, cfg.AckWait)
	}
}
