package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Handler is a pipeline stage: it turns one input event into the events that
// follow from it. The runner, not the handler, talks to JetStream: it
// publishes the outputs and acks, retries or dead-letters the input.
//
// The contract:
//
//   - A nil error means the input is done. Every returned event is published
//     (each waiting for its PubAck) and only then is the input acked. Zero
//     outputs with a nil error is a valid answer: the input needs nothing
//     further (it was already handled, say) and is simply acked.
//   - A non-nil error means the input is not done; the outputs are ignored.
//     The runner redelivers the input later, with exponential backoff,
//     unless the error is permanent — errors.Is(err, ErrPermanent), see
//     Permanent; a *DecodeError is permanent — or this was the last allowed
//     delivery (Delivery.LastAttempt); then the runner publishes a dead
//     letter to facestream.dlq.<stage> and terminates the input.
//   - A rejected image is a result, not an error: return an image.rejected
//     event and a nil error.
//   - Handle is called from up to RunnerConfig.Concurrency goroutines at once
//     and must be safe for that; the embed stage uses it to batch across
//     concurrent calls. It must return promptly once ctx is cancelled.
//   - Outputs may leave the id, source, time, CloudEvents subject, tenant,
//     options and trace context empty: the runner inherits them from the
//     input and derives the id deterministically from the input's id, the
//     stage, the output's type and position, so a redelivered input
//     re-publishes the same ids and JetStream drops the duplicates. A
//     handler must therefore return the same outputs, in the same order, for
//     the same input.
//   - A panic in Handle is recovered and treated as a permanent error.
type Handler interface {
	Handle(ctx context.Context, d *Delivery) ([]Event, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, d *Delivery) ([]Event, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, d *Delivery) ([]Event, error) { return f(ctx, d) }

// Delivery is one delivery of a stage's input: the decoded event and where
// it stands in JetStream. A handler may read it; it belongs to the runner.
type Delivery struct {
	Event
	// Stage is the runner's stage.
	Stage string
	// Attempt counts deliveries of this message: 1 on the first.
	Attempt int
	// MaxDeliver is the consumer's delivery limit; 0 means unlimited.
	MaxDeliver int
	// Stream, Consumer and Sequence (the stream sequence) locate the
	// message; Stored is when the stream stored it.
	Stream   string
	Consumer string
	Sequence uint64
	Stored   time.Time
}

// LastAttempt reports whether this is the last delivery the consumer allows:
// if it fails, the input is dead-lettered.
func (d *Delivery) LastAttempt() bool {
	return d.MaxDeliver > 0 && d.Attempt >= d.MaxDeliver
}

// RunnerConfig configures a Runner. Zero fields take the values of
// DefaultRunnerConfig.
type RunnerConfig struct {
	// Stage names the stage (a single subject token, e.g. "detect"). It
	// names the dead-letter subject facestream.dlq.<stage> and labels the
	// metrics and logs. Required.
	Stage string
	// Source is the CloudEvents source of the stage's outputs and dead
	// letters; "/facestream/<stage>" by default.
	Source string
	// Concurrency is how many Handle calls may run at once.
	Concurrency int
	// Prefetch is how many messages the pull consumer may hold in the client
	// beyond those being handled (its PullMaxMessages); Concurrency by
	// default. At most Concurrency+Prefetch messages are delivered and not
	// yet settled per runner: MaxAckPending of the consumer must allow that
	// times the number of replicas. Buffered messages use up AckWait while
	// they wait, so keep it small.
	Prefetch int
	// Heartbeat is how often the runner tells the server a long handler is
	// still working (InProgress). By default a third of the ack deadline of
	// the current delivery (AckWait, or the consumer's BackOff entry).
	Heartbeat time.Duration
	// RetryBase and RetryMax shape the retry delay after a transient error:
	// RetryBase·2^(attempt-1), at most RetryMax. When the consumer has a
	// BackOff list, the server redelivers a NAK'd message no sooner than
	// BackOff[attempt-1] − AckWait, which then acts as a floor (the runner
	// compensates for the rest; see the nats package's consumers).
	RetryBase time.Duration
	RetryMax  time.Duration
	// DrainTimeout bounds a graceful stop: once Run's context is cancelled,
	// handlers still running get this long before their context is
	// cancelled too.
	DrainTimeout time.Duration
	// PublishTimeout bounds each output publish, dead-letter publish and ack.
	PublishTimeout time.Duration
	// Logger receives the runner's logs, with component=events.runner and
	// stage=<stage>. Discarded when nil.
	Logger *slog.Logger
	// Registerer receives the runner's metrics. Runners of different stages
	// may share one. Nothing is registered when nil.
	Registerer prometheus.Registerer
	// TracerProvider, when not nil, traces every message: the runner
	// continues the trace of the input's traceparent (or starts one), runs
	// the handler inside a span named after the stage, and hands that span
	// on as the traceparent of every output. Nil traces nothing.
	TracerProvider trace.TracerProvider
}

// DefaultRunnerConfig returns the defaults of RunnerConfig (Stage unset).
func DefaultRunnerConfig() RunnerConfig {
	return RunnerConfig{
		Concurrency:    4,
		RetryBase:      time.Second,
		RetryMax:       time.Minute,
		DrainTimeout:   20 * time.Second,
		PublishTimeout: 10 * time.Second,
	}
}

// withDefaults returns c with zero fields set from DefaultRunnerConfig.
func (c RunnerConfig) withDefaults() RunnerConfig {
	d := DefaultRunnerConfig()
	if c.Source == "" && c.Stage != "" {
		c.Source = "/facestream/" + c.Stage
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Prefetch == 0 {
		c.Prefetch = c.Concurrency
	}
	if c.RetryBase == 0 {
		c.RetryBase = d.RetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(d.RetryMax, c.RetryBase)
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = d.DrainTimeout
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = d.PublishTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid setting.
func (c RunnerConfig) Validate() error {
	switch {
	case !validToken(c.Stage):
		return fmt.Errorf("runner config: stage %q is not a single subject token", c.Stage)
	case c.Concurrency < 1:
		return fmt.Errorf("runner config: concurrency %d < 1", c.Concurrency)
	case c.Prefetch < 1:
		return fmt.Errorf("runner config: prefetch %d < 1", c.Prefetch)
	case c.Heartbeat < 0, c.RetryBase < 0, c.DrainTimeout < 0, c.PublishTimeout < 0:
		return errors.New("runner config: negative duration")
	case c.RetryMax < c.RetryBase:
		return fmt.Errorf("runner config: retry max %v < retry base %v", c.RetryMax, c.RetryBase)
	}
	return nil
}

// Runner runs one stage: it pulls the stage's input from a durable pull
// consumer, calls the Handler with bounded concurrency and settles every
// message (see Handler for the rules). Replicas of a stage each run a Runner
// on the same consumer. An output refused because its stream is full
// (ErrStreamFull) is published again until it fits, without using up one of
// the input's deliveries.
//
// Metrics, all labelled stage=<stage>:
//
//	facestream_stage_messages_total{outcome}   acked, retried, dead_lettered, failed
//	facestream_stage_handle_seconds            histogram of Handle durations
//	facestream_stage_in_flight                 messages being processed now
//	facestream_stage_dead_letters_total{reason} permanent, max_deliver, malformed
//	facestream_publish_seconds{subject,result} publish-to-PubAck latency (ok, duplicate, error)
//
// Logs carry component=events.runner, stage, and per message seq, attempt,
// image_id, event_id and type.
type Runner struct {
	js       jetstream.JetStream
	consumer jetstream.Consumer
	handler  Handler
	cfg      RunnerConfig
	pub      *Publisher
	metrics  *stageMetrics
	tracer   trace.Tracer
	logger   *slog.Logger
	now      func() time.Time
}

// NewRunner returns a Runner of handler h on consumer, publishing with js.
func NewRunner(js jetstream.JetStream, consumer jetstream.Consumer, h Handler, cfg RunnerConfig) (*Runner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	if js == nil || consumer == nil || h == nil {
		return nil, errors.New("new runner: jetstream, consumer and handler are required")
	}
	logger := cfg.Logger.With("component", "events.runner", "stage", cfg.Stage)
	pub, err := NewPublisher(js, WithSource(cfg.Source), WithLogger(cfg.Logger), WithRegisterer(cfg.Registerer))
	if err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	m, err := newStageMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new runner: register metrics: %w", err)
	}
	// Every series of the stage exists from the start at zero, so that
	// rates and alerts see the first failure as an increase.
	for _, o := range []string{outcomeAcked, outcomeRetried, outcomeDeadLettered, outcomeFailed} {
		m.messages.WithLabelValues(cfg.Stage, o)
	}
	for _, r := range []DeadLetterReason{DeadLetterPermanent, DeadLetterMaxDeliver, DeadLetterMalformed} {
		m.deadLetters.WithLabelValues(cfg.Stage, string(r))
	}
	m.handle.WithLabelValues(cfg.Stage)
	m.queueWait.WithLabelValues(cfg.Stage)
	m.inFlight.WithLabelValues(cfg.Stage)
	for _, o := range []string{"analyzed", "rejected"} {
		m.latency.WithLabelValues(o)
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &Runner{js: js, consumer: consumer, handler: h, cfg: cfg, pub: pub, metrics: m, logger: logger, now: time.Now,
		tracer: tp.Tracer("github.com/facestream/facestream/pkg/events")}, nil
}

// Run processes messages until ctx is cancelled, then drains: it stops
// pulling, finishes (and settles) the messages already delivered, and returns
// nil. It returns an error if the consumer cannot be read (deleted, the
// connection closed); messages in flight are still finished first. It rides
// out server restarts and reconnects. The consumer's AckWait, BackOff and
// MaxDeliver are read once, when Run starts. Run must not be called twice
// at the same time.
func (r *Runner) Run(ctx context.Context) error {
	info, err := r.consumer.Info(ctx)
	if err != nil {
		return fmt.Errorf("run %s: consumer info: %w", r.cfg.Stage, err)
	}
	lim := limitsOf(info.Config)
	iter, err := r.consumer.Messages(jetstream.PullMaxMessages(r.cfg.Prefetch))
	if err != nil {
		return fmt.Errorf("run %s: pull messages: %w", r.cfg.Stage, err)
	}
	r.logger.InfoContext(ctx, "stage running", "stream", info.Stream, "consumer", info.Name,
		"concurrency", r.cfg.Concurrency, "prefetch", r.cfg.Prefetch,
		"ack_wait", lim.ackWait, "max_deliver", lim.maxDeliver)

	// Handlers outlive ctx by up to DrainTimeout, so a stop finishes work.
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()

	var wg sync.WaitGroup
	slots := make(chan struct{}, r.cfg.Concurrency)
	start := func(msg jetstream.Msg) {
		wg.Go(func() {
			defer func() { <-slots }()
			r.process(hctx, lim, msg)
		})
	}

	var runErr error
pull:
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break pull
		}
		msg, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			<-slots
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, jetstream.ErrNoHeartbeat):
				r.logger.WarnContext(ctx, "pull consumer missed heartbeats; still pulling", "err", err)
				continue
			default:
				runErr = fmt.Errorf("run %s: next message: %w", r.cfg.Stage, err)
				r.logger.ErrorContext(ctx, "stage stopped pulling", "err", err)
			}
			break pull
		}
		start(msg)
	}

	// Drain: no new pull requests; what the client already holds is still
	// handled, then in-flight handlers finish and settle their messages.
	iter.Drain()
	timer := time.AfterFunc(r.cfg.DrainTimeout, cancelHandlers)
	defer timer.Stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-hctx.Done():
		}
		if hctx.Err() != nil {
			break
		}
		msg, err := iter.Next(jetstream.NextContext(hctx))
		if err != nil {
			<-slots
			break
		}
		start(msg)
	}
	wg.Wait()
	r.logger.InfoContext(ctx, "stage drained")
	return runErr
}

