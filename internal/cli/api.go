package cli

import (
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/service"
)

// newAPICommand returns `facestream api`: the HTTP edge alone.
func newAPICommand(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Serve the HTTP API alone, in front of stages running elsewhere",
		Long: `api serves the HTTP API (docs/api.md) on --http-addr against the NATS server of
--nats-url and the database of --database-url; the pipeline stages run in their own
processes. Any number of api replicas can run: they are stateless (rate limits are
per replica). Every flag can also be set by the environment variable it names.`,
		Args: cobra.NoArgs,
	}
	config.AddFlags(cmd.Flags(), config.API)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(config.API, cmd.Flags(), getenv)
		if err != nil {
			return err
		}
		logger := cfg.Log.Logger(cmd.ErrOrStderr()).With("binary", "api")
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return service.RunAPI(ctx, cfg, logger)
	}
	return cmd
}
