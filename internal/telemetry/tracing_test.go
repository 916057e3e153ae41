package telemetry_test

import (
	"context"
	"github.com/facestream/facestream/test/pipelinetest"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/internal/stages/stagetest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// TestOneTraceAcrossStages runs every stage in this process with an
// in-memory span exporter and submits one image: ingest, detect, embed,
// attrs and aggregate each record one span, all in one trace, each the
// child of the stage before it (joined through the CloudEvents'
// traceparent headers).
func TestOneTraceAcrossStages(t *testing.T) {
	ctx := context.Background()
	eng, pack := stagetest.Engine(t)
	srv := natstest.Start(t)
	if err := service.Apply(ctx, srv.JS, config.Default(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewMigrated(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	env := &service.Env{
		Config: config.Default(), Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		JS: srv.JS, Blobs: events.NewBlobStore(srv.JS), Models: &service.Models{Pack: pack, Engine: eng}, DB: db, Tracer: tp,
	}
	pipelinetest.RunStages(t, ctx, env)

	results := make(chan events.Event, 8)
	cons, err := srv.JS.OrderedConsumer(ctx, fsnats.StreamResults, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if e, err := events.Decode(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}); err == nil {
			results <- e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()

	id := uuid.NewString()
	e, err := events.NewImageSubmitted(events.Submission{ImageID: id, Image: stagetest.Image(t, "deepface", "img12.jpg")})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := events.NewPublisher(srv.JS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(2 * time.Minute)
	var analyzed events.Event
	for analyzed.CloudEvent.Type() != events.TypeImageAnalyzed {
		select {
		case analyzed = <-results:
		case <-timeout:
			t.Fatal("no image.analyzed within 2 minutes")
		}
	}
	// The aggregate span ends after its outputs are published: wait for it.
	want := []string{events.StageIngest, events.StageDetect, events.StageEmbed, events.StageAttrs, events.StageAggregate}
	deadline := time.Now().Add(10 * time.Second)
	for len(exp.GetSpans()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if _, dup := byName[s.Name]; dup {
			t.Errorf("two spans named %s", s.Name)
		}
		byName[s.Name] = s
	}
	first, ok := byName[events.StageIngest]
	if !ok {
		t.Fatalf("no ingest span; spans: %v", exp.GetSpans())
	}
	trace := first.SpanContext.TraceID()
	if first.Parent.IsValid() {
		t.Errorf("ingest span has a parent %v; the submission carried no traceparent", first.Parent)
	}
	for i, name := range want {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span for stage %s", name)
		}
		if s.SpanContext.TraceID() != trace {
			t.Errorf("%s span in trace %s, want %s", name, s.SpanContext.TraceID(), trace)
		}
		if i > 0 && s.Parent.SpanID() != byName[want[i-1]].SpanContext.SpanID() {
			t.Errorf("%s span's parent is %s, want the %s span %s", name, s.Parent.SpanID(), want[i-1], byName[want[i-1]].SpanContext.SpanID())
		}
	}
	// The result event carries the aggregate span as its traceparent.
	if got, want := analyzed.TraceParent, "00-"+trace.String()+"-"+byName[events.StageAggregate].SpanContext.SpanID().String()+"-01"; got != want {
		t.Errorf("image.analyzed traceparent %q, want %q", got, want)
	}
}
