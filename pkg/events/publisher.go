package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	attempt time.Duration // how long one attempt waits for its PubAck
}

// DefaultAttemptTimeout is how long one publish attempt waits for its PubAck
// before it is sent again (with the same Nats-Msg-Id, so a copy that did
// arrive is dropped as a duplicate).
const DefaultAttemptTimeout = 5 * time.Second

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

// WithAttemptTimeout sets how long one attempt waits for its PubAck before
// the message is sent again (DefaultAttemptTimeout otherwise).
func WithAttemptTimeout(d time.Duration) PublisherOption {
	return func(p *Publisher) { p.attempt = d }
}

// NewPublisher returns a Publisher over js.
func NewPublisher(js jetstream.JetStream, opts ...PublisherOption) (*Publisher, error) {
	p := &Publisher{js: js, source: DefaultSource, now: time.Now, attempt: DefaultAttemptTimeout}
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

// ErrStreamFull matches a publish refused because the stream (or the
// subject) is at its max_msgs, max_bytes or max_msgs_per_subject and
// discards new messages (the work stream). It is
// transient, not permanent: the stream drains as consumers ack. A producer
// should tell its caller to come back later (the HTTP edge answers 503 with
// Retry-After); the runner waits and publishes again.
var ErrStreamFull = errors.New("stream full")

// jsStreamStoreFailed is the JetStream API error code of a message the
// stream refused to store (JSStreamStoreFailedF, nats-server/v2): with
// discard new, its description is "maximum messages exceeded", "maximum
// bytes exceeded" or "maximum messages per subject exceeded".
const jsStreamStoreFailed = 10077

func streamFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStreamStoreFailed {
		return false
	}
	return strings.Contains(apiErr.Description, "maximum messages exceeded") ||
		strings.Contains(apiErr.Description, "maximum bytes exceeded") ||
		strings.Contains(apiErr.Description, "maximum messages per subject exceeded")
}

type streamFullError struct{ err error }

func (e *streamFullError) Error() string        { return e.err.Error() }
func (e *streamFullError) Unwrap() error        { return e.err }
func (e *streamFullError) Is(target error) bool { return target == ErrStreamFull }

// Publish fills in what e lacks — a random id, the publisher's source, the
// current time — encodes it in binary mode with Nats-Msg-Id set to the event
// id, publishes it and returns only once JetStream has stored it (the
// PubAck). The event given is not changed.
//
// If the stream already holds an event with the same id within its
// duplicate window, nothing is stored and the PubAck reports Duplicate:
// re-publishing is harmless. Errors that retrying cannot fix (an invalid
// event, a message above the max payload or the stream's max message size)
// match ErrPermanent; a stream that is full matches ErrStreamFull.
func (p *Publisher) Publish(ctx context.Context, e Event) (*jetstream.PubAck, error) {
	e = p.complete(e)
	msg, err := Encode(e)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", Permanent(err))
	}
	start := time.Now()
	ack, err := p.publish(ctx, msg)
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
		if streamFull(err) {
			err = &streamFullError{err: err}
		}
		return nil, fmt.Errorf("publish %s %s to %s: %w", e.CloudEvent.Type(), e.CloudEvent.ID(), msg.Subject, err)
	}
	if ack.Duplicate {
		p.logger.DebugContext(ctx, "duplicate event not stored again",
			"subject", msg.Subject, "id", e.CloudEvent.ID(), "stream", ack.Stream, "seq", ack.Sequence)
	}
	return ack, nil
}

// publish sends msg until JetStream acknowledges it, the error is not one a
// resend can cure, or ctx ends. A PubAck lost in a reconnect, or a JetStream
// that is still recovering after a restart, would otherwise hold the caller
// until its own deadline; resending is safe because Nats-Msg-Id dedupes.
func (p *Publisher) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, p.attempt)
		ack, err := p.js.PublishMsg(actx, msg)
		cancel()
		if err == nil || ctx.Err() != nil || !resendable(err) {
			return ack, err
		}
		p.logger.DebugContext(ctx, "publish attempt failed, sending again", "subject", msg.Subject, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// resendable reports whether sending the same message again may succeed
// soon: its PubAck was lost, or the connection is being re-established. "No
// responders" (no stream takes the subject) is returned at once instead:
// the caller decides when to try again.
func resendable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
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
