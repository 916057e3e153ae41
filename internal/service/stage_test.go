package service

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/natstest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// TestStageWaitsForItsConsumer: a stage process that comes up while the
// NATS server restarts (the chaos run kills detect and restarts NATS a
// moment later) waits for its consumer and its result cache instead of
// exiting, and builds once the server is back.
func TestStageWaitsForItsConsumer(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect()
	// No deadline, like a stage binary's context: a JetStream request then
	// gives up after its own default timeout (5 s).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	safety := time.AfterFunc(time.Minute, cancel)
	defer safety.Stop()
	cfg := config.Default()
	logger := slog.New(slog.DiscardHandler)
	if err := Apply(ctx, js, cfg, logger); err != nil {
		t.Fatal(err)
	}
	env := &Env{Config: cfg, Logger: logger, Registerer: prometheus.NewRegistry(), JS: js}
	noop := events.HandlerFunc(func(context.Context, *events.Delivery) ([]events.Event, error) { return nil, nil })

	srv.Stop()
	back := make(chan struct{})
	go func() {
		defer close(back)
		time.Sleep(7 * time.Second) // longer than one JetStream API request may wait
		srv.StartAgain()
	}()
	s, err := newStage(ctx, env, events.StageDetect, fsnats.StreamWork, events.StageDetect, noop, nil)
	<-back
	if err != nil {
		t.Fatalf("building a stage across a NATS restart: %v", err)
	}
	if s.Name != events.StageDetect || s.Runner == nil {
		t.Errorf("stage %+v", s)
	}

	// The result cache of ingest, aggregate and the HTTP edge: its bucket
	// and its erasure watch wait the same way.
	srv.Stop()
	back = make(chan struct{})
	go func() {
		defer close(back)
		time.Sleep(7 * time.Second)
		srv.StartAgain()
	}()
	c, err := openCache(ctx, env)
	<-back
	if err != nil {
		t.Fatalf("opening the result cache across a NATS restart: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}