// limits are the consumer settings the runner works with.
type limits struct {
	ackWait    time.Duration
	backoff    []time.Duration
	maxDeliver int
}

func limitsOf(c jetstream.ConsumerConfig) limits {
	l := limits{ackWait: c.AckWait, backoff: c.BackOff, maxDeliver: c.MaxDeliver}
	if l.ackWait <= 0 {
		l.ackWait = 30 * time.Second // the server's default
	}
	if l.maxDeliver < 0 {
		l.maxDeliver = 0
	}
	return l
}

// ackDeadline is how long the server waits for an ack of the given
// delivery before redelivering: the BackOff entry of the delivery when the
// consumer has a BackOff list, AckWait otherwise.
func (l limits) ackDeadline(attempt int) time.Duration {
	if len(l.backoff) == 0 {
		return l.ackWait
	}
	return l.backoff[min(max(attempt-1, 0), len(l.backoff)-1)]
}

// nakDelay returns the NAK delay that makes the server redeliver after want.
// With a BackOff list, nats-server (checked against 2.15) starts a NAK'd
// message's clock AckWait early but measures it against the delivery's
// BackOff entry, so redelivery comes delay + BackOff[i] − AckWait later;
// this compensates, never going below 1 ms (the server's own back-off is
// then the floor).
func (l limits) nakDelay(attempt int, want time.Duration) time.Duration {
	d := want - (l.ackDeadline(attempt) - l.ackWait)
	return max(d, time.Millisecond)
}

