package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/pkg/events"
)

const (
	inSubject  = "test.in"
	outSubject = "test.out"
	testStage  = "teststage"
)

// stage is a runner under test: an input work queue with one durable
// consumer, an output stream and the dead-letter stream.
type stage struct {
	t        *testing.T
	srv      *natstest.Server
	in       jetstream.Stream
	out      jetstream.Stream
	dlq      jetstream.Stream
	consumer jetstream.Consumer
	pub      *events.Publisher
	reg      *prometheus.Registry
}

func newStage(t *testing.T, cc jetstream.ConsumerConfig) *stage {
	t.Helper()
	srv := startServer(t)
	s := &stage{t: t, srv: srv, reg: prometheus.NewPedanticRegistry()}
	s.in = createStream(t, srv.JS, "IN", jetstream.WorkQueuePolicy, inSubject)
	s.out = createStream(t, srv.JS, "OUT", jetstream.LimitsPolicy, outSubject)
	s.dlq = createStream(t, srv.JS, "DLQ", jetstream.LimitsPolicy, events.SubjectDLQPrefix+">")
	cc.Durable = testStage
	cc.AckPolicy = jetstream.AckExplicitPolicy
	if cc.AckWait == 0 {
		cc.AckWait = 5 * time.Second
	}
	var err error
	if s.consumer, err = srv.JS.CreateConsumer(testCtx(t), "IN", cc); err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	if s.pub, err = events.NewPublisher(srv.JS, events.WithSource("/test/producer")); err != nil {
		t.Fatal(err)
	}
	return s
}

// input publishes an image.accepted for image id to the input subject and
// returns the event as published.
func (s *stage) input(id string) events.Event {
	s.t.Helper()
	e, err := events.New(id, &events.ImageAccepted{Image: events.ImageInfo{ImageID: id, Format: "png"}, Data: events.Blob{Data: []byte(id)}})
	if err != nil {
		s.t.Fatal(err)
	}
	e.Subject = inSubject
	e.CloudEvent.SetID("in-" + id)
	e.CloudEvent.SetSource("/test/producer")
	e.CloudEvent.SetTime(sampleTime)
	e.SetTenant("tenant" + id)
	e.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if _, err := s.pub.Publish(testCtx(s.t), e); err != nil {
		s.t.Fatalf("publish input: %v", err)
	}
	return e
}

// run starts a runner of h and returns a function that stops it and
// returns Run's error.
func (s *stage) run(h events.Handler, cfg events.RunnerConfig) (stop func() error) {
	s.t.Helper()
	cfg.Stage = testStage
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 10 * time.Millisecond
		cfg.RetryMax = 100 * time.Millisecond
	}
	cfg.Registerer = s.reg
	r, err := events.NewRunner(s.srv.JS, s.consumer, h, cfg)
	if err != nil {
		s.t.Fatalf("new runner: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				s.t.Fatal("runner did not stop")
			}
		})
		return runErr
	}
	s.t.Cleanup(func() { _ = stop() })
	return stop
}

// output returns an output event for delivery d (fields left to inherit).
func output(t *testing.T, d *events.Delivery) events.Event {
	var in events.ImageAccepted
	if err := d.Decode(&in); err != nil {
		t.Errorf("decode input: %v", err)
	}
	e, err := events.New("", &events.FacesDetected{Image: in.Image, Pack: "p", Detector: "d", Faces: []events.Face{}})
	if err != nil {
		t.Error(err)
	}
	e.Subject = outSubject
	return e
}

func (s *stage) outcome(outcome string) float64 {
	return metricValue(s.t, s.reg, "facestream_stage_messages_total", map[string]string{"stage": testStage, "outcome": outcome})
}

// metricValue returns the value of the counter or gauge name with exactly
// the given labels, 0 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if !reflect.DeepEqual(got, labels) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func (s *stage) deadLetters() []events.DeadLetter {
	s.t.Helper()
	var out []events.DeadLetter
	for _, e := range decodeAll(s.t, storedMsgs(s.t, s.dlq)) {
		var dl events.DeadLetter
		if err := e.Decode(&dl); err != nil {
			s.t.Fatalf("decode dead letter: %v", err)
		}
		if e.Subject != events.DLQSubject(testStage) {
			s.t.Errorf("dead letter on %s", e.Subject)
		}
		out = append(out, dl)
	}
	return out
}

