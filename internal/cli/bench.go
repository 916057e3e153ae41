package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/facestream/facestream/internal/bench"
	"github.com/facestream/facestream/internal/config"
)

// newBenchCommand returns `facestream bench`: the pipeline benchmark (in
// one process and/or as the stage binaries) against the raw model ceiling,
// and the similarity-search benchmark; see internal/bench and
// docs/benchmarks.md.
func newBenchCommand(s Streams, getenv func(string) string) *cobra.Command {
	var (
		mode, images, out, binDir string
		cpuProfile                string
		n, warmup, inFlight       int
		rounds                    int
		timeout                   time.Duration
		search                    bench.SearchConfig
		efs                       []int
		searchIndexes             string
		syncRun                   bench.SyncConfig
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the pipeline against the raw model ceiling, and similarity search at scale",
		Long: `bench drives images through the whole pipeline and reports images/s, faces/s, end-to-end
latency p50/p95/p99 and where each stage's time went (queue wait, decode, inference, publish,
database), then replays the same model work through bare ONNX Runtime sessions with the same
thread budget: efficiency = pipeline throughput ÷ that ceiling. --mode in-process runs every
stage in this process (like 'facestream run'); multi-process starts the stage binaries of
--bin-dir. With --search-vectors it also stores that many clustered embeddings and measures
top-10 search latency and recall@10 per hnsw.ef_search. Every run uses a fresh database on
the server of --database-url (its role must be allowed to create databases), dropped after.
It writes report.md, report.json and a PNG chart per pipeline run into --out.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	config.AddFlags(f, config.Run)
	f.StringVar(&mode, "mode", bench.InProcess, "pipeline runs: in-process, multi-process, both, or none")
	f.StringVar(&images, "images", "", "folder of test images (default $FACESTREAM_TESTDATA)")
	f.IntVar(&n, "n", 0, "distinct images measured, each submitted --rounds times (0: every image found after the warm-up ones)")
	f.IntVar(&rounds, "rounds", 3, "times every measured image is submitted; the repeats are byte-distinct variants of the same picture (a JPEG comment, a PNG text chunk), which the result cache does not answer, so each costs a full analysis")
	f.IntVar(&warmup, "warmup", 6, "images submitted first and not measured")
	f.IntVar(&inFlight, "in-flight", 16, "images between submission and result at most")
	f.DurationVar(&timeout, "timeout", 3*time.Minute, "bound of one measured pipeline run")
	f.StringVar(&out, "out", "bench-out", "folder of the report")
	f.StringVar(&binDir, "bin-dir", "bin", "folder of the stage binaries (multi-process)")
	f.DurationVar(&syncRun.Duration, "sync-duration", 0, "after the pipeline runs, send single-image POST /v1/analyze requests (Poisson arrivals) for this long against the in-process pipeline and its HTTP API, each latency against 2 × the image's bare model time + 20 ms; 0 skips it")
	f.Float64Var(&syncRun.Load, "sync-load", 0.5, "share of the measured in-process capacity the sync-latency requests offer")
	f.Float64Var(&syncRun.Capacity, "sync-capacity", 0, "capacity (images/s) the sync-latency load is a share of, instead of this run's in-process throughput (to compare settings at one offered rate); 0: this run's in-process throughput, or measured before the load when there is none")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of this process (the in-process pipeline, the ceiling replays) to this file")
	f.IntVar(&search.Vectors, "search-vectors", 0, "stored embeddings of the search benchmark; 0 skips it")
	f.IntVar(&search.Dim, "search-dim", 128, "embedding dimension of the search benchmark (the dev recognizer's)")
	f.IntVar(&search.FacesPerIdentity, "search-faces-per-identity", 5, "mean faces per identity (cluster size)")
	f.IntVar(&search.Queries, "search-queries", 200, "search queries")
	f.IntVar(&search.IntrinsicDim, "search-intrinsic-dim", 48, "identity centres drawn from a subspace of this dimension, as real embeddings are (impostor cosine std ≈ 1/sqrt(n)); 0: uniform on the whole sphere")
	f.IntSliceVar(&efs, "search-ef", []int{40, 100, 200, 400}, "hnsw.ef_search values measured")
	f.StringVar(&search.MaintenanceWorkMem, "search-maintenance-work-mem", "2GB", "maintenance_work_mem of the index build")
	f.StringVar(&searchIndexes, "search-index", "", "HNSW indexes built and measured one after the other over the same data, comma-separated m:ef_construction[:halfvec] or production (default: production, what ensure_embedding_index builds)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(config.Run, f, getenv)
		if err != nil {
			return err
		}
		if search.Indexes, err = bench.ParseSearchIndexes(searchIndexes); err != nil {
			return fmt.Errorf("--search-index: %w", err)
		}
		logger := cfg.Log.Logger(cmd.ErrOrStderr()).With("binary", "bench")
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		host, _ := os.Hostname()
		if cpuProfile != "" {
			pf, err := os.Create(cpuProfile)
			if err != nil {
				return err
			}
			defer pf.Close()
			if err := pprof.StartCPUProfile(pf); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		rep := &bench.Report{Command: "facestream " + strings.Join(os.Args[1:], " "), Started: time.Now(), Host: host}

		var modes []string
		switch mode {
		case "both":
			modes = []string{bench.InProcess, bench.MultiProcess}
		case "none":
		case bench.InProcess, bench.MultiProcess:
			modes = []string{mode}
		default:
			return fmt.Errorf("--mode %q: want in-process, multi-process, both or none", mode)
		}
		if len(modes) > 0 {
			if images == "" {
				images = getenv("FACESTREAM_TESTDATA")
			}
			if images == "" {
				return errors.New("no images: pass --images or set FACESTREAM_TESTDATA")
			}
			all, err := bench.TestImages(images)
			if err != nil {
				return err
			}
			if len(all) <= warmup {
				return fmt.Errorf("only %d images under %s", len(all), images)
			}
			// The last warmup images warm up; the measured ones are distinct
			// (a repeated image would be answered from the result cache).
			warm, measured := all[len(all)-warmup:], all[:len(all)-warmup]
			if n > 0 && n < len(measured) {
				measured = measured[:n]
			} else if n > len(measured) {
				return fmt.Errorf("-n %d: only %d distinct images under %s besides the %d warm-up ones", n, len(measured), images, warmup)
			}
			if rounds < 1 {
				return fmt.Errorf("--rounds %d: want at least 1", rounds)
			}
			one := measured
			for range rounds - 1 {
				measured = append(measured, one...)
			}
			for _, m := range modes {
				res, err := bench.RunPipeline(ctx, bench.PipelineConfig{
					Service: cfg, Mode: m, Images: measured, Warmup: warm, InFlight: inFlight,
					BinDir: binDir, Timeout: timeout, Logger: logger, Stderr: cmd.ErrOrStderr(),
				})
				if err != nil {
					return err
				}
				rep.Pipelines = append(rep.Pipelines, res)
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %.2f images/s, %.2f faces/s, latency p50 %.0f ms p95 %.0f ms p99 %.0f ms; ceiling %.2f images/s (before %.2f, after %.2f); efficiency %.2f; against the pipeline's own model work %.2f; CPU efficiency %.2f (load %.1f)\n",
					m, res.ImagesPerSec, res.FacesPerSec, res.Latency.P50, res.Latency.P95, res.Latency.P99, res.Ceiling.ImagesPerSec,
					res.CeilingBefore.ImagesPerSec, res.CeilingAfter.ImagesPerSec, res.Efficiency, res.WorkEfficiency, res.CPUEfficiency, res.LoadAfter)
			}
		}
		if syncRun.Duration > 0 {
			if err := runSyncLatency(ctx, cmd, cfg, logger, syncRun, rep, images, warmup, n, inFlight, getenv); err != nil {
				return err
			}
		}
		if search.Vectors > 0 {
			search.AdminDSN = cfg.Database.URL.Value()
			search.EfSearch = efs
			search.Seed = 1
			search.Logger = logger
			res, err := bench.RunSearch(ctx, search)
			if err != nil {
				return err
			}
			rep.Search = res
			for _, r := range res.Indexes {
				if c := r.Chosen; c != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "search %d vectors, index %s: ef_search %d p50 %.2f ms p95 %.2f ms recall@10 %.3f; copy %.0f rows/s; index %.1f s\n",
						res.Vectors, r.Index, c.EfSearch, c.P50MS, c.P95MS, c.Recall10, res.EmbeddingRowsPerSec, r.BuildSeconds)
				}
			}
		}
		files, err := rep.Write(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", strings.Join(files, ", "))
		return nil
	}
	_ = s
	return cmd
}

// runSyncLatency runs the sync-latency step (bench.RunSync) over the test
// images besides the warm-up ones, at --sync-load of the in-process
// throughput this run measured (or of a capacity it measures itself when
// there is none), and adds it to rep.
func runSyncLatency(ctx context.Context, cmd *cobra.Command, cfg config.Config, logger *slog.Logger, sc bench.SyncConfig, rep *bench.Report, images string, warmup, n, inFlight int, getenv func(string) string) error {
	if images == "" {
		images = getenv("FACESTREAM_TESTDATA")
	}
	if images == "" {
		return errors.New("sync latency: no images: pass --images or set FACESTREAM_TESTDATA")
	}
	all, err := bench.TestImages(images)
	if err != nil {
		return err
	}
	if len(all) <= warmup {
		return fmt.Errorf("sync latency: only %d images under %s", len(all), images)
	}
	sc.Warmup, sc.Images = all[len(all)-warmup:], all[:len(all)-warmup]
	if n > 0 && n < len(sc.Images) {
		sc.Images = sc.Images[:n]
	}
	if sc.Capacity > 0 {
		sc.CapacitySource = "--sync-capacity"
	}
	for _, p := range rep.Pipelines {
		if p.Mode == bench.InProcess && sc.Capacity <= 0 {
			sc.Capacity = p.ImagesPerSec
			sc.CapacitySource = fmt.Sprintf("this run's in-process pipeline: %d images, %d in flight", p.Images, inFlight)
		}
	}
	sc.Service, sc.InFlight, sc.Seed, sc.Logger = cfg, inFlight, 1, logger
	res, err := bench.RunSync(ctx, sc)
	if err != nil {
		return err
	}
	rep.Sync = res
	fmt.Fprintf(cmd.OutOrStdout(), "sync latency: %.2f requests/s offered (%.0f %% of %.2f images/s), %.2f achieved; latency p50 %.0f ms p95 %.0f ms p99 %.0f ms; within 2×model+20ms: %.1f %%, p99 of latency−bound %+.0f ms: pass %v (strict, one detector run: %.1f %%, %+.0f ms, pass %v)\n",
		res.OfferedRate, 100*res.Load, res.Capacity, res.AchievedRate, res.Latency.P50, res.Latency.P95, res.Latency.P99,
		100*res.Target.Within, res.Target.OverP99MS, res.Target.Pass, 100*res.Strict.Within, res.Strict.OverP99MS, res.Strict.Pass)
	return nil
}
