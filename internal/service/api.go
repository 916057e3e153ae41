package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/api"
	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/resultcache"
)

// sharedCache is the one result cache of a process that runs the HTTP edge
// beside the stages (openCache); Close it when done.
func sharedCache(ctx context.Context, env *Env) (*resultcache.Cache, error) {
	return openCache(ctx, env)
}

// APIConfig is the HTTP edge's configuration from cfg.
func APIConfig(cfg config.Config) api.Config {
	var origins []string
	for _, o := range strings.Split(cfg.HTTP.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	return api.Config{
		MaxImageBytes:    int64(cfg.Limits.MaxImageBytes),
		MaxPixels:        int64(cfg.Limits.MaxPixels),
		MaxBodyBytes:     int64(cfg.HTTP.MaxBodyBytes),
		InlineMax:        int64(cfg.Limits.InlinePayloadMax),
		AnalyzeTimeout:   cfg.HTTP.AnalyzeTimeout,
		RateLimit:        cfg.HTTP.RateLimit,
		CORSOrigins:      origins,
		BacklogHighWater: cfg.HTTP.BacklogHighWater,
		EfSearch:         cfg.Search.EfSearch,
	}
}

// NewAPI builds the HTTP edge over env's JetStream, database and cache.
func NewAPI(env *Env, pack modelpack.Pack, health *Health, reg *prometheus.Registry) (*api.Server, error) {
	return api.New(APIConfig(env.Config), api.Deps{
		JS: env.JS, DB: env.DB, Blobs: env.Blobs, Cache: env.Cache, Pack: pack,
		Ready: health.Ready, Gatherer: reg, Registerer: reg, Logger: env.Logger,
	})
}

// serveAPI serves the HTTP edge on cfg.HTTP.Addr until ctx ends.
func serveAPI(ctx context.Context, env *Env, pack modelpack.Pack, health *Health, reg *prometheus.Registry, logger *slog.Logger) (func() error, error) {
	srv, err := NewAPI(env, pack, health, reg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", env.Config.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the HTTP API on %s: %w", env.Config.HTTP.Addr, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	logger.Info("serving the HTTP API", "addr", ln.Addr().String())
	return serveUntil(ctx, hs, ln, 10*time.Second), nil
}

// RunAPI is `facestream api`: the HTTP edge alone, against external NATS
// and PostgreSQL (the stages run elsewhere), until ctx ends.
func RunAPI(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	reg := newRegistry()
	var health Health
	nc, err := Connect(cfg.NATS, "facestream-api", logger)
	if err != nil {
		return fmt.Errorf("run api: %w", err)
	}
	defer drain(nc, drainTimeout)
	health.Add("nats", natsCheck(nc))
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("run api: %w", err)
	}
	if err := Apply(ctx, js, cfg, logger); err != nil {
		return fmt.Errorf("run api: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.Database.URL.Value())
	if err != nil {
		return fmt.Errorf("run api: database url: %w", err)
	}
	pcfg.AfterConnect = pgxvec.RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("run api: open database: %w", err)
	}
	defer pool.Close()
	health.Add("postgres", pool.Ping)
	pack, err := modelpack.Lookup(cfg.Models.Pack)
	if err != nil {
		return fmt.Errorf("run api: %w", err)
	}
	blobs, err := newBlobStore(js, cfg)
	if err != nil {
		return fmt.Errorf("run api: %w", err)
	}
	env := &Env{Config: cfg, Logger: logger, Registerer: reg, JS: js, Blobs: blobs, DB: pool}
	if env.Cache, err = sharedCache(ctx, env); err != nil {
		return fmt.Errorf("run api: %w", err)
	}
	wait, err := serveAPI(ctx, env, pack, &health, reg, logger)
	if err != nil {
		return errors.Join(fmt.Errorf("run api: %w", err), env.Cache.Close())
	}
	<-ctx.Done()
	return errors.Join(wait(), env.Cache.Close())
}
