package service_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/pkg/events"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecretsNeverLogged runs the aggregate stage (and its recorder) at
// debug level with a database password, a NATS token-free URL and blob keys
// configured, makes it fail against the unreachable database for a while
// (retries, breaker, errors), logging everything, and finds none of the
// secrets in the captured log.
func TestSecretsNeverLogged(t *testing.T) {
	srv := natstest.Start(t)
	const password = "pw-Sup3rSecret-7781"
	raw := bytes.Repeat([]byte{0x5a, 0xc3, 0x11, 0x9e}, 8)
	prev := bytes.Repeat([]byte{0x77, 0x01, 0xfe, 0x42}, 8)
	cfg := config.Default()
	cfg.NATS.URL = config.Secret(srv.URL)
	cfg.Metrics.Addr = ""
	cfg.Log.Level = "debug"
	// Port 1: nothing listens, so every database call fails and is logged.
	cfg.Database.URL = config.Secret("postgres://facestream:" + password + "@127.0.0.1:1/facestream?sslmode=disable&connect_timeout=1")
	cfg.Blob.Key = config.Secret("k2:" + hex.EncodeToString(raw))
	cfg.Blob.PreviousKeys = config.Secret("k1:" + base64.StdEncoding.EncodeToString(prev))

	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logger.Info("configuration", "config", cfg, "database_url", cfg.Database.URL, "blob_key", cfg.Blob.Key)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.RunStage(ctx, config.Aggregate, cfg, logger) }()

	// Work that needs the database: it fails, is retried and logged.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(buf.String(), "stage running") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	pub, err := events.NewPublisher(srv.JS)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		id := "img-" + string(rune('a'+i))
		e, err := events.New(id, &events.FacesAnalyzed{Image: events.ImageInfo{ImageID: id, SHA256: strings.Repeat("ab", 32)}, Pack: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		e.CloudEvent.SetSource("/test")
		if _, err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second)
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("stage did not stop")
	}
	out := buf.String()
	if !strings.Contains(out, "127.0.0.1:1") && !strings.Contains(out, "retry") && !strings.Contains(out, "circuit") {
		t.Logf("log:\n%s", out)
		t.Fatal("the stage logged no database failure: the test did not exercise the error paths")
	}
	for name, secret := range map[string]string{
		"database password": password,
		"blob key (hex)":    hex.EncodeToString(raw),
		"blob key (base64)": base64.StdEncoding.EncodeToString(raw),
		"previous key":      base64.StdEncoding.EncodeToString(prev),
		"previous key hex":  hex.EncodeToString(prev),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s appears in the log", name)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}
