package events_test

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facestream/facestream/pkg/events"
)

// TestRoundTripEveryType publishes one event of every type through
// JetStream, consumes them and decodes each back to the original.
func TestRoundTripEveryType(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ctx := testCtx(t)
	createStream(t, srv.JS, "ALL", jetstream.LimitsPolicy, "facestream.>")
	pub, err := events.NewPublisher(srv.JS)
	if err != nil {
		t.Fatal(err)
	}
	all := samples(t)
	for _, s := range all {
		ack, err := pub.Publish(ctx, s.event)
		if err != nil {
			t.Fatalf("publish %s: %v", s.name, err)
		}
		if ack.Duplicate {
			t.Fatalf("publish %s: reported duplicate", s.name)
		}
	}

	cons, err := srv.JS.OrderedConsumer(ctx, "ALL", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(all))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for m := range batch.Messages() {
		s := all[i]
		i++
		if want, _ := events.Encode(s.event); m.Subject() != want.Subject {
			t.Errorf("%s: subject %s, want %s", s.name, m.Subject(), want.Subject)
		}
		e, err := events.Decode(msgOf(m))
		if err != nil {
			t.Fatalf("%s: decode: %v", s.name, err)
		}
		assertSameEvent(t, e, s)
	}
	if err := batch.Error(); err != nil {
		t.Fatal(err)
	}
	if i != len(all) {
		t.Fatalf("consumed %d events, want %d", i, len(all))
	}
}

// TestPublishDeduplicatesByEventID: re-publishing an event id is reported
// as a duplicate and stored once.
func TestPublishDeduplicatesByEventID(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ctx := testCtx(t)
	stream := createStream(t, srv.JS, "WORK", jetstream.WorkQueuePolicy, events.SubjectImageSubmitted)
	reg := prometheus.NewPedanticRegistry()
	pub, err := events.NewPublisher(srv.JS, events.WithSource("/test"), events.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.NewImageSubmitted(events.Submission{ImageID: "img-1", ContentType: "image/png", Image: []byte("png")})
	if err != nil {
		t.Fatal(err)
	}
	e.CloudEvent.SetID(events.NewID())

	first, err := pub.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	second, err := pub.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !second.Duplicate {
		t.Errorf("duplicate flags = %v, %v; want false, true", first.Duplicate, second.Duplicate)
	}
	if second.Sequence != first.Sequence {
		t.Errorf("duplicate reports sequence %d, want the original's %d", second.Sequence, first.Sequence)
	}
	if n := msgCount(t, stream); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
	if n := testutil.CollectAndCount(reg, "facestream_publish_seconds"); n != 2 {
		t.Errorf("publish histogram has %d series, want 2 (ok, duplicate)", n)
	}

	// The publisher filled in what was missing, without changing e.
	if e.CloudEvent.Source() != "" || !e.CloudEvent.Time().IsZero() {
		t.Error("Publish changed the event it was given")
	}
	got := decodeAll(t, storedMsgs(t, stream))[0]
	if got.CloudEvent.Source() != "/test" || got.CloudEvent.Time().IsZero() || got.CloudEvent.ID() != e.CloudEvent.ID() {
		t.Errorf("stored event %v", got.CloudEvent)
	}
}

func TestPublishWithoutStreamFails(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	pub, err := events.NewPublisher(srv.JS)
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.New("img", &events.FaceMatched{ImageID: "img"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(testCtx(t), e); err == nil {
		t.Error("publish to a subject without a stream succeeded")
	}
}
