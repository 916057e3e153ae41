package service_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/service"
)

// stageConfig is a stage's configuration against srv, with the models and
// runtime of the environment and /metrics, /healthz, /readyz on a free port.
func stageConfig(t *testing.T, srv *natstest.Server) (config.Config, string) {
	t.Helper()
	cfg := config.Default()
	cfg.NATS.URL = config.Secret(srv.URL)
	for name, p := range map[string]*string{"FACESTREAM_MODELS": &cfg.Models.Dir, "FACESTREAM_ORT_LIB": &cfg.ORT.Library} {
		if *p = os.Getenv(name); *p == "" {
			t.Fatalf("%s is not set (run the tests with make test)", name)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics.Addr = l.Addr().String()
	_ = l.Close()
	return cfg, "http://" + cfg.Metrics.Addr
}

// get polls url until it answers, and returns its status and body.
func get(t *testing.T, url string, timeout time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runStage runs a stage until the test ends and returns its result channel.
func runStage(t *testing.T, b config.Binary, cfg config.Config) (cancel func(), done chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- service.RunStage(ctx, b, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("stage did not stop")
		}
	})
	return cancel, done
}

// TestModelLoadFailureIsNotReady: a detect process whose model files are
// missing does not exit: /healthz answers, /readyz is 503 and says which
// model failed and why, until the process is stopped; then RunStage returns
// the error.
func TestModelLoadFailureIsNotReady(t *testing.T) {
	srv := natstest.Start(t)
	cfg, base := stageConfig(t, srv)
	cfg.Models.Dir = t.TempDir() // no model files
	_, want := service.OpenModels(cfg, slog.New(slog.DiscardHandler), nil)
	if want == nil {
		t.Fatal("models opened from an empty folder")
	}
	cancel, done := runStage(t, config.Detect, cfg)

	if code, body := get(t, base+"/healthz", 60*time.Second); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, body := get(t, base+"/readyz", 5*time.Second)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "models: ") || !strings.Contains(body, want.Error()) {
		t.Errorf("/readyz: %d %q, want 503 with %q", code, body, want.Error())
	}
	select {
	case err := <-done:
		t.Fatalf("the stage exited: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), want.Error()) {
			t.Errorf("RunStage = %v, want the model error", err)
		}
		done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop")
	}
}

// TestReadyzReportsExecutionProvider: asked for cuda with the cpu fallback,
// the attrs stage runs, and /readyz and facestream_execution_provider say
// which provider each model actually uses (cpu on a machine without CUDA).
func TestReadyzReportsExecutionProvider(t *testing.T) {
	srv := natstest.Start(t)
	cfg, base := stageConfig(t, srv)
	cfg.ORT.Provider = config.ProviderCUDA
	cfg.ORT.CPUFallback = true
	runStage(t, config.Attrs, cfg)

	var code int
	var body string
	for deadline := time.Now().Add(90 * time.Second); ; {
		code, body = get(t, base+"/readyz", 90*time.Second)
		if code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK || !strings.Contains(body, "provider requested cuda, used: ") {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	_, metrics := get(t, base+"/metrics", 5*time.Second)
	var used []string
	for line := range strings.SplitSeq(metrics, "\n") {
		if strings.HasPrefix(line, "facestream_execution_provider{") {
			used = append(used, line)
			// The provider of the metric is the one /readyz names for the model.
			model := between(line, `model="`, `"`)
			provider := between(line, `provider="`, `"`)
			if !strings.Contains(body, model+"="+provider) || !strings.Contains(line, `requested="cuda"`) {
				t.Errorf("metric %s disagrees with /readyz %q", line, body)
			}
		}
	}
	if len(used) == 0 {
		t.Errorf("no facestream_execution_provider series in /metrics")
	}
	t.Logf("/readyz: %s", body)
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}
