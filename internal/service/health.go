package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check: nil when the dependency is usable.
type Check func(ctx context.Context) error

// Health tracks readiness: every named check must pass. It is safe for
// concurrent use.
type Health struct {
	mu      sync.Mutex
	checks  []namedCheck
	details []namedDetail
}

type namedDetail struct {
	name string
	fn   func() string
}

// AddDetail adds a line that /readyz shows whatever the outcome (e.g. the
// execution provider the models actually run on).
func (h *Health) AddDetail(name string, fn func() string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.details = append(h.details, namedDetail{name, fn})
}

// detailText is the details, one "name: text" line each.
func (h *Health) detailText() string {
	h.mu.Lock()
	details := append([]namedDetail(nil), h.details...)
	h.mu.Unlock()
	var b strings.Builder
	for _, d := range details {
		fmt.Fprintf(&b, "%s: %s\n", d.name, d.fn())
	}
	return b.String()
}

type namedCheck struct {
	name string
	fn   Check
}

// Add adds a named readiness check.
func (h *Health) Add(name string, fn Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, namedCheck{name, fn})
}

// Ready runs every check and joins their errors.
func (h *Health) Ready(ctx context.Context) error {
	h.mu.Lock()
	checks := append([]namedCheck(nil), h.checks...)
	h.mu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// Handler serves /healthz (the process is alive), /readyz (every check
// passes; 503 with the failures otherwise) and /metrics (gatherer).
func (h *Health) Handler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := h.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error()+"\n"+h.detailText(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n" + h.detailText()))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// serveMetrics listens on addr (nothing when empty) and serves h until ctx
// ends. The returned function waits for the server to stop.
func serveMetrics(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) (wait func() error, err error) {
	if addr == "" {
		return func() error { return nil }, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	logger.Info("serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	return serveUntil(ctx, srv, ln, 5*time.Second), nil
}

// serveUntil serves hs on ln until ctx ends, then shuts it down, giving
// requests in flight up to grace to finish. The returned function waits for
// the server to stop and returns its error (nil after a clean shutdown).
func serveUntil(ctx context.Context, hs *http.Server, ln net.Listener, grace time.Duration) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	return func() error {
		err := <-done
		stop()
		return err
	}
}