// TestRunnerPublishesOutputsAndAcks: every input yields its output, with
// tenant, trace context and image id inherited and a deterministic id, and
// the input leaves the work queue.
func TestRunnerPublishesOutputsAndAcks(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	var ins []events.Event
	for i := range 5 {
		ins = append(ins, s.input(fmt.Sprint(i)))
	}
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		if d.Attempt != 1 || d.Stage != testStage || d.Stream != "IN" || d.Sequence == 0 {
			t.Errorf("delivery %+v", d)
		}
		return []events.Event{output(t, d)}, nil
	}), events.RunnerConfig{Concurrency: 2})

	eventually(t, "5 outputs", func() bool { return msgCount(t, s.out) == 5 })
	eventually(t, "inputs acked", func() bool { return msgCount(t, s.in) == 0 })
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}

	outs := decodeAll(t, storedMsgs(t, s.out))
	byImage := map[string]events.Event{}
	for _, o := range outs {
		byImage[o.ImageID()] = o
	}
	for _, in := range ins {
		o, ok := byImage[in.ImageID()]
		if !ok {
			t.Errorf("no output for image %s", in.ImageID())
			continue
		}
		if o.Tenant() != in.Tenant() || o.TraceParent != in.TraceParent {
			t.Errorf("output of %s: tenant %q traceparent %q not inherited", in.ImageID(), o.Tenant(), o.TraceParent)
		}
		if o.CloudEvent.Source() != "/facestream/"+testStage || o.CloudEvent.Type() != events.TypeFacesDetected {
			t.Errorf("output attributes %v", o.CloudEvent)
		}
		if o.CloudEvent.ID() == "" || o.CloudEvent.ID() == in.CloudEvent.ID() {
			t.Errorf("output id %q", o.CloudEvent.ID())
		}
	}
	if got := s.outcome("acked"); got != 5 {
		t.Errorf("acked = %v, want 5", got)
	}
}

// TestRunnerOutputIDsAreDeterministic: redelivering an input re-publishes
// its outputs under the same ids, so the stream keeps one copy.
func TestRunnerOutputIDsAreDeterministic(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	s.input("x")
	var calls atomic.Int32
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		calls.Add(1)
		out := output(t, d)
		if d.Attempt == 1 {
			// Publish the output, then fail: as if the ack had been lost.
			r := out
			r.CloudEvent = out.CloudEvent.Clone()
			return []events.Event{r, brokenOutput(t)}, nil
		}
		return []events.Event{out}, nil
	}), events.RunnerConfig{})
	eventually(t, "input acked", func() bool { return msgCount(t, s.in) == 0 })
	_ = stop()
	if calls.Load() != 2 {
		t.Fatalf("handler calls = %d, want 2", calls.Load())
	}
	if n := msgCount(t, s.out); n != 1 {
		t.Errorf("output stream holds %d messages, want 1 (the re-publication is a duplicate)", n)
	}
}

// brokenOutput is an output whose publish fails: no stream holds its subject.
func brokenOutput(t *testing.T) events.Event {
	e, err := events.New("", &events.FaceMatched{})
	if err != nil {
		t.Fatal(err)
	}
	e.Subject = "test.nowhere"
	return e
}

