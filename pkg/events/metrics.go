package events

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Message outcomes counted by facestream_stage_messages_total.
const (
	outcomeAcked        = "acked"         // handled, outputs published, input acked
	outcomeRetried      = "retried"       // transient failure, nak with backoff
	outcomeDeadLettered = "dead_lettered" // dead-lettered and terminated
	outcomeFailed       = "failed"        // could not be settled (ack/nak/dead letter failed)
)

// stageMetrics are the runner's metrics, labelled by stage so that many
// runners (one per stage, as in the all-in-one server) share one registry.
type stageMetrics struct {
	messages    *prometheus.CounterVec
	handle      *prometheus.HistogramVec
	inFlight    *prometheus.GaugeVec
	deadLetters *prometheus.CounterVec
}

func newStageMetrics(reg prometheus.Registerer) (*stageMetrics, error) {
	m := &stageMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facestream_stage_messages_total",
			Help: "Messages a stage finished with, by outcome: acked, retried, dead_lettered, failed.",
		}, []string{"stage", "outcome"}),
		handle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "facestream_stage_handle_seconds",
			Help:    "Time a stage's handler took per message.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1 ms .. 16 s
		}, []string{"stage"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "facestream_stage_in_flight",
			Help: "Messages a stage is processing now.",
		}, []string{"stage"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facestream_stage_dead_letters_total",
			Help: "Messages a stage dead-lettered, by reason: permanent, max_deliver, malformed.",
		}, []string{"stage", "reason"}),
	}
	var err error
	if m.messages, err = register(reg, m.messages); err != nil {
		return nil, err
	}
	if m.handle, err = register(reg, m.handle); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.deadLetters, err = register(reg, m.deadLetters); err != nil {
		return nil, err
	}
	return m, nil
}

func newPublishMetrics(reg prometheus.Registerer) (*prometheus.HistogramVec, error) {
	return register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "facestream_publish_seconds",
		Help:    "Time from publishing an event to its PubAck, by NATS subject and result: ok, duplicate, error.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1 ms .. 3.3 s
	}, []string{"subject", "result"}))
}

// register registers c with reg, or returns the identical collector that is
// already registered there, so that several publishers and runners can share
// one registry. A nil reg registers nothing.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
