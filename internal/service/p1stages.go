package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/aggregate"
	"github.com/facestream/facestream/internal/stages/ingest"
	"github.com/facestream/facestream/internal/store"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// StageRecorder names the rejection recorder (aggregate.Recorder), which
// the aggregate binary and `facestream run` run beside the aggregate stage.
const StageRecorder = aggregate.ConsumerRecorder

// cache returns the result cache of env: the in-process LRU, the
// facestream-cache bucket and, when there is a database, the stored results.
func cache(ctx context.Context, env *Env) (*resultcache.Cache, error) {
	if env.Cache != nil {
		return env.Cache, nil
	}
	kv, err := env.JS.KeyValue(ctx, "facestream-cache")
	if err != nil {
		return nil, fmt.Errorf("open result cache bucket: %w", err)
	}
	cfg := resultcache.Config{KV: kv}
	if env.DB != nil {
		cfg.Store = store.New(env.DB)
	}
	return resultcache.New(cfg), nil
}

// storeFactory returns the factory of the stages built from the store
// side of the pipeline: ingest, aggregate and the rejection recorder.
func storeFactory(name string) (handlerFactory, bool) {
	switch name {
	case events.StageIngest:
		return func(ctx context.Context, env *Env) (events.Handler, func() error, error) {
			c, err := cache(ctx, env)
			if err != nil {
				return nil, nil, err
			}
			h, err := ingest.New(ingest.Config{
				Limits:      ingest.Limits{MaxBytes: int64(env.Config.Limits.MaxImageBytes), MaxPixels: int64(env.Config.Limits.MaxPixels)},
				InlineMax:   int64(env.Config.Limits.InlinePayloadMax),
				DefaultPack: env.Config.Models.Pack,
				CacheOnly:   env.Config.Stage.CacheOnly,
			}, env.Blobs, c)
			return h, nil, err
		}, true
	case events.StageAggregate:
		return func(ctx context.Context, env *Env) (events.Handler, func() error, error) {
			if env.DB == nil {
				return nil, nil, errors.New("aggregate needs the database")
			}
			c, err := cache(ctx, env)
			if err != nil {
				return nil, nil, err
			}
			h, err := aggregate.New(store.New(env.DB), env.Blobs, c, nil)
			return h, nil, err
		}, true
	case StageRecorder:
		return func(_ context.Context, env *Env) (events.Handler, func() error, error) {
			if env.DB == nil {
				return nil, nil, errors.New("the recorder needs the database")
			}
			h, err := aggregate.NewRecorder(store.New(env.DB), env.Config.Models.Pack)
			return h, nil, err
		}, true
	}
	return nil, false
}

// streamOf is the stream of a stage's durable consumer.
func streamOf(name string) string {
	if name == StageRecorder {
		return fsnats.StreamResults
	}
	return fsnats.StreamWork
}
