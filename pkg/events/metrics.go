package events

import (
	"context"
	"errors"
	"time"

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
	queueWait   *prometheus.HistogramVec
	steps       *prometheus.HistogramVec
	rejected    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
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
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "facestream_stage_queue_wait_seconds",
			Help:    "Time a message waited in its stream before a stage began handling it (from the stream's store time; includes retry back-off).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18), // 0.5 ms .. 65 s
		}, []string{"stage"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "facestream_stage_step_seconds",
			Help:    "Time of one step of a stage's work on a message, by step: publish (outputs to PubAck), and what handlers report through ObserveStep (decode, inference, database, blob).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1 ms .. 13 s
		}, []string{"stage", "step"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "facestream_images_rejected_total",
			Help: "Images a stage rejected (image.rejected published), by reason.",
		}, []string{"stage", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "facestream_image_latency_seconds",
			Help:    "End-to-end time of an image, from its image.submitted event to the publish of its result (image.analyzed or image.rejected), by outcome.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60},
		}, []string{"outcome"}),
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
	if m.queueWait, err = register(reg, m.queueWait); err != nil {
		return nil, err
	}
	if m.steps, err = register(reg, m.steps); err != nil {
		return nil, err
	}
	if m.rejected, err = register(reg, m.rejected); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
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

// Steps a stage's work is split into in facestream_stage_step_seconds. The
// runner records StepPublish; handlers report the others with ObserveStep.
const (
	StepDecode    = "decode"    // image bytes to pixels
	StepInference = "inference" // model runs, with their pre- and post-processing
	StepDatabase  = "database"  // PostgreSQL statements and transactions
	StepBlob      = "blob"      // object-store reads and writes
	StepPublish   = "publish"   // the outputs' publishes, until each PubAck
)

type stepKey struct{}

// ObserveStep records that the handler called with ctx spent d on step (one
// of the Step… names) in facestream_stage_step_seconds. It does nothing when
// ctx does not come from a Runner, so handlers may call it unconditionally.
func ObserveStep(ctx context.Context, step string, d time.Duration) {
	if f, ok := ctx.Value(stepKey{}).(func(string, time.Duration)); ok {
		f(step, d)
	}
}

// withSteps returns ctx carrying the stage's step observer.
func (m *stageMetrics) withSteps(ctx context.Context, stage string) context.Context {
	return context.WithValue(ctx, stepKey{}, func(step string, d time.Duration) {
		m.steps.WithLabelValues(stage, step).Observe(d.Seconds())
	})
}