// retryDelay is the wanted delay before retrying after the given attempt.
func (r *Runner) retryDelay(attempt int) time.Duration {
	d := r.cfg.RetryBase
	for i := 1; i < attempt && d < r.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, r.cfg.RetryMax)
}

// process handles and settles one message.
func (r *Runner) process(ctx context.Context, lim limits, msg jetstream.Msg) {
	stage := r.cfg.Stage
	r.metrics.inFlight.WithLabelValues(stage).Inc()
	defer r.metrics.inFlight.WithLabelValues(stage).Dec()

	// Settling (publishing outputs, dead letters, acks) is not cut short by
	// a drain timeout: a finished handler's work is kept.
	settleCtx := context.WithoutCancel(ctx)

	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: it cannot come from a consumer.
		r.logger.ErrorContext(ctx, "message without JetStream metadata", "subject", msg.Subject(), "err", err)
		r.count(outcomeFailed)
		return
	}
	attempt := int(meta.NumDelivered)
	logger := r.logger.With("seq", meta.Sequence.Stream, "attempt", attempt)

	hb := r.heartbeat(msg, lim.ackDeadline(attempt), logger)
	in, err := Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
	if err != nil {
		hb.stop()
		r.deadLetter(settleCtx, lim, msg, meta, nil, DeadLetterMalformed, err, logger)
		return
	}
	logger = logger.With("image_id", in.ImageID(), "event_id", in.CloudEvent.ID(), "type", in.CloudEvent.Type())
	d := &Delivery{
		Event:      in,
		Stage:      stage,
		Attempt:    attempt,
		MaxDeliver: lim.maxDeliver,
		Stream:     meta.Stream,
		Consumer:   meta.Consumer,
		Sequence:   meta.Sequence.Stream,
		Stored:     meta.Timestamp,
	}

	start := time.Now()
	if !meta.Timestamp.IsZero() {
		r.metrics.queueWait.WithLabelValues(stage).Observe(max(start.Sub(meta.Timestamp), 0).Seconds())
	}
	ctx, span := r.startSpan(ctx, d)
	defer span.End()
	in.TraceParent, in.TraceState = traceContextOf(ctx, in.TraceParent, in.TraceState)
	outs, err := r.handle(r.metrics.withSteps(ctx, stage), d, logger)
	r.metrics.handle.WithLabelValues(stage).Observe(time.Since(start).Seconds())
	if err == nil {
		pubStart := time.Now()
		err = r.publishAll(settleCtx, ctx, in, outs, logger)
		r.metrics.steps.WithLabelValues(stage, StepPublish).Observe(time.Since(pubStart).Seconds())
	}
	if err == nil {
		r.countRejections(outs)
	} else {
		span.SetStatus(codes.Error, err.Error())
	}
	if err == nil {
		ackCtx, cancel := context.WithTimeout(settleCtx, r.cfg.PublishTimeout)
		hb.stop()
		err = msg.DoubleAck(ackCtx)
		cancel()
		if err != nil {
			// The outputs are stored; the redelivered input re-publishes
			// them under the same ids and the duplicates are dropped.
			logger.WarnContext(ctx, "ack failed; the input will be redelivered", "err", err)
			r.count(outcomeFailed)
			return
		}
		logger.DebugContext(ctx, "handled", "outputs", len(outs), "seconds", time.Since(start).Seconds())
		r.count(outcomeAcked)
		return
	}
	hb.stop()

	switch {
	case errors.Is(err, ErrPermanent):
		r.deadLetter(settleCtx, lim, msg, meta, &in, DeadLetterPermanent, err, logger)
	case d.LastAttempt():
		r.deadLetter(settleCtx, lim, msg, meta, &in, DeadLetterMaxDeliver, err, logger)
	default:
		r.retry(ctx, lim, msg, attempt, err, logger)
	}
}

