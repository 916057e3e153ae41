package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Publisher publishes events to JetStream and waits for each PubAck. It is
// safe for concurrent use.
type Publisher struct {
	js      jetstream.JetStream
	source  string
	logger  *slog.Logger
	reg     prometheus.Registerer
	seconds *prometheus.HistogramVec
	now     func() time.Time
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithSource sets the CloudEvents source given to events that have none
// (DefaultSource otherwise). It must be a URI reference, e.g.
// "/facestream/http" or "urn:example:camera:7".
func WithSource(source string) PublisherOption {
	return func(p *Publisher) { p.source = source }
}

// WithLogger sets the logger (discarded otherwise).
func WithLogger(l *slog.Logger) PublisherOption {
	return func(p *Publisher) { p.logger = l }
}

// WithRegisterer registers the publish-duration histogram
// (facestream_publish_seconds) with reg. Several publishers and runners may
// share one registry.
func WithRegisterer(reg prometheus.Registerer) PublisherOption {
	return func(p *Publisher) { p.reg = reg }
}

// NewPublisher returns a Publisher over js.
func NewPublisher(js jetstream.JetStream, opts ...PublisherOption) (*Publisher, error) {
	p := &Publisher{js: js, source: DefaultSource, now: time.Now}
	for _, opt := range opts {
		opt(p)
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	p.logger = p.logger.With("component", "events.publisher")
	seconds, err := newPublishMetrics(p.reg)
	if err != nil {
		return nil, fmt.Errorf("new publisher: register metrics: %w", err)
	}
	p.seconds = seconds
	return p, nil
}

// Publish fills in what e lacks — a random id, the publisher's source, the
// current time — encodes it in binary mode with Nats-Msg-Id set to the event
// id, publishes it and returns only once JetStream has stored it (the
// PubAck). The event given is not changed.
//
// If the stream already holds an event with the same id within its
// duplicate window, nothing is stored and the PubAck reports Duplicate:
// re-publishing is harmless. Errors that retrying cannot fix (an invalid
// event, a message above the max payload or the stream's max message size)
// match ErrPermanent.
func (p *Publisher) Publish(ctx context.Context, e Event) (*jetstream.PubAck, error) {
	e = p.complete(e)
	msg, err := Encode(e)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", Permanent(err))
	}
	start := time.Now()
	ack, err := p.js.PublishMsg(ctx, msg)
	result := "ok"
	switch {
	case err != nil:
		result = "error"
	case ack.Duplicate:
		result = "duplicate"
	}
	p.seconds.WithLabelValues(msg.Subject, result).Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
			err = Permanent(err)
		}
		return nil, fmt.Errorf("publish %s %s to %s: %w", e.CloudEvent.Type(), e.CloudEvent.ID(), msg.Subject, err)
	}
	if ack.Duplicate {
		p.logger.DebugContext(ctx, "duplicate event not stored again",
			"subject", msg.Subject, "id", e.CloudEvent.ID(), "stream", ack.Stream, "seq", ack.Sequence)
	}
	return ack, nil
}

// complete returns a copy of e with id, source and time filled in.
func (p *Publisher) complete(e Event) Event {
	ce := e.CloudEvent.Clone()
	if ce.ID() == "" {
		ce.SetID(NewID())
	}
	if ce.Source() == "" {
		ce.SetSource(p.source)
	}
	if ce.Time().IsZero() {
		ce.SetTime(p.now().UTC())
	}
	e.CloudEvent = ce
	return e
}