// TestRunnerDeadLettersPoisonWithoutBlocking: a permanent error dead-letters
// the input, whole, and the messages behind it are processed.
func TestRunnerDeadLettersPoisonWithoutBlocking(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	poison := s.input("poison")
	for i := range 3 {
		s.input(fmt.Sprint(i))
	}
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		if d.ImageID() == "poison" {
			return nil, events.Permanent(errors.New("cannot decode pixels"))
		}
		return []events.Event{output(t, d)}, nil
	}), events.RunnerConfig{Concurrency: 1})

	eventually(t, "3 outputs", func() bool { return msgCount(t, s.out) == 3 })
	eventually(t, "dead letter", func() bool { return msgCount(t, s.dlq) == 1 })
	eventually(t, "work queue empty", func() bool { return msgCount(t, s.in) == 0 })
	_ = stop()

	dl := s.deadLetters()[0]
	if dl.Reason != events.DeadLetterPermanent || dl.Error != "cannot decode pixels" || dl.Attempts != 1 ||
		dl.Stage != testStage || dl.Stream != "IN" || dl.Consumer != testStage || dl.Sequence != 1 {
		t.Errorf("dead letter %+v", dl)
	}
	// The original is kept byte for byte.
	want, err := events.Encode(poison)
	if err != nil {
		t.Fatal(err)
	}
	got := dl.Original.Msg()
	if got.Subject != want.Subject || !bytes.Equal(got.Data, want.Data) || !reflect.DeepEqual(got.Header, want.Header) {
		t.Errorf("original\n got %s %v %q\nwant %s %v %q", got.Subject, got.Header, got.Data, want.Subject, want.Header, want.Data)
	}
	dle := decodeAll(t, storedMsgs(t, s.dlq))[0]
	if dle.ImageID() != "poison" || dle.Tenant() != poison.Tenant() || dle.TraceParent != poison.TraceParent {
		t.Errorf("dead letter event %v traceparent %q", dle.CloudEvent, dle.TraceParent)
	}
	if got := s.outcome("dead_lettered"); got != 1 {
		t.Errorf("dead_lettered = %v, want 1", got)
	}
}

// TestRunnerDeadLettersMalformedMessages: a message that is not a
// CloudEvent never reaches the handler and is dead-lettered.
func TestRunnerDeadLettersMalformedMessages(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	msg := nats.NewMsg(inSubject)
	msg.Header.Set("traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
	msg.Data = []byte("hello")
	if _, err := s.srv.JS.PublishMsg(testCtx(t), msg); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		calls.Add(1)
		return nil, nil
	}), events.RunnerConfig{})
	eventually(t, "dead letter", func() bool { return msgCount(t, s.dlq) == 1 })
	_ = stop()
	if calls.Load() != 0 {
		t.Errorf("handler called %d times for a malformed message", calls.Load())
	}
	dl := s.deadLetters()[0]
	if dl.Reason != events.DeadLetterMalformed || !strings.Contains(dl.Error, "ce-specversion") || string(dl.Original.Data) != "hello" {
		t.Errorf("dead letter %+v", dl)
	}
	if e := decodeAll(t, storedMsgs(t, s.dlq))[0]; e.TraceParent != msg.Header.Get("traceparent") {
		t.Errorf("trace context not carried: %q", e.TraceParent)
	}
}

// TestRunnerRetriesTransientErrors: a transient error is retried and the
// second attempt succeeds.
func TestRunnerRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	s.input("flaky")
	var mu sync.Mutex
	var attempts []int
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		mu.Lock()
		attempts = append(attempts, d.Attempt)
		mu.Unlock()
		if d.Attempt == 1 {
			return nil, errors.New("model server busy")
		}
		return []events.Event{output(t, d)}, nil
	}), events.RunnerConfig{})
	eventually(t, "output", func() bool { return msgCount(t, s.out) == 1 })
	eventually(t, "input acked", func() bool { return msgCount(t, s.in) == 0 })
	_ = stop()
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(attempts, []int{1, 2}) {
		t.Errorf("attempts = %v, want [1 2]", attempts)
	}
	if msgCount(t, s.dlq) != 0 {
		t.Error("a transient error was dead-lettered")
	}
	if s.outcome("retried") != 1 || s.outcome("acked") != 1 {
		t.Errorf("retried = %v, acked = %v", s.outcome("retried"), s.outcome("acked"))
	}
}

