package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/migrations"
	"github.com/facestream/facestream/pkg/events"
	"github.com/facestream/facestream/pkg/onnx"
)

// Modes of the pipeline benchmark.
const (
	InProcess    = "in-process"    // service.RunAll: every stage in this process
	MultiProcess = "multi-process" // the stage binaries, one process each
)

// PipelineConfig configures a pipeline benchmark.
type PipelineConfig struct {
	// Service is the configuration the stages run with (threads,
	// concurrency, batching, models, ORT library); Database.URL names the
	// server and a role that may create databases: the benchmark runs in a
	// fresh database that it drops afterwards.
	Service config.Config
	// Mode is InProcess or MultiProcess.
	Mode string
	// Images are the image files submitted; a path listed again is sent as
	// a variant (the result cache would answer a byte-identical repeat).
	// Warmup more are submitted first and not counted.
	Images []string
	Warmup []string
	// InFlight bounds the images between submission and result.
	InFlight int
	// BinDir holds the stage binaries (MultiProcess).
	BinDir string
	// Timeout bounds the measured run.
	Timeout time.Duration
	// Logger receives progress; discarded when nil.
	Logger *slog.Logger
	// Stderr receives the stage processes' logs (MultiProcess); discarded when nil.
	Stderr io.Writer
}

// PipelineResult is one pipeline benchmark run.
type PipelineResult struct {
	Mode         string             `json:"mode"`
	Settings     map[string]string  `json:"settings"`
	Images       int                `json:"images"`
	Analyzed     int                `json:"analyzed"`
	Rejected     map[string]int     `json:"rejected"`
	Faces        int                `json:"faces"`
	Seconds      float64            `json:"seconds"`
	ImagesPerSec float64            `json:"images_per_s"`
	FacesPerSec  float64            `json:"faces_per_s"`
	Latency      Latency            `json:"latency"`
	Stages       []StageSplit       `json:"stages"`
	ModelRuns    map[string]float64 `json:"model_runs"`    // native runs per model in the pipeline
	ModelMS      map[string]float64 `json:"model_mean_ms"` // mean native run time per model in the pipeline
	// Ceiling replays one detector run per image and the per-face models
	// per face (the definition of the issue); it is measured before and
	// after the pipeline run, and CeilingBefore/After are the two replays
	// (the machine's load drifts: their mean is Ceiling's throughput).
	Ceiling       Ceiling `json:"ceiling"`
	CeilingBefore Ceiling `json:"ceiling_before"`
	CeilingAfter  Ceiling `json:"ceiling_after"`
	Efficiency    float64 `json:"efficiency"` // pipeline images/s ÷ ceiling images/s
	// WorkCeiling replays the detector runs the pipeline actually made
	// (the second scale at 320 px and rotation retries included, all extra
	// runs counted at 320 px), measured after the run; WorkEfficiency is
	// pipeline ÷ it: the cost of everything that is not model work.
	WorkCeiling    Ceiling `json:"work_ceiling"`
	WorkEfficiency float64 `json:"work_efficiency"`
	// CPUSeconds is the CPU time the pipeline spent over the run: this
	// process (the in-process stages, or the embedded NATS server and the
	// driver) plus the stage processes' process_cpu_seconds_total
	// (multi-process). PostgreSQL's own processes are not counted.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUEfficiency is the ceiling's CPU time per image ÷ the pipeline's:
	// the share of the pipeline's CPU that went into the bare model work
	// of the ceiling. Other load on the machine moves it far less than
	// Efficiency (wall time), but it does not see cores left idle.
	CPUEfficiency float64 `json:"cpu_efficiency"`
	// LoadBefore and LoadAfter are the machine's 1-minute load average
	// around the run (other work on a shared machine skews wall times).
	LoadBefore float64   `json:"load_before,omitempty"`
	LoadAfter  float64   `json:"load_after,omitempty"`
	Outcomes   []Outcome `json:"outcomes"`
	Metrics    []string  `json:"metrics_exported"` // facestream_* names seen
	CPUs       int       `json:"cpus"`
}