// handle calls the handler, turning a panic into a permanent error.
func (r *Runner) handle(ctx context.Context, d *Delivery, logger *slog.Logger) (outs []Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			logger.ErrorContext(ctx, "handler panicked", "panic", p, "stack", string(debug.Stack()))
			outs, err = nil, Permanent(fmt.Errorf("handler panicked: %v", p))
		}
	}()
	return r.handler.Handle(ctx, d)
}

// publishAll publishes the outputs of in, one after another, each after its
// predecessor's PubAck. While the output's stream is full (ErrStreamFull)
// it waits and publishes again, the input kept alive by its heartbeat:
// failing would only spend the input's deliveries (and dead-letter it in
// the end) while the stages downstream drain the stream. It gives up when
// stop ends (the runner's drain deadline).
func (r *Runner) publishAll(ctx, stop context.Context, in Event, outs []Event, logger *slog.Logger) error {
	for i, out := range outs {
		out = r.inherit(in, out, i)
		wait := 50 * time.Millisecond
		for {
			pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
			_, err := r.pub.Publish(pctx, out)
			cancel()
			if err == nil {
				break
			}
			if !errors.Is(err, ErrStreamFull) || stop.Err() != nil {
				return fmt.Errorf("output %d of %d: %w", i+1, len(outs), err)
			}
			if wait == 50*time.Millisecond {
				logger.WarnContext(ctx, "output stream full; waiting for room", "output_type", out.CloudEvent.Type(), "err", err)
			}
			select {
			case <-stop.Done():
				return fmt.Errorf("output %d of %d: %w", i+1, len(outs), err)
			case <-time.After(wait):
			}
			wait = min(2*wait, 2*time.Second)
		}
	}
	return nil
}