// TestRunnerDeadLettersAfterMaxDeliver: when every attempt fails, the last
// one dead-letters the input.
func TestRunnerDeadLettersAfterMaxDeliver(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 3})
	s.input("doomed")
	var calls atomic.Int32
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		calls.Add(1)
		if d.LastAttempt() != (d.Attempt == 3) {
			t.Errorf("LastAttempt() = %v on attempt %d of %d", d.LastAttempt(), d.Attempt, d.MaxDeliver)
		}
		return nil, fmt.Errorf("attempt %d: database unavailable", d.Attempt)
	}), events.RunnerConfig{})
	eventually(t, "dead letter", func() bool { return msgCount(t, s.dlq) == 1 })
	eventually(t, "work queue empty", func() bool { return msgCount(t, s.in) == 0 })
	_ = stop()
	if calls.Load() != 3 {
		t.Errorf("handler calls = %d, want 3", calls.Load())
	}
	dl := s.deadLetters()[0]
	if dl.Reason != events.DeadLetterMaxDeliver || dl.Attempts != 3 || dl.Error != "attempt 3: database unavailable" {
		t.Errorf("dead letter %+v", dl)
	}
}

// TestRunnerAcksOnlyAfterOutputsAreStored: while an output cannot be stored
// (no stream for its subject) the input is not acked; once it can, it is.
func TestRunnerAcksOnlyAfterOutputsAreStored(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: -1})
	s.input("a")
	var calls atomic.Int32
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		calls.Add(1)
		out := output(t, d)
		out.Subject = "test.later"
		return []events.Event{out}, nil
	}), events.RunnerConfig{})

	eventually(t, "two attempts", func() bool { return calls.Load() >= 2 })
	if n := msgCount(t, s.in); n != 1 {
		t.Fatalf("input stream holds %d messages after failed output publishes, want 1 (not acked)", n)
	}
	if s.outcome("acked") != 0 {
		t.Fatal("input counted as acked")
	}

	later := createStream(t, s.srv.JS, "LATER", jetstream.LimitsPolicy, "test.later")
	eventually(t, "output stored", func() bool { return msgCount(t, later) == 1 })
	eventually(t, "input acked", func() bool { return msgCount(t, s.in) == 0 })
	_ = stop()
	if msgCount(t, s.dlq) != 0 {
		t.Error("dead-lettered")
	}
}

// TestRunnerDrainsOnCancel: cancelling Run stops pulling, lets in-flight
// handlers finish, publishes and acks their work, then returns nil.
func TestRunnerDrainsOnCancel(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	for i := range 3 {
		s.input(fmt.Sprint(i))
	}
	var inFlight atomic.Int32
	release := make(chan struct{})
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		inFlight.Add(1)
		<-release // ignores ctx on purpose: the drain must wait for it
		return []events.Event{output(t, d)}, nil
	}), events.RunnerConfig{Concurrency: 3})
	eventually(t, "3 handlers running", func() bool { return inFlight.Load() == 3 })
	if v := metricValue(t, s.reg, "facestream_stage_in_flight", map[string]string{"stage": testStage}); v != 3 {
		t.Errorf("in-flight gauge = %v, want 3", v)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) with handlers still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run after drain: %v", err)
	}
	if n := msgCount(t, s.out); n != 3 {
		t.Errorf("outputs = %d, want 3", n)
	}
	if n := msgCount(t, s.in); n != 0 {
		t.Errorf("input stream holds %d messages after drain, want 0 (all acked)", n)
	}

	// Nothing is pulled after the stop.
	s.input("late")
	time.Sleep(50 * time.Millisecond)
	if n := msgCount(t, s.in); n != 1 {
		t.Errorf("input stream holds %d messages, want 1 (the late one)", n)
	}
}

// TestRunnerRunsHandlersConcurrently: up to Concurrency handlers run at
// once (the embed stage batches across them), never more.
func TestRunnerRunsHandlersConcurrently(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	for i := range 9 {
		s.input(fmt.Sprint(i))
	}
	var now, peak atomic.Int32
	barrier := make(chan struct{})
	var once sync.Once
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == 3 {
			once.Do(func() { close(barrier) })
		}
		select {
		case <-barrier:
		case <-time.After(5 * time.Second):
			return nil, errors.New("never saw 3 concurrent handlers")
		}
		return []events.Event{output(t, d)}, nil
	}), events.RunnerConfig{Concurrency: 3, Prefetch: 2})
	eventually(t, "9 outputs", func() bool { return msgCount(t, s.out) == 9 })
	_ = stop()
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency = %d, want 3", p)
	}
}

