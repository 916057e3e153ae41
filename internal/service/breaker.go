package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/facestream/facestream/pkg/events"
)

// Breaker settings of the stages that write to PostgreSQL (aggregate and
// the recorder). After breakerTrips consecutive transient failures the
// circuit opens: for breakerOpen every message fails at once, without
// touching the database, and the runner naks it with its backoff; then one
// trial message is let through (half-open) and a success closes the circuit
// again — no operator involved.
//
// Why a 30 s outage cannot dead-letter a message: the runner's retry delays
// are RetryBase·2^(n-1) capped at RetryMax (1 s, 2 s, 4 s, … 60 s), so the
// ten deliveries aggregate's and recorder's consumers allow
// (nats/consumers, max_deliver 10, no BackOff list to floor the delays)
// span 1+2+4+8+16+32+60+60+60 = 243 s of delays; a message failing
// throughout an outage of T seconds uses about log2(T)+1 deliveries — 6 for
// 30 s — and is retried at most about T seconds after the outage ends. The breaker only makes those failures
// cheap; it never adds deliveries.
const (
	breakerTrips = 5
	breakerOpen  = 5 * time.Second
)

// ErrCircuitOpen is the (transient) error of a message refused because the
// stage's circuit is open.
var ErrCircuitOpen = errors.New("circuit open: the database is failing")

// breakerStages are the stages whose handler goes behind a breaker.
var breakerStages = map[string]bool{events.StageAggregate: true, StageRecorder: true}

// breakerMetrics is facestream_breaker_state{stage}: 0 closed, 1 half-open,
// 2 open (gobreaker's State values).
func breakerMetrics(reg prometheus.Registerer) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "facestream_breaker_state",
		Help: "State of a stage's circuit breaker in front of PostgreSQL: 0 closed, 1 half-open, 2 open.",
	}, []string{"stage"})
	if reg == nil {
		return g
	}
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.GaugeVec); ok {
				return existing
			}
		}
	}
	return g
}

// withBreaker puts h behind a circuit breaker when stage is one of
// breakerStages, and returns h unchanged otherwise. Only transient errors
// count as failures: a permanent error (a poison message) means the
// database answered.
func withBreaker(env *Env, stage string, h events.Handler) events.Handler {
	if !breakerStages[stage] {
		return h
	}
	state := breakerMetrics(env.Registerer).WithLabelValues(stage)
	logger := env.Logger.With("component", "service.breaker", "stage", stage)
	cb := gobreaker.NewCircuitBreaker[[]events.Event](gobreaker.Settings{
		Name:        stage,
		MaxRequests: 1,
		Timeout:     breakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= breakerTrips },
		IsSuccessful: func(err error) bool {
			return err == nil || errors.Is(err, events.ErrPermanent) || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			state.Set(float64(to))
			logger.Warn("circuit breaker", "from", from.String(), "to", to.String())
		},
	})
	return events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		outs, err := cb.Execute(func() ([]events.Event, error) { return h.Handle(ctx, d) })
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return nil, fmt.Errorf("%s: %w (%w)", stage, ErrCircuitOpen, err)
		}
		return outs, err
	})
}
