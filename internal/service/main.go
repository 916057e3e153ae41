package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/facestream/facestream/internal/config"
)

// Main is the whole of a stage binary's main: it parses args (every setting
// of b as a flag, documented by --help, each also read from its environment
// variable through getenv), runs the stage until SIGINT or SIGTERM, drains,
// and returns the exit code.
func Main(b config.Binary, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := pflag.NewFlagSet(string(b), pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\nThe facestream %s stage: a JetStream pull consumer of the pipeline (see docs/pipeline.md).\nEvery flag can also be set by the environment variable it names.\n\nFlags:\n", b, b)
		fs.PrintDefaults()
	}
	config.AddFlags(fs, b)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(b, fs, getenv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	logger := cfg.Log.Logger(stderr).With("binary", string(b))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := RunStage(ctx, b, cfg, logger); err != nil {
		logger.Error("stage failed", "err", err)
		return 1
	}
	logger.Info("stage stopped")
	return 0
}
