package cli

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/service"
)

// newRunCommand returns `facestream run`: the embedded default, everything
// in one process (see service.RunAll).
func newRunCommand(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run everything in one process: an embedded NATS server and every pipeline stage",
		Long: `run starts the whole pipeline in one process: an embedded NATS server with JetStream
(its store in --data-dir, max_payload 8 MB, listening on --nats-listen so that
'facestream submit' and extra stage replicas can connect), the database migrations, and
every stage (ingest, detect, embed, attrs, aggregate and the rejection recorder) sharing
one ONNX Runtime, against the PostgreSQL database of --database-url.

It runs until interrupted (Ctrl-C or SIGTERM), then drains: messages in flight are
finished before it exits. Every flag can also be set by the environment variable it names.`,
		Args: cobra.NoArgs,
	}
	config.AddFlags(cmd.Flags(), config.Run)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(config.Run, cmd.Flags(), getenv)
		if err != nil {
			return err
		}
		logger := cfg.Log.Logger(cmd.ErrOrStderr()).With("binary", "run")
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		err = service.RunAll(ctx, cfg, logger, func(url string) {
			fmt.Fprintf(cmd.OutOrStdout(), "facestream is running: NATS at %s, metrics at %s, HTTP API at %s (docs/api.md). Submit images with 'facestream submit FILE|DIR'; Ctrl-C stops.\n", url, cfg.Metrics.Addr, cfg.HTTP.Addr)
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "facestream stopped")
		return nil
	}
	return cmd
}