// StageSplit is where one stage's time went, per message (ms).
type StageSplit struct {
	Stage     string             `json:"stage"`
	Messages  float64            `json:"messages"`
	QueueWait float64            `json:"queue_wait_ms"`
	Handle    float64            `json:"handle_ms"`
	Steps     map[string]float64 `json:"steps_ms"` // decode, inference, database, blob, publish
}

// RunPipeline runs one pipeline benchmark.
func RunPipeline(ctx context.Context, cfg PipelineConfig) (*PipelineResult, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	if len(cfg.Images) == 0 {
		return nil, errors.New("bench: no images")
	}
	svc := cfg.Service
	pack, err := modelpack.Lookup(svc.Models.Pack)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	// Keep the ONNX Runtime environment open across the pipeline run, for
	// the ceiling afterwards.
	rt, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: svc.ORT.Library})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer rt.Close()

	dsn, drop, err := CreateDatabase(ctx, svc.Database.URL.Value(), "pipeline")
	if err != nil {
		return nil, err
	}
	defer drop()
	svc.Database.URL = config.Secret(dsn)
	dataDir, err := os.MkdirTemp("", "facestream-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		natsURL string
		addrs   []string
		wait    func() error
	)
	switch cfg.Mode {
	case InProcess:
		natsURL, addrs, wait, err = startInProcess(runCtx, svc, dataDir, cfg.Logger)
	case MultiProcess:
		natsURL, addrs, wait, err = startMultiProcess(runCtx, svc, dataDir, cfg)
	default:
		err = fmt.Errorf("bench: unknown mode %q", cfg.Mode)
	}
	if err != nil {
		stop()
		if wait != nil {
			err = errors.Join(err, wait())
		}
		return nil, err
	}
	// The ceiling before the run, for the same number of images and the
	// face count of the previous images (the warm-up's share is unknown
	// here: one face per image, the test set's mean, is assumed).
	crops, err := faceCrops(rt, pack, svc.Models.Dir, cfg.Images, 64)
	if err != nil {
		stop()
		return nil, errors.Join(err, wait())
	}
	before, err := measureCeiling(rt, pack, svc.Models.Dir, svc.ORT.IntraOpThreads, svc.ORT.Spinning, Workload{Images: len(cfg.Images), Faces: len(cfg.Images), Crops: crops})
	if err != nil {
		stop()
		return nil, errors.Join(err, wait())
	}
	res, runErr := measure(runCtx, cfg, svc, natsURL, addrs)
	stop()
	if err := wait(); err != nil {
		cfg.Logger.Warn("pipeline stopped with an error", "err", err)
	}
	if runErr != nil {
		return nil, runErr
	}
	cfg.Logger.Info("measuring the raw model ceiling", "images", res.Images, "faces", res.Faces)
	threads, spin := svc.ORT.IntraOpThreads, svc.ORT.Spinning
	w := Workload{Images: res.Images, Faces: res.Faces, Crops: crops}
	if res.CeilingAfter, err = measureCeiling(rt, pack, svc.Models.Dir, threads, spin, w); err != nil {
		return nil, err
	}
	res.CeilingBefore = before
	res.Ceiling = res.CeilingAfter
	if before.Seconds > 0 && before.Images > 0 {
		// Per-image time of each replay, averaged.
		per := (before.Seconds/float64(before.Images) + res.CeilingAfter.Seconds/float64(res.CeilingAfter.Images)) / 2
		res.Ceiling.Seconds = per * float64(res.Images)
		res.Ceiling.ImagesPerSec = 1 / per
		res.Ceiling.FacesPerSec = float64(res.Faces) / res.Ceiling.Seconds
	}
	if res.Ceiling.ImagesPerSec > 0 {
		res.Efficiency = res.ImagesPerSec / res.Ceiling.ImagesPerSec
	}
	if res.CPUSeconds > 0 && before.Images > 0 {
		perImage := (before.CPUSeconds/float64(before.Images) + res.CeilingAfter.CPUSeconds/float64(res.CeilingAfter.Images)) / 2
		res.Ceiling.CPUSeconds = perImage * float64(res.Images)
		res.CPUEfficiency = res.Ceiling.CPUSeconds / res.CPUSeconds
	}
	for m, runs := range res.ModelRuns {
		if strings.HasPrefix(m, "det") || strings.Contains(m, "scrfd") || strings.Contains(m, "yunet") {
			w.ExtraDetections = max(int(runs)-res.Images, 0)
		}
	}
	if res.WorkCeiling, err = measureCeiling(rt, pack, svc.Models.Dir, threads, spin, w); err != nil {
		return nil, err
	}
	if res.WorkCeiling.ImagesPerSec > 0 {
		res.WorkEfficiency = res.ImagesPerSec / res.WorkCeiling.ImagesPerSec
	}
	return res, nil
}