// TestRunnerHeartbeatsLongHandlers: a handler that runs longer than AckWait
// is not redelivered meanwhile.
func TestRunnerHeartbeatsLongHandlers(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5, AckWait: 500 * time.Millisecond})
	s.input("slow")
	var calls atomic.Int32
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		calls.Add(1)
		time.Sleep(1500 * time.Millisecond)
		return []events.Event{output(t, d)}, nil
	}), events.RunnerConfig{Concurrency: 2})
	eventually(t, "input acked", func() bool { return msgCount(t, s.in) == 0 })
	_ = stop()
	if calls.Load() != 1 {
		t.Errorf("handler calls = %d, want 1 (redelivered while still working)", calls.Load())
	}
}

// TestRunnerPanicIsPermanent: a panicking handler dead-letters the input and
// the runner keeps going.
func TestRunnerPanicIsPermanent(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	s.input("boom")
	s.input("fine")
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		if d.ImageID() == "boom" {
			panic("index out of range")
		}
		return []events.Event{output(t, d)}, nil
	}), events.RunnerConfig{})
	eventually(t, "dead letter and output", func() bool { return msgCount(t, s.dlq) == 1 && msgCount(t, s.out) == 1 })
	_ = stop()
	if dl := s.deadLetters()[0]; dl.Reason != events.DeadLetterPermanent || !strings.Contains(dl.Error, "index out of range") {
		t.Errorf("dead letter %+v", dl)
	}
}

// TestRunnerDeadLetterOmitsDataAboveMaxPayload: a dead letter that would
// not fit the max payload keeps everything but the original data.
func TestRunnerDeadLetterOmitsDataAboveMaxPayload(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 5})
	big := bytes.Repeat([]byte{0xAB}, 900<<10) // fits 1 MB; base64 in JSON does not
	e, err := events.NewImageSubmitted(events.Submission{ImageID: "big", ContentType: "image/jpeg", Image: big})
	if err != nil {
		t.Fatal(err)
	}
	e.Subject = inSubject
	if _, err := s.pub.Publish(testCtx(t), e); err != nil {
		t.Fatal(err)
	}
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		return nil, events.Permanent(errors.New("bad"))
	}), events.RunnerConfig{})
	eventually(t, "dead letter", func() bool { return msgCount(t, s.dlq) == 1 })
	_ = stop()
	dl := s.deadLetters()[0]
	if !dl.Original.DataOmitted || dl.Original.Data != nil || dl.Original.Size != len(big) || dl.Original.SHA256 == "" {
		t.Errorf("original: omitted=%v data=%d size=%d sha=%q", dl.Original.DataOmitted, len(dl.Original.Data), dl.Original.Size, dl.Original.SHA256)
	}
	if dl.Original.Header["ce-subject"][0] != "big" {
		t.Errorf("original headers lost: %v", dl.Original.Header)
	}
}

