package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/resultcache"
	"github.com/facestream/facestream/internal/stages/attrs"
	"github.com/facestream/facestream/internal/stages/detect"
	"github.com/facestream/facestream/internal/stages/embed"
	"github.com/facestream/facestream/pkg/events"
)

// Env is what the stages of one process share: the configuration, logging
// and metrics, the JetStream handle, the object store, the models (nil in a
// process without inference) and the database (nil when not configured).
type Env struct {
	Config     config.Config
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	JS         jetstream.JetStream
	Blobs      *events.BlobStore
	Models     *Models
	DB         *pgxpool.Pool
	// Tracer traces every message of every stage (nil: no tracing).
	Tracer trace.TracerProvider
	// Cache, when set, is the result cache every stage of the process
	// shares (so that the HTTP edge can erase from its in-process tier);
	// nil: each stage opens its own.
	Cache *resultcache.Cache
}

// Stage is a built stage: its runner, and what to release once the runner
// has stopped.
type Stage struct {
	Name   string
	Runner *events.Runner
	closer func() error
}

// Close releases what the stage's handler holds (the embed batcher). Call
// it after Runner.Run has returned. It is idempotent.
func (s *Stage) Close() error {
	if s.closer == nil {
		return nil
	}
	err := s.closer()
	s.closer = nil
	return err
}

// handlerFactory builds one stage's handler; the closer may be nil.
type handlerFactory func(ctx context.Context, env *Env) (events.Handler, func() error, error)

// factories builds each stage's handler by name.
var factories = map[string]handlerFactory{
	events.StageDetect: func(_ context.Context, env *Env) (events.Handler, func() error, error) {
		if env.Models == nil {
			return nil, nil, errors.New("detect needs the models")
		}
		h, err := detect.New(detect.Config{
			Pack:      env.Models.Pack,
			Detector:  env.Models.Engine.Detector(),
			GenderAge: env.Models.Engine.GenderAge(),
			Blobs:     env.Blobs,
			Limits:    decodeLimits(env.Config),
			Logger:    env.Logger,

			DecodeMinSide: env.Config.Detection.DecodeMinSide,
		})
		return h, nil, err
	},
	events.StageEmbed: func(_ context.Context, env *Env) (events.Handler, func() error, error) {
		if env.Models == nil || env.Models.Engine.Recognizer() == nil {
			return nil, nil, errors.New("embed needs a model pack with a recognizer")
		}
		rec := env.Models.Engine.Recognizer()
		b, err := embed.NewBatcher(rec.Embed, embed.BatcherConfig{
			Size: env.Config.Embed.BatchSize, MaxWait: env.Config.Embed.BatchMaxWait, Registerer: env.Registerer,
		})
		if err != nil {
			return nil, nil, err
		}
		h, err := embed.New(embed.Config{Recognizer: rec, Batcher: b, Blobs: env.Blobs})
		if err != nil {
			return nil, nil, errors.Join(err, b.Close())
		}
		return h, b.Close, nil
	},
	events.StageAttrs: func(_ context.Context, env *Env) (events.Handler, func() error, error) {
		if env.Models == nil {
			return nil, nil, errors.New("attrs needs the models")
		}
		h, err := attrs.New(attrs.Config{
			GenderAge: env.Models.Engine.GenderAge(),
			Emotion:   env.Models.Engine.Emotion(),
			Blobs:     env.Blobs,
		})
		return h, nil, err
	},
}

// decodeLimits are the imaging limits the configuration allows.
func decodeLimits(c config.Config) imaging.Limits {
	l := imaging.DefaultLimits
	l.MaxBytes = int64(c.Limits.MaxImageBytes)
	l.MaxPixels = int64(c.Limits.MaxPixels)
	return l
}

// BuildStage builds stage name (one of the events.Stage… names) on its
// durable consumer (in the work stream; the recorder's in the results
// stream).
func BuildStage(ctx context.Context, env *Env, name string) (*Stage, error) {
	f, ok := factories[name]
	if !ok {
		f, ok = storeFactory(name)
	}
	if !ok {
		return nil, fmt.Errorf("build stage %s: unknown stage", name)
	}
	h, closer, err := f(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("build stage %s: %w", name, err)
	}
	h = withBreaker(env, name, h)
	s, err := newStage(ctx, env, name, streamOf(name), name, h, closer)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newStage makes the runner of handler h on stream > consumer. A process
// that starts while the NATS server restarts waits for its consumer as it
// waits for the connection (retryUnreachable) instead of exiting.
func newStage(ctx context.Context, env *Env, name, stream, consumer string, h events.Handler, closer func() error) (*Stage, error) {
	var cons jetstream.Consumer
	err := retryUnreachable(ctx, env.Logger, "consumer "+stream+" > "+consumer, func(actx context.Context) error {
		var err error
		cons, err = env.JS.Consumer(actx, stream, consumer)
		return err
	})
	if err != nil {
		err = fmt.Errorf("build stage %s: consumer %s > %s: %w", name, stream, consumer, err)
		if closer != nil {
			err = errors.Join(err, closer())
		}
		return nil, err
	}
	r, err := events.NewRunner(env.JS, cons, h, events.RunnerConfig{
		Stage:          name,
		Concurrency:    env.Config.Stage.Concurrency,
		Logger:         env.Logger,
		Registerer:     env.Registerer,
		TracerProvider: env.Tracer,
	})
	if err != nil {
		err = fmt.Errorf("build stage %s: %w", name, err)
		if closer != nil {
			err = errors.Join(err, closer())
		}
		return nil, err
	}
	return &Stage{Name: name, Runner: r, closer: closer}, nil
}

// RunStages runs every stage until ctx ends, then waits for all of them to
// drain and closes them. If one stops with an error the others are stopped
// too, and the errors are returned.
func RunStages(ctx context.Context, stages []*Stage) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, s := range stages {
		wg.Go(func() {
			if err := s.Runner.Run(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	for _, s := range stages {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