// settingsOf lists the settings that shape performance.
func settingsOf(c config.Config) map[string]string {
	out := map[string]string{}
	for _, s := range config.Settings() {
		switch {
		case strings.HasPrefix(s.Name, "ort."), strings.HasPrefix(s.Name, "stage."), strings.HasPrefix(s.Name, "embed."), strings.HasPrefix(s.Name, "detect."), s.Name == "models.pack":
			if s.Name != "ort.library" {
				out[s.Name] = s.Value(c)
			}
		}
	}
	return out
}

// measure warms the pipeline up, then drives the images through it.
func measure(ctx context.Context, cfg PipelineConfig, svc config.Config, natsURL string, addrs []string) (*PipelineResult, error) {
	nc, err := nats.Connect(natsURL, nats.Name("facestream-bench"))
	if err != nil {
		return nil, fmt.Errorf("bench: connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	inline := int(svc.Limits.InlinePayloadMax)
	if len(cfg.Warmup) > 0 {
		cfg.Logger.Info("warming up", "images", len(cfg.Warmup))
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_, err := drive(wctx, js, cfg.Warmup, cfg.InFlight, inline)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("bench: warm up: %w", err)
		}
	}
	before, err := scrape(ctx, addrs)
	if err != nil {
		return nil, err
	}
	load0, cpu0 := loadAvg(), processCPU()
	cfg.Logger.Info("driving the pipeline", "mode", cfg.Mode, "images", len(cfg.Images), "in_flight", cfg.InFlight)
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	outs, err := drive(dctx, js, cfg.Images, cfg.InFlight, inline)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	// Let the last acks and metrics settle.
	time.Sleep(200 * time.Millisecond)
	cpu := processCPU() - cpu0
	after, err := scrape(ctx, addrs)
	if err != nil {
		return nil, err
	}
	delta := after.sub(before)
	res := summarizeRun(cfg.Mode, svc, outs, delta, after)
	res.LoadBefore, res.LoadAfter = load0, loadAvg()
	res.CPUSeconds = cpu
	if cfg.Mode == MultiProcess {
		res.CPUSeconds += delta["process_cpu_seconds_total"].Value
	}
	return res, nil
}

func summarizeRun(mode string, svc config.Config, outs []Outcome, delta, after snapshot) *PipelineResult {
	r := &PipelineResult{Mode: mode, Settings: settingsOf(svc), Images: len(outs), Rejected: map[string]int{}, Outcomes: outs,
		ModelRuns: map[string]float64{}, ModelMS: map[string]float64{}, CPUs: runtime.NumCPU()}
	var first, last time.Time
	lat := make([]time.Duration, 0, len(outs))
	for _, o := range outs {
		if first.IsZero() || o.Submitted.Before(first) {
			first = o.Submitted
		}
		if o.Done.After(last) {
			last = o.Done
		}
		lat = append(lat, o.Latency)
		r.Faces += o.Faces
		if o.Rejected != "" {
			r.Rejected[o.Rejected]++
		} else {
			r.Analyzed++
		}
	}
	r.Seconds = last.Sub(first).Seconds()
	if r.Seconds > 0 {
		r.ImagesPerSec = float64(r.Images) / r.Seconds
		r.FacesPerSec = float64(r.Faces) / r.Seconds
	}
	r.Latency = summarize(lat)
	for _, st := range service.AllStages() {
		h := delta[key("facestream_stage_handle_seconds", "stage", st)]
		if h.Count == 0 {
			continue
		}
		q := delta[key("facestream_stage_queue_wait_seconds", "stage", st)]
		s := StageSplit{Stage: st, Messages: h.Count, Handle: 1000 * h.Sum / h.Count, Steps: map[string]float64{}}
		if q.Count > 0 {
			s.QueueWait = 1000 * q.Sum / q.Count
		}
		for _, step := range []string{events.StepBlob, events.StepDecode, events.StepInference, events.StepDatabase, events.StepPublish} {
			if v := delta[key("facestream_stage_step_seconds", "stage", st, "step", step)]; v.Count > 0 {
				s.Steps[step] = 1000 * v.Sum / h.Count // per message of the stage
			}
		}
		r.Stages = append(r.Stages, s)
	}
	for k, v := range delta {
		if strings.HasPrefix(k, "facestream_model_inference_seconds{") && v.Count > 0 {
			m := strings.TrimSuffix(strings.TrimPrefix(k, `facestream_model_inference_seconds{model="`), `"}`)
			r.ModelRuns[m] = v.Count
			r.ModelMS[m] = 1000 * v.Sum / v.Count
		}
	}
	for n := range after.names() {
		if strings.HasPrefix(n, "facestream_") {
			r.Metrics = append(r.Metrics, n)
		}
	}
	slices.Sort(r.Metrics)
	return r
}

// startInProcess runs service.RunAll on a random NATS port and metrics port.
func startInProcess(ctx context.Context, svc config.Config, dataDir string, logger *slog.Logger) (string, []string, func() error, error) {
	p, err := runAll(ctx, svc, dataDir, logger)
	return p.natsURL, []string{p.metricsAddr}, p.wait, err
}

// inProcess is a service.RunAll started by runAll.
type inProcess struct {
	natsURL, metricsAddr, httpAddr string
	// wait returns RunAll's error once ctx is done; never nil once runAll
	// has returned.
	wait func() error
}

// runAll runs service.RunAll (every stage, the embedded NATS server on a
// random port, the HTTP API and the metrics server on free ports) until
// ctx ends, and returns once it is ready.
func runAll(ctx context.Context, svc config.Config, dataDir string, logger *slog.Logger) (inProcess, error) {
	var (
		p   inProcess
		err error
	)
	svc.Data.Dir = dataDir
	svc.NATS.Listen = "127.0.0.1:0"
	if p.metricsAddr, err = freeAddr(); err != nil {
		return p, err
	}
	if p.httpAddr, err = freeAddr(); err != nil {
		return p, err
	}
	svc.Metrics.Addr, svc.HTTP.Addr = p.metricsAddr, p.httpAddr
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- service.RunAll(ctx, svc, logger.With("component", "pipeline"), func(url string) { ready <- url })
	}()
	p.wait = func() error { return <-done }
	select {
	case p.natsURL = <-ready:
		return p, nil
	case err := <-done:
		done <- err
		return p, fmt.Errorf("bench: run: %w", err)
	case <-time.After(2 * time.Minute):
		return p, errors.New("bench: the pipeline did not start within 2 minutes")
	}
}