// inherit fills what an output leaves empty from its input (see Handler).
func (r *Runner) inherit(in, out Event, i int) Event {
	ce := out.CloudEvent.Clone()
	if ce.ID() == "" {
		ce.SetID(derivedID(r.cfg.Stage, in.CloudEvent.ID(), ce.Type(), i))
	}
	if ce.Subject() == "" {
		ce.SetSubject(in.ImageID())
	}
	exts := ce.Extensions()
	for _, name := range []string{ExtTenant, ExtOptions} {
		if _, ok := exts[name]; !ok {
			if v := extString(in.CloudEvent, name); v != "" {
				ce.SetExtension(name, v)
			}
		}
	}
	if out.TraceParent == "" {
		out.TraceParent, out.TraceState = in.TraceParent, in.TraceState
	}
	out.CloudEvent = ce
	return out
}

// derivedID is the id of output i (of type typ) of input inID at stage:
// a name-based UUID (SHA-1), the same on every redelivery.
func derivedID(stage, inID, typ string, i int) string {
	name := "facestream/" + stage + "/" + inID + "/" + typ + "/" + strconv.Itoa(i)
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)).String()
}

// retry naks msg so that it comes back after the backoff of its attempt.
func (r *Runner) retry(ctx context.Context, lim limits, msg jetstream.Msg, attempt int, cause error, logger *slog.Logger) {
	want := r.retryDelay(attempt)
	if err := msg.NakWithDelay(lim.nakDelay(attempt, want)); err != nil {
		logger.ErrorContext(ctx, "nak failed; the input comes back after its ack wait", "err", err, "cause", cause)
		r.count(outcomeFailed)
		return
	}
	logger.WarnContext(ctx, "handler failed; retrying", "err", cause, "retry_in", want)
	r.count(outcomeRetried)
}

