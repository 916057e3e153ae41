package service

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/facestream/facestream/pkg/events"
)

// TestBreaker: aggregate's breaker opens after breakerTrips transient
// failures in a row, then refuses at once (a transient ErrCircuitOpen, so
// the runner naks with backoff) without calling the handler; after
// breakerOpen one trial goes through and, succeeding, closes it. Permanent
// errors never trip it, and stages without a database get no breaker.
func TestBreaker(t *testing.T) {
	ctx := context.Background()
	d := &events.Delivery{}
	var calls atomic.Int32
	var down atomic.Bool
	down.Store(true)
	dbErr := errors.New("dial tcp: connection refused")
	h := events.HandlerFunc(func(context.Context, *events.Delivery) ([]events.Event, error) {
		calls.Add(1)
		if down.Load() {
			return nil, dbErr
		}
		return nil, nil
	})
	reg := prometheus.NewRegistry()
	env := &Env{Logger: slog.New(slog.DiscardHandler), Registerer: reg}
	b := withBreaker(env, events.StageAggregate, h)
	state := func() float64 {
		return testutil.ToFloat64(breakerMetrics(reg).WithLabelValues(events.StageAggregate))
	}

	for i := range breakerTrips {
		if _, err := b.Handle(ctx, d); !errors.Is(err, dbErr) {
			t.Fatalf("call %d: %v, want the handler's error", i+1, err)
		}
	}
	_, err := b.Handle(ctx, d)
	if !errors.Is(err, ErrCircuitOpen) || errors.Is(err, events.ErrPermanent) {
		t.Fatalf("after %d failures: %v, want a transient ErrCircuitOpen", breakerTrips, err)
	}
	if n := calls.Load(); n != breakerTrips {
		t.Errorf("the handler ran %d times, want %d (not while open)", n, breakerTrips)
	}
	if s := state(); s != 2 {
		t.Errorf("facestream_breaker_state = %v while open, want 2", s)
	}

	down.Store(false)
	time.Sleep(breakerOpen + 100*time.Millisecond)
	if _, err := b.Handle(ctx, d); err != nil {
		t.Fatalf("trial after %v: %v", breakerOpen, err)
	}
	if s := state(); s != 0 {
		t.Errorf("facestream_breaker_state = %v after recovery, want 0", s)
	}

	poison := events.HandlerFunc(func(context.Context, *events.Delivery) ([]events.Event, error) {
		return nil, events.Permanent(errors.New("invalid payload"))
	})
	for _, stage := range []string{StageRecorder, events.StageDetect} {
		var hb events.Handler = withBreaker(env, stage, poison)
		if stage == events.StageDetect {
			hb = withBreaker(env, stage, events.HandlerFunc(func(context.Context, *events.Delivery) ([]events.Event, error) { return nil, dbErr }))
		}
		for i := range 3 * breakerTrips {
			if _, err := hb.Handle(ctx, d); errors.Is(err, ErrCircuitOpen) {
				t.Fatalf("%s: circuit opened at call %d", stage, i+1)
			}
		}
	}
}
