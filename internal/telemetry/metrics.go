package telemetry

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Inference is facestream_model_inference_seconds{model} and
// facestream_model_batch_size{model}: the time and batch of every native
// model run (pass Observe as onnx.SessionConfig.Observe). Safe for
// concurrent use.
type Inference struct {
	seconds *prometheus.HistogramVec
	batch   *prometheus.HistogramVec
}

// NewInference registers the inference metrics with reg (nil registers
// nothing), reusing them when they are already registered there.
func NewInference(reg prometheus.Registerer) (*Inference, error) {
	seconds, err := Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "facestream_model_inference_seconds",
		Help:    "Time of one native ONNX Runtime run, by model (file name without .onnx).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms .. 4 s
	}, []string{"model"}))
	if err != nil {
		return nil, err
	}
	batch, err := Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "facestream_model_batch_size",
		Help:    "Batch size (first input dimension) of one native model run, by model.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	}, []string{"model"}))
	if err != nil {
		return nil, err
	}
	return &Inference{seconds: seconds, batch: batch}, nil
}

// Observe records one run; it has the signature of onnx.SessionConfig.Observe.
func (m *Inference) Observe(model string, batch int, d time.Duration) {
	m.seconds.WithLabelValues(model).Observe(d.Seconds())
	m.batch.WithLabelValues(model).Observe(float64(batch))
}

// Register registers c with reg, or returns the identical collector already
// registered there. A nil reg registers nothing.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
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

// ConsumerRef names one durable consumer.
type ConsumerRef struct{ Stream, Consumer string }

// ConsumerLag is a collector of the lag of JetStream consumers, read from
// the consumer info when Prometheus scrapes (at most once per MinInterval):
//
//	facestream_consumer_pending_messages{stream,consumer}      not yet delivered
//	facestream_consumer_ack_pending_messages{stream,consumer}  delivered, not yet acked
//	facestream_consumer_redelivered_messages{stream,consumer}  delivered more than once, not yet acked
//	facestream_stream_messages{stream}                          stored in the stream (the DLQ's growth)
//
// Pending + ack pending is the lag KEDA's NATS JetStream scaler uses.
type ConsumerLag struct {
	js        jetstream.JetStream
	consumers []ConsumerRef
	streams   []string
	timeout   time.Duration

	pending, ackPending, redelivered, streamMsgs *prometheus.Desc

	mu     sync.Mutex
	last   time.Time
	cached []prometheus.Metric
	minGap time.Duration
}

// NewConsumerLag returns a collector of the given consumers' lag and the
// given streams' message counts. Register it with the process's registry.
func NewConsumerLag(js jetstream.JetStream, consumers []ConsumerRef, streams []string) *ConsumerLag {
	cl := []string{"stream", "consumer"}
	return &ConsumerLag{
		js: js, consumers: consumers, streams: streams, timeout: 2 * time.Second, minGap: time.Second,
		pending:     prometheus.NewDesc("facestream_consumer_pending_messages", "Messages of a consumer's stream not yet delivered to it.", cl, nil),
		ackPending:  prometheus.NewDesc("facestream_consumer_ack_pending_messages", "Messages delivered to a consumer and not yet acknowledged.", cl, nil),
		redelivered: prometheus.NewDesc("facestream_consumer_redelivered_messages", "Messages delivered to a consumer more than once and not yet acknowledged.", cl, nil),
		streamMsgs:  prometheus.NewDesc("facestream_stream_messages", "Messages stored in a stream (for the dead-letter stream: dead letters kept).", []string{"stream"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ConsumerLag) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redelivered
	ch <- c.streamMsgs
}

// Collect implements prometheus.Collector. Consumers or streams that cannot
// be read (not created yet, server away) are left out of the scrape.
func (c *ConsumerLag) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.last) >= c.minGap {
		c.cached = c.read()
		c.last = time.Now()
	}
	for _, m := range c.cached {
		ch <- m
	}
}

func (c *ConsumerLag) read() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var out []prometheus.Metric
	for _, ref := range c.consumers {
		cons, err := c.js.Consumer(ctx, ref.Stream, ref.Consumer)
		if err != nil {
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		out = append(out,
			prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), ref.Stream, ref.Consumer),
			prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending), ref.Stream, ref.Consumer),
			prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(info.NumRedelivered), ref.Stream, ref.Consumer),
		)
	}
	for _, name := range c.streams {
		s, err := c.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			continue
		}
		out = append(out, prometheus.MustNewConstMetric(c.streamMsgs, prometheus.GaugeValue, float64(info.State.Msgs), name))
	}
	return out
}
