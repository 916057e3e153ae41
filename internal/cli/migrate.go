package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/migrations"
)

// newMigrateCommand returns `facestream migrate [up|status]`.
func newMigrateCommand(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate [up|status]",
		Short: "Apply the PostgreSQL schema migrations, or show where they stand",
		Long: `migrate applies the schema migrations built into this binary (the default, same as
"migrate up"), or lists them with "migrate status".

Each migration runs in its own transaction and is recorded in
facestream.schema_migrations with its checksum. An advisory lock lets replicas run
"migrate up" at the same time: one migrates, the others wait and find nothing to do.
A migration edited after it was applied is an error: add a new one instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd, getenv, migrateUp)
		},
	}
	config.AddFlags(cmd.PersistentFlags(), config.Migrate)
	cmd.AddCommand(
		&cobra.Command{
			Use:   "up",
			Short: "Apply every pending migration (the default)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runMigrate(cmd, getenv, migrateUp)
			},
		},
		&cobra.Command{
			Use:   "status",
			Short: "List the migrations and whether each is applied, pending, modified or unknown",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runMigrate(cmd, getenv, migrateStatus)
			},
		},
	)
	return cmd
}

type migrateAction func(ctx context.Context, pool *pgxpool.Pool, out io.Writer, log *slog.Logger) error

func runMigrate(cmd *cobra.Command, getenv func(string) string, action migrateAction) error {
	cfg, err := config.Load(config.Migrate, cmd.Flags(), getenv)
	if err != nil {
		return err
	}
	log := cfg.Log.Logger(cmd.ErrOrStderr()).With("component", "migrate")
	pcfg, err := pgxpool.ParseConfig(cfg.Database.URL.Value())
	if err != nil {
		return fmt.Errorf("migrate: parse database URL %s: %w", cfg.Database.URL, err)
	}
	pcfg.MaxConns = 2
	ctx := cmd.Context()
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("migrate: open database %s: %w", cfg.Database.URL, err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("migrate: connect to %s: %w", cfg.Database.URL, err)
	}
	return action(ctx, pool, cmd.OutOrStdout(), log)
}

func migrateUp(ctx context.Context, pool *pgxpool.Pool, out io.Writer, log *slog.Logger) error {
	start := time.Now()
	applied, err := migrations.Up(ctx, pool)
	for _, m := range applied {
		fmt.Fprintf(out, "applied %s\n", m)
	}
	if err != nil {
		return err
	}
	all, err := migrations.All()
	if err != nil {
		return err
	}
	version := all[len(all)-1].Version
	if len(applied) == 0 {
		fmt.Fprintf(out, "schema is up to date at version %d\n", version)
	} else {
		fmt.Fprintf(out, "schema is at version %d\n", version)
	}
	log.Info("migrated", "applied", len(applied), "version", version, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

func migrateStatus(ctx context.Context, pool *pgxpool.Pool, out io.Writer, _ *slog.Logger) error {
	status, err := migrations.Status(ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
	var pending, modified int
	for _, s := range status {
		at := "-"
		if !s.AppliedAt.IsZero() {
			at = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%04d\t%s\t%s\t%s\n", s.Version, s.Name, s.State, at)
		switch s.State {
		case migrations.StatePending:
			pending++
		case migrations.StateModified:
			modified++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if modified > 0 {
		return fmt.Errorf("migrate status: %d applied migration(s) modified since: %w", modified, migrations.ErrChecksumMismatch)
	}
	if pending > 0 {
		fmt.Fprintf(out, "%d pending: run facestream migrate up\n", pending)
	}
	return nil
}
