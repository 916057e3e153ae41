package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/config"
)

// A stage process that starts while the NATS server is down (restarting,
// failing over) waits for it instead of exiting: it retries the connection
// and the definitions while the failure is one of unreachability, with a
// delay growing from startRetryMin to startRetryMax, until ctx ends. Any
// other error (bad credentials, TLS, invalid definitions) fails at once.
const (
	startRetryMin = 250 * time.Millisecond
	startRetryMax = 5 * time.Second
)

// unreachable reports whether err means the server cannot be reached (yet).
func unreachable(err error) bool {
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// retryUnreachable runs f until it succeeds, fails otherwise than by
// unreachability, or ctx ends.
func retryUnreachable(ctx context.Context, logger *slog.Logger, what string, f func(context.Context) error) error {
	delay := startRetryMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(actx)
		cancel()
		if err == nil || !unreachable(err) || ctx.Err() != nil {
			return err
		}
		logger.Warn("nats unreachable; retrying", "step", what, "attempt", attempt, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, startRetryMax)
	}
}

// connectWaiting is Connect, waiting for an unreachable server.
func connectWaiting(ctx context.Context, c config.NATS, name string, logger *slog.Logger) (*nats.Conn, error) {
	var nc *nats.Conn
	err := retryUnreachable(ctx, logger, "connect", func(context.Context) error {
		var err error
		nc, err = Connect(c, name, logger)
		return err
	})
	return nc, err
}

// applyWaiting is Apply, waiting for JetStream to answer.
func applyWaiting(ctx context.Context, js jetstream.JetStream, cfg config.Config, logger *slog.Logger) error {
	return retryUnreachable(ctx, logger, "apply definitions", func(actx context.Context) error {
		return Apply(actx, js, cfg, logger)
	})
}

// modelsHealth reports the loaded models on /readyz and in
// facestream_execution_provider{model,requested,provider} (1 per model):
// which execution provider each model actually runs on — the requested one,
// or cpu where ort.cpu_fallback replaced an unavailable GPU provider.
func modelsHealth(h *Health, m *Models, cfg config.Config, reg prometheus.Registerer) {
	providers := m.Runtime.Providers()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "facestream_execution_provider",
		Help: "Execution provider each model runs on (1), with the one requested; they differ after a fallback to cpu.",
	}, []string{"model", "requested", "provider"})
	names := make([]string, 0, len(providers))
	for name, p := range providers {
		g.WithLabelValues(name, cfg.ORT.Provider, string(p)).Set(1)
		names = append(names, name)
	}
	slices.Sort(names)
	if reg != nil {
		_ = reg.Register(g) // a second registration (facestream run) keeps the first
	}
	h.Add("models", func(context.Context) error { return nil })
	h.AddDetail("models", func() string {
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s=%s", n, providers[n])
		}
		return fmt.Sprintf("pack %s loaded, provider requested %s, used: %s", m.Pack.Name, cfg.ORT.Provider, strings.Join(parts, " "))
	})
}

// modelsFailed keeps a process whose models failed to load alive and
// visibly not ready, instead of exiting into a silent crash loop: /healthz
// answers, /readyz answers 503 with the reason (which model, and why), the
// error is logged once, and the process waits to be stopped; then it
// returns err.
func modelsFailed(ctx context.Context, cfg config.Config, h *Health, reg prometheus.Gatherer, logger *slog.Logger, err error) error {
	h.Add("models", func(context.Context) error { return err })
	logger.Error("models failed to load: not ready, serving health until stopped", "err", err)
	wait, serr := serveMetrics(ctx, cfg.Metrics.Addr, h.Handler(reg), logger)
	if serr != nil {
		return errors.Join(err, serr)
	}
	<-ctx.Done()
	return errors.Join(err, wait())
}