func TestRunnerConfigValidate(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	h := events.HandlerFunc(func(context.Context, *events.Delivery) ([]events.Event, error) { return nil, nil })
	createStream(t, srv.JS, "IN", jetstream.WorkQueuePolicy, inSubject)
	c, err := srv.JS.CreateConsumer(testCtx(t), "IN", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []events.RunnerConfig{
		{},
		{Stage: "a.b"},
		{Stage: "ok", Concurrency: -1},
		{Stage: "ok", RetryBase: time.Second, RetryMax: time.Millisecond},
	} {
		if _, err := events.NewRunner(srv.JS, c, h, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	// Two runners (two stages) may share one registry.
	reg := prometheus.NewPedanticRegistry()
	for _, stage := range []string{"one", "two"} {
		if _, err := events.NewRunner(srv.JS, c, h, events.RunnerConfig{Stage: stage, Registerer: reg}); err != nil {
			t.Errorf("runner %s on a shared registry: %v", stage, err)
		}
	}
}

// TestRunnerSurvivesServerRestart: a runner keeps consuming across a
// restart of the server (file storage): work published before and after the
// restart is processed.
func TestRunnerSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ctx := testCtx(t)
	for name, subj := range map[string]string{"IN": inSubject, "OUT": outSubject} {
		retention := jetstream.LimitsPolicy
		if name == "IN" {
			retention = jetstream.WorkQueuePolicy
		}
		if _, err := srv.JS.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Retention: retention}); err != nil {
			t.Fatal(err)
		}
	}
	s := &stage{t: t, srv: srv, reg: prometheus.NewPedanticRegistry()}
	var err error
	if s.consumer, err = srv.JS.CreateConsumer(ctx, "IN", jetstream.ConsumerConfig{Durable: testStage, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1}); err != nil {
		t.Fatal(err)
	}
	if s.pub, err = events.NewPublisher(srv.JS); err != nil {
		t.Fatal(err)
	}
	if s.in, err = srv.JS.Stream(ctx, "IN"); err != nil {
		t.Fatal(err)
	}
	if s.out, err = srv.JS.Stream(ctx, "OUT"); err != nil {
		t.Fatal(err)
	}
	s.input("before")
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		return []events.Event{output(t, d)}, nil
	}), events.RunnerConfig{})
	eventually(t, "first output", func() bool { return msgCount(t, s.out) == 1 })

	srv.Restart()

	s.input("after")
	eventually(t, "second output", func() bool { return msgCount(t, s.out) == 2 })
	eventually(t, "inputs acked", func() bool { return msgCount(t, s.in) == 0 })
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestRunnerWaitsWhileTheOutputStreamIsFull: an output refused by a full
// discard-new stream is published again once there is room; the input is
// neither redelivered nor dead-lettered meanwhile, however long it waits.
func TestRunnerWaitsWhileTheOutputStreamIsFull(t *testing.T) {
	t.Parallel()
	s := newStage(t, jetstream.ConsumerConfig{MaxDeliver: 2})
	ctx := testCtx(t)
	full, err := s.srv.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "FULL", Subjects: []string{"test.full"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.MemoryStorage, Discard: jetstream.DiscardNew,
		MaxMsgsPerSubject: 1, DiscardNewPerSubject: true}) // as the work stream
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.srv.JS.Publish(ctx, "test.full", []byte("filler")); err != nil {
		t.Fatal(err)
	}
	// A direct publish into the full stream is ErrStreamFull, not permanent.
	probe, err := events.New("probe", &events.ImageAccepted{Image: events.ImageInfo{ImageID: "probe", Format: "png"}})
	if err != nil {
		t.Fatal(err)
	}
	probe.Subject = "test.full"
	if _, err := s.pub.Publish(ctx, probe); !errors.Is(err, events.ErrStreamFull) || errors.Is(err, events.ErrPermanent) {
		t.Fatalf("publish into a full stream: %v, want ErrStreamFull and not ErrPermanent", err)
	}

	s.input("a")
	var calls atomic.Int32
	stop := s.run(events.HandlerFunc(func(ctx context.Context, d *events.Delivery) ([]events.Event, error) {
		calls.Add(1)
		out := output(t, d)
		out.Subject = "test.full"
		return []events.Event{out}, nil
	}), events.RunnerConfig{})

	eventually(t, "handler called", func() bool { return calls.Load() == 1 })
	time.Sleep(time.Second) // many retry periods (RetryBase 10 ms) and both allowed deliveries' worth
	if n := msgCount(t, s.in); n != 1 || calls.Load() != 1 || msgCount(t, s.dlq) != 0 {
		t.Fatalf("while full: input stream %d messages, %d handler calls, %d dead letters; want 1, 1, 0", n, calls.Load(), msgCount(t, s.dlq))
	}
	if err := full.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "output stored", func() bool { return msgCount(t, full) == 1 })
	eventually(t, "input acked", func() bool { return msgCount(t, s.in) == 0 })
	_ = stop()
	if calls.Load() != 1 || msgCount(t, s.dlq) != 0 || s.outcome("acked") != 1 {
		t.Errorf("%d handler calls, %d dead letters, %v acked; want 1, 0, 1", calls.Load(), msgCount(t, s.dlq), s.outcome("acked"))
	}
}
