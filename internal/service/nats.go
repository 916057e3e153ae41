package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/config"
	fsnats "github.com/facestream/facestream/nats"
)

// Connect opens a NATS connection as the config says: the server URL(s),
// a credentials file, TLS with a CA and an optional client certificate. It
// reconnects forever, logging each disconnect and reconnect.
func Connect(c config.NATS, name string, logger *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if f := c.CredsFile.Value(); f != "" {
		opts = append(opts, nats.UserCredentials(f))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(c.URL.Value(), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", c.URL, err)
	}
	return nc, nil
}

// Apply creates or updates the streams, consumers and buckets of package
// nats, with the retention settings and the work stream's bounds of cfg.
func Apply(ctx context.Context, js jetstream.JetStream, cfg config.Config, logger *slog.Logger, extra ...fsnats.Option) error {
	opts := append([]fsnats.Option{
		fsnats.WithTTL("facestream-images", cfg.Retention.ImageTTL),
		fsnats.WithMaxAge("FACESTREAM_RESULTS", cfg.Retention.ResultsMaxAge),
		fsnats.WithMaxMsgsPerSubject(fsnats.StreamWork, int64(cfg.NATS.WorkMaxPerStage)),
		fsnats.WithReplicas(cfg.NATS.Replicas),
		fsnats.WithLogger(logger),
	}, extra...)
	if _, err := fsnats.Apply(ctx, js, opts...); err != nil {
		return fmt.Errorf("apply jetstream definitions: %w", err)
	}
	return nil
}

// drain drains nc and waits until it is closed (at most timeout).
func drain(nc *nats.Conn, timeout time.Duration) {
	if nc == nil || nc.IsClosed() {
		return
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		nc.Close()
	}
}
