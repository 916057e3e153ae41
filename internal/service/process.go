package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/telemetry"
	"github.com/facestream/facestream/migrations"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// EmbeddedMaxPayload is the max_payload of the all-in-one NATS server.
const EmbeddedMaxPayload = 8 << 20

// drainTimeout bounds draining the NATS connection at shutdown.
const drainTimeout = 10 * time.Second

// stageOf maps a stage binary to its stage name.
var stageOf = map[config.Binary]string{
	config.Ingest:    events.StageIngest,
	config.Detect:    events.StageDetect,
	config.Embed:     events.StageEmbed,
	config.Attrs:     events.StageAttrs,
	config.Aggregate: events.StageAggregate,
}

// needsModels says which stages run ONNX models.
func needsModels(stage string) bool {
	return stage == events.StageDetect || stage == events.StageEmbed || stage == events.StageAttrs
}

// newRegistry is a fresh registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), telemetry.NewMemoryLimit())
	return reg
}

// RunStage runs the stage of binary b against the NATS server (and, for the
// stages that use it, the PostgreSQL database) of cfg until ctx ends, then
// drains: messages in flight are finished and settled before it returns.
func RunStage(ctx context.Context, b config.Binary, cfg config.Config, logger *slog.Logger) (err error) {
	stage, ok := stageOf[b]
	if !ok {
		return fmt.Errorf("run stage: %s is not a stage", b)
	}
	logger = logger.With("stage", stage)
	reg := newRegistry()
	var health Health

	nc, err := connectWaiting(ctx, cfg.NATS, "facestream-"+stage, logger)
	if err != nil {
		return fmt.Errorf("run %s: %w", stage, err)
	}
	defer drain(nc, drainTimeout)
	health.Add("nats", natsCheck(nc))
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("run %s: %w", stage, err)
	}
	if err := applyWaiting(ctx, js, cfg, logger); err != nil {
		return fmt.Errorf("run %s: %w", stage, err)
	}
	blobs, err := newBlobStore(js, cfg)
	if err != nil {
		return fmt.Errorf("run %s: %w", stage, err)
	}
	env := &Env{Config: cfg, Logger: logger, Registerer: reg, JS: js, Blobs: blobs}
	if needsModels(stage) {
		if env.Models, err = OpenModels(cfg, logger, reg); err != nil {
			return modelsFailed(ctx, cfg, &health, reg, logger, fmt.Errorf("run %s: %w", stage, err))
		}
		defer func() { err = errors.Join(err, env.Models.Close()) }()
		modelsHealth(&health, env.Models, cfg, reg)
	}
	if u := cfg.Database.URL.Value(); u != "" && (stage == events.StageIngest || stage == events.StageAggregate) {
		if env.DB, err = pgxpool.New(ctx, u); err != nil {
			return fmt.Errorf("run %s: open database: %w", stage, err)
		}
		defer env.DB.Close()
		health.Add("postgres", env.DB.Ping)
	}
	names := []string{stage}
	if stage == events.StageAggregate {
		names = append(names, StageRecorder)
	}
	tp, shutdownTracing, err := telemetry.Tracing(ctx, cfg.Tracing.OTLPEndpoint, "facestream-"+stage)
	if err != nil {
		return fmt.Errorf("run %s: %w", stage, err)
	}
	defer func() { err = errors.Join(err, shutdownTracing(context.WithoutCancel(ctx))) }()
	env.Tracer = tp
	reg.MustRegister(telemetry.NewConsumerLag(js, consumerRefs(names), []string{fsnats.StreamDLQ}))
	stages, err := buildAll(ctx, env, names)
	if err != nil {
		return fmt.Errorf("run %s: %w", stage, err)
	}
	wait, err := serveMetrics(ctx, cfg.Metrics.Addr, health.Handler(reg), logger)
	if err != nil {
		return errors.Join(fmt.Errorf("run %s: %w", stage, err), closeAll(stages))
	}
	err = RunStages(ctx, stages)
	return errors.Join(err, wait())
}

