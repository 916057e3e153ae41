package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.KnownClientGoroutines())
}

func TestStartPublishAndRestartKeepsMessages(t *testing.T) {
	srv := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := srv.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := srv.JS.Publish(ctx, "t.a", []byte("before")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	url := srv.URL

	srv.Restart()

	if srv.URL != url {
		t.Errorf("URL changed across restart: %s -> %s", url, srv.URL)
	}
	if _, err := srv.JS.Publish(ctx, "t.b", []byte("after")); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	stream, err := srv.JS.Stream(ctx, "T")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("messages after restart = %d, want 2 (the store survives)", info.State.Msgs)
	}
}

func TestMaxPayloadOption(t *testing.T) {
	srv := natstest.Start(t, natstest.WithMaxPayload(8<<20))
	if got := srv.Conn.MaxPayload(); got != 8<<20 {
		t.Errorf("MaxPayload = %d, want %d", got, 8<<20)
	}
}

func TestServersAreIsolated(t *testing.T) {
	a := natstest.Start(t)
	b := natstest.Start(t)
	if a.URL == b.URL || a.StoreDir == b.StoreDir {
		t.Fatalf("two servers share an address or a store: %s %s", a.URL, b.URL)
	}
}