// deadLetter publishes msg to the stage's dead-letter subject and terminates
// it. If the dead letter cannot be published, msg is retried instead: it is
// never dropped silently. in is nil when msg did not decode.
func (r *Runner) deadLetter(ctx context.Context, lim limits, msg jetstream.Msg, meta *jetstream.MsgMetadata,
	in *Event, reason DeadLetterReason, cause error, logger *slog.Logger) {
	attempt := int(meta.NumDelivered)
	dl := &DeadLetter{
		Stage:    r.cfg.Stage,
		Reason:   reason,
		Error:    cause.Error(),
		Attempts: attempt,
		Time:     r.now().UTC(),
		Stream:   meta.Stream,
		Consumer: meta.Consumer,
		Sequence: meta.Sequence.Stream,
		Original: NewOriginalMessage(msg.Subject(), msg.Headers(), msg.Data()),
	}
	err := r.publishDeadLetter(ctx, dl, in, msg.Headers())
	if errors.Is(err, ErrPermanent) && len(dl.Original.Data) > 0 {
		// Too large with the original data inside: keep everything else.
		dl.Original.Data, dl.Original.DataOmitted = nil, true
		err = r.publishDeadLetter(ctx, dl, in, msg.Headers())
	}
	if err != nil {
		logger.ErrorContext(ctx, "dead letter failed; retrying the input instead", "err", err, "cause", cause)
		if nakErr := msg.NakWithDelay(lim.nakDelay(attempt, r.retryDelay(attempt))); nakErr != nil {
			logger.ErrorContext(ctx, "nak failed", "err", nakErr)
		}
		r.count(outcomeFailed)
		return
	}
	if err := msg.TermWithReason(string(reason)); err != nil {
		// The dead letter is stored; a redelivery dead-letters again under
		// the same id, which JetStream drops as a duplicate.
		logger.WarnContext(ctx, "term failed after dead letter", "err", err)
	}
	logger.ErrorContext(ctx, "input dead-lettered", "reason", reason, "err", cause, "dlq", DLQSubject(r.cfg.Stage))
	r.metrics.deadLetters.WithLabelValues(r.cfg.Stage, string(reason)).Inc()
	r.count(outcomeDeadLettered)
}

