package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/pkg/events"
)

// testCtx returns a context that ends with the test, bounded to 20 s.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// createStream creates a memory stream.
func createStream(t *testing.T, js jetstream.JetStream, name string, retention jetstream.RetentionPolicy, subjects ...string) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(testCtx(t), jetstream.StreamConfig{
		Name:       name,
		Subjects:   subjects,
		Retention:  retention,
		Storage:    jetstream.MemoryStorage,
		Duplicates: time.Minute,
	})
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	return s
}

// storedMsgs returns every message a stream holds, in order.
func storedMsgs(t *testing.T, s jetstream.Stream) []*nats.Msg {
	t.Helper()
	ctx := testCtx(t)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []*nats.Msg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted (acked from a work queue)
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}

// msgCount returns how many messages a stream holds.
func msgCount(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(testCtx(t))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// eventually fails the test if cond does not hold within 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// decodeAll decodes messages as events.
func decodeAll(t *testing.T, msgs []*nats.Msg) []events.Event {
	t.Helper()
	out := make([]events.Event, 0, len(msgs))
	for _, m := range msgs {
		e, err := events.Decode(m)
		if err != nil {
			t.Fatalf("decode %s: %v", m.Subject, err)
		}
		out = append(out, e)
	}
	return out
}

func startServer(t *testing.T) *natstest.Server {
	t.Helper()
	return natstest.Start(t)
}

// msgOf turns a consumed JetStream message into a NATS message.
func msgOf(m jetstream.Msg) *nats.Msg {
	return &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
}
