package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

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
// A cache made here follows erasures made anywhere (Watch, until ctx ends)
// and comes with its Close; env's shared cache comes with a no-op.
func cache(ctx context.Context, env *Env) (*resultcache.Cache, func() error, error) {
	if env.Cache != nil {
		return env.Cache, func() error { return nil }, nil
	}
	c, err := openCache(ctx, env)
	if err != nil {
		return nil, nil, err
	}
	return c, c.Close, nil
}

// openCache opens a result cache on env (cache.entries in memory, the
// facestream-cache bucket, the database when env has one) that follows
// erasures made anywhere until ctx ends. Like the connection, it waits for
// a NATS server that cannot be reached yet (retryUnreachable).
func openCache(ctx context.Context, env *Env) (*resultcache.Cache, error) {
	var kv jetstream.KeyValue
	err := retryUnreachable(ctx, env.Logger, "open result cache bucket", func(actx context.Context) error {
		var err error
		kv, err = env.JS.KeyValue(actx, "facestream-cache")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open result cache bucket: %w", err)
	}
	cfg := resultcache.Config{KV: kv, Entries: env.Config.Limits.CacheEntries}
	if env.DB != nil {
		cfg.Store = store.New(env.DB)
	}
	c := resultcache.New(cfg)
	// The watch lives as long as ctx, not as one attempt's context.
	if err := retryUnreachable(ctx, env.Logger, "watch result cache bucket", func(context.Context) error { return c.Watch(ctx) }); err != nil {
		return nil, err
	}
	return c, nil
}

// storeFactory returns the factory of the stages built from the store
// side of the pipeline: ingest, aggregate and the rejection recorder.
func storeFactory(name string) (handlerFactory, bool) {
	switch name {
	case events.StageIngest:
		return func(ctx context.Context, env *Env) (events.Handler, func() error, error) {
			c, closeCache, err := cache(ctx, env)
			if err != nil {
				return nil, nil, err
			}
			h, err := ingest.New(ingest.Config{
				Limits:      ingest.Limits{MaxBytes: int64(env.Config.Limits.MaxImageBytes), MaxPixels: int64(env.Config.Limits.MaxPixels)},
				InlineMax:   int64(env.Config.Limits.InlinePayloadMax),
				DefaultPack: env.Config.Models.Pack,
				CacheOnly:   env.Config.Stage.CacheOnly,
			}, env.Blobs, c)
			if err != nil {
				return nil, nil, errors.Join(err, closeCache())
			}
			return h, closeCache, nil
		}, true
	case events.StageAggregate:
		return func(ctx context.Context, env *Env) (events.Handler, func() error, error) {
			if env.DB == nil {
				return nil, nil, errors.New("aggregate needs the database")
			}
			c, closeCache, err := cache(ctx, env)
			if err != nil {
				return nil, nil, err
			}
			h, err := aggregate.New(store.New(env.DB), env.Blobs, c, nil, env.Config.Search.EfSearch)
			if err != nil {
				return nil, nil, errors.Join(err, closeCache())
			}
			return h, closeCache, nil
		}, true
	case StageRecorder:
		return func(_ context.Context, env *Env) (events.Handler, func() error, error) {
			if env.DB == nil {
				return nil, nil, errors.New("the recorder needs the database")
			}
			h, err := aggregate.NewRecorder(store.New(env.DB), env.JS, env.Config.Models.Pack)
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