func (r *Runner) publishDeadLetter(ctx context.Context, dl *DeadLetter, in *Event, h nats.Header) error {
	imageID := ""
	if in != nil {
		imageID = in.ImageID()
	}
	e, err := New(imageID, dl)
	if err != nil {
		return err
	}
	// One dead letter per stored message and stage, whatever the retries.
	e.CloudEvent.SetID(derivedID(r.cfg.Stage, dl.Stream+"/"+strconv.FormatUint(dl.Sequence, 10), TypeDeadLetter, 0))
	if in != nil {
		if t := in.Tenant(); t != "" {
			e.SetTenant(t)
		}
		e.TraceParent, e.TraceState = in.TraceParent, in.TraceState
	} else {
		e.TraceParent, e.TraceState = h.Get(HeaderTraceParent), h.Get(HeaderTraceState)
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	_, err = r.pub.Publish(pctx, e)
	return err
}

func (r *Runner) count(outcome string) {
	r.metrics.messages.WithLabelValues(r.cfg.Stage, outcome).Inc()
}

// heartbeat keeps msg from being redelivered while it is worked on, telling
// the server it is in progress at a fraction of its ack deadline.
type heartbeat struct {
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func (r *Runner) heartbeat(msg jetstream.Msg, deadline time.Duration, logger *slog.Logger) *heartbeat {
	every := r.cfg.Heartbeat
	if every <= 0 || every > deadline/2 {
		every = deadline / 3
	}
	hb := &heartbeat{done: make(chan struct{})}
	if every <= 0 {
		return hb
	}
	hb.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-hb.done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					logger.Warn("in-progress heartbeat failed", "err", err)
				}
			}
		}
	})
	return hb
}

// stop ends the heartbeat and waits for it; safe to call more than once.
func (hb *heartbeat) stop() {
	hb.once.Do(func() { close(hb.done) })
	hb.wg.Wait()
}

// countRejections counts the image.rejected outputs by reason, and
// observes the end-to-end latency of every result published.
func (r *Runner) countRejections(outs []Event) {
	now := r.now()
	for _, out := range outs {
		switch out.CloudEvent.Type() {
		case TypeImageRejected:
			var rej ImageRejected
			reason := "unknown"
			if out.Decode(&rej) == nil && rej.Reason != "" {
				reason = string(rej.Reason)
			}
			r.metrics.rejected.WithLabelValues(r.cfg.Stage, reason).Inc()
			if !rej.SubmittedAt.IsZero() {
				r.metrics.latency.WithLabelValues("rejected").Observe(max(now.Sub(rej.SubmittedAt), 0).Seconds())
			}
		case TypeImageAnalyzed:
			var a struct {
				Image struct {
					SubmittedAt time.Time `json:"submitted_at"`
				} `json:"image"`
			}
			if out.Decode(&a) == nil && !a.Image.SubmittedAt.IsZero() {
				r.metrics.latency.WithLabelValues("analyzed").Observe(max(now.Sub(a.Image.SubmittedAt), 0).Seconds())
			}
		}
	}
}

// startSpan starts the stage's span for d, a child of the input's
// traceparent when it has one.
func (r *Runner) startSpan(ctx context.Context, d *Delivery) (context.Context, trace.Span) {
	carrier := propagation.MapCarrier{}
	if d.TraceParent != "" {
		carrier[HeaderTraceParent] = d.TraceParent
		if d.TraceState != "" {
			carrier[HeaderTraceState] = d.TraceState
		}
	}
	ctx = propagation.TraceContext{}.Extract(ctx, carrier)
	return r.tracer.Start(ctx, r.cfg.Stage, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("facestream.stage", r.cfg.Stage),
		attribute.String("facestream.image_id", d.ImageID()),
		attribute.String("cloudevents.event_id", d.CloudEvent.ID()),
		attribute.String("cloudevents.event_type", d.CloudEvent.Type()),
		attribute.Int("messaging.message.delivery_attempt", d.Attempt),
	))
}

// traceContextOf is the traceparent and tracestate of the span in ctx, or
// parent and state unchanged when ctx holds no recording span (tracing off),
// so that a trace started upstream still flows through.
func traceContextOf(ctx context.Context, parent, state string) (string, string) {
	if !trace.SpanContextFromContext(ctx).IsValid() || !trace.SpanFromContext(ctx).IsRecording() {
		return parent, state
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier[HeaderTraceParent], carrier[HeaderTraceState]
}