// startMultiProcess starts an embedded NATS server here and every stage
// binary as its own process against it.
func startMultiProcess(ctx context.Context, svc config.Config, dataDir string, cfg PipelineConfig) (string, []string, func() error, error) {
	srv, err := service.StartEmbeddedNATS("127.0.0.1:0", filepath.Join(dataDir, "jetstream"))
	if err != nil {
		return "", nil, nil, fmt.Errorf("bench: %w", err)
	}
	stopSrv := func() { srv.Shutdown(); srv.WaitForShutdown() }
	pool, err := pgxpool.New(ctx, svc.Database.URL.Value())
	if err != nil {
		stopSrv()
		return "", nil, nil, fmt.Errorf("bench: %w", err)
	}
	_, err = migrations.Up(ctx, pool)
	pool.Close()
	if err != nil {
		stopSrv()
		return "", nil, nil, fmt.Errorf("bench: migrate: %w", err)
	}
	svc.NATS.URL = config.Secret(srv.ClientURL())
	var (
		procs []*exec.Cmd
		addrs []string
		exits = make(chan error, 8)
	)
	wait := func() error {
		for _, p := range procs {
			_ = p.Process.Signal(os.Interrupt)
		}
		var errs []error
		for range procs {
			errs = append(errs, <-exits)
		}
		stopSrv()
		return errors.Join(errs...)
	}
	for _, b := range []config.Binary{config.Ingest, config.Detect, config.Embed, config.Attrs, config.Aggregate} {
		addr, err := freeAddr()
		if err != nil {
			return "", nil, wait, err
		}
		s := svc
		s.Metrics.Addr = addr
		s.Log.Level = "warn"
		path := filepath.Join(cfg.BinDir, string(b))
		if _, err := os.Stat(path); err != nil {
			return "", nil, wait, fmt.Errorf("bench: stage binary %s: %w (run `make build`)", path, err)
		}
		cmd := exec.Command(path)
		cmd.Env = append(os.Environ(), envOf(b, s)...)
		cmd.Stdout, cmd.Stderr = cfg.Stderr, cfg.Stderr
		if err := cmd.Start(); err != nil {
			return "", nil, wait, fmt.Errorf("bench: start %s: %w", b, err)
		}
		procs = append(procs, cmd)
		addrs = append(addrs, addr)
		go func() { exits <- cmd.Wait() }()
	}
	// Wait until every process is ready.
	deadline := time.Now().Add(2 * time.Minute)
	for _, a := range addrs {
		for {
			resp, err := http.Get("http://" + a + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return "", nil, wait, fmt.Errorf("bench: stage at %s not ready within 2 minutes", a)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return srv.ClientURL(), addrs, wait, nil
}

// envOf is the environment that gives binary b the settings of c.
func envOf(b config.Binary, c config.Config) []string {
	var out []string
	for _, s := range config.For(b) {
		out = append(out, s.Env+"="+s.Value(c))
	}
	return out
}

// freeAddr returns a free 127.0.0.1 TCP address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// CreateDatabase creates a fresh database (with the vector extension) on
// the server of adminDSN, whose role must be allowed to create databases,
// and returns its DSN and a function that drops it (WITH FORCE).
func CreateDatabase(ctx context.Context, adminDSN, purpose string) (string, func(), error) {
	if adminDSN == "" {
		return "", nil, errors.New("bench: no database URL (set FACESTREAM_DATABASE_URL)")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "facestream_bench_" + purpose + "_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", nil, fmt.Errorf("bench: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", nil, fmt.Errorf("bench: create database: %w", err)
	}
	cc, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		return "", nil, err
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(dctx, cc)
		if err != nil {
			return
		}
		defer c.Close(dctx)
		_, _ = c.Exec(dctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	}
	dsn := withDatabase(adminDSN, name)
	c2, err := pgx.Connect(ctx, dsn)
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("bench: connect to %s: %w", name, err)
	}
	defer c2.Close(context.WithoutCancel(ctx))
	if _, err := c2.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		drop()
		return "", nil, fmt.Errorf("bench: create extension vector: %w", err)
	}
	return dsn, drop, nil
}

// withDatabase replaces the database of a URL-form DSN.
func withDatabase(dsn, name string) string {
	q := ""
	if i := strings.IndexByte(dsn, '?'); i >= 0 {
		dsn, q = dsn[:i], dsn[i:]
	}
	if i := strings.LastIndexByte(dsn, '/'); i > len("postgres://") {
		dsn = dsn[:i]
	}
	return dsn + "/" + name + q
}

// TestImages lists the image files under dir (recursively), sorted.
func TestImages(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff":
			if !d.IsDir() {
				out = append(out, p)
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}