// RunAll is `facestream run`: an embedded nats-server (JetStream, file store
// in cfg.Data.Dir, max_payload 8 MB, listening on cfg.NATS.Listen), the
// migrations, and every stage plus the rejection recorder in one process
// sharing one ONNX Runtime, until ctx ends. ready, when not nil, is called
// with the embedded server's client URL once everything runs.
func RunAll(ctx context.Context, cfg config.Config, logger *slog.Logger, ready func(natsURL string)) (err error) {
	reg := newRegistry()
	var health Health

	srv, err := StartEmbeddedNATS(cfg.NATS.Listen, filepath.Join(cfg.Data.Dir, "jetstream"))
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	logger.Info("embedded nats server running", "url", srv.ClientURL(), "store", filepath.Join(cfg.Data.Dir, "jetstream"))

	nc, err := nats.Connect(srv.ClientURL(), nats.InProcessServer(srv), nats.Name("facestream-run"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("run: connect to the embedded server: %w", err)
	}
	defer drain(nc, drainTimeout)
	health.Add("nats", natsCheck(nc))
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if err := Apply(ctx, js, cfg, logger); err != nil {
		return fmt.Errorf("run: %w", err)
	}

	pool, err := pgxpool.New(ctx, cfg.Database.URL.Value())
	if err != nil {
		return fmt.Errorf("run: open database: %w", err)
	}
	defer pool.Close()
	applied, err := migrations.Up(ctx, pool)
	if err != nil {
		return fmt.Errorf("run: migrate: %w", err)
	}
	logger.Info("database migrated", "applied", len(applied))
	health.Add("postgres", pool.Ping)

	models, err := OpenModels(cfg, logger, reg)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer func() { err = errors.Join(err, models.Close()) }()
	modelsHealth(&health, models, cfg, reg)

	tp, shutdownTracing, err := telemetry.Tracing(ctx, cfg.Tracing.OTLPEndpoint, "facestream")
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer func() { err = errors.Join(err, shutdownTracing(context.WithoutCancel(ctx))) }()
	reg.MustRegister(telemetry.NewConsumerLag(js, consumerRefs(AllStages()), []string{fsnats.StreamDLQ}))
	blobs, err := newBlobStore(js, cfg)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	env := &Env{Config: cfg, Logger: logger, Registerer: reg, JS: js, Blobs: blobs, Models: models, DB: pool, Tracer: tp}
	if env.Cache, err = sharedCache(ctx, env); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer func() { err = errors.Join(err, env.Cache.Close()) }()
	stages, err := buildAll(ctx, env, AllStages())
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	wait, err := serveMetrics(ctx, cfg.Metrics.Addr, health.Handler(reg), logger)
	if err != nil {
		return errors.Join(fmt.Errorf("run: %w", err), closeAll(stages))
	}
	waitAPI, err := serveAPI(ctx, env, models.Pack, &health, reg, logger)
	if err != nil {
		return errors.Join(fmt.Errorf("run: %w", err), closeAll(stages))
	}
	defer func() { err = errors.Join(err, waitAPI()) }()
	if ready != nil {
		ready(srv.ClientURL())
	}
	err = RunStages(ctx, stages)
	return errors.Join(err, wait())
}

// AllStages lists what `facestream run` runs: the five stages in pipeline
// order, then the rejection recorder.
func AllStages() []string {
	return []string{events.StageIngest, events.StageDetect, events.StageEmbed, events.StageAttrs, events.StageAggregate, StageRecorder}
}

// consumerRefs are the durable consumers of the named stages, for the
// consumer-lag metrics.
func consumerRefs(names []string) []telemetry.ConsumerRef {
	out := make([]telemetry.ConsumerRef, 0, len(names))
	for _, n := range names {
		out = append(out, telemetry.ConsumerRef{Stream: streamOf(n), Consumer: n})
	}
	return out
}

// buildAll builds the named stages, closing those built when one fails.
func buildAll(ctx context.Context, env *Env, names []string) ([]*Stage, error) {
	var out []*Stage
	for _, n := range names {
		s, err := BuildStage(ctx, env, n)
		if err != nil {
			return nil, errors.Join(err, closeAll(out))
		}
		out = append(out, s)
	}
	return out, nil
}

func closeAll(stages []*Stage) error {
	var errs []error
	for _, s := range stages {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

func natsCheck(nc *nats.Conn) Check {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("not connected (%s)", nc.Status())
		}
		return nil
	}
}

// StartEmbeddedNATS starts an in-process nats-server with JetStream, its
// file store in storeDir, max_payload EmbeddedMaxPayload, listening on
// listen (host:port) so that other clients can connect.
func StartEmbeddedNATS(listen, storeDir string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("start nats server: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("start nats server: listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "facestream",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		MaxPayload: EmbeddedMaxPayload,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("start nats server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("start nats server: not listening on %s (is the address in use? see --nats-listen)", listen)
	}
	return srv, nil
}
