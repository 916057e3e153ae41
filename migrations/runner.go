package migrations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AdvisoryLockKey is the key of the session-level PostgreSQL advisory lock
// (pg_advisory_lock(bigint)) held while migrating: the ASCII bytes of
// "facemigr". Nothing else may use this key.
const AdvisoryLockKey int64 = 0x66616365_6d696772 // "facemigr"

// ErrChecksumMismatch reports an applied migration whose file has changed
// since it was applied. Match it with errors.Is.
var ErrChecksumMismatch = errors.New("applied migration was modified")

// State is where a migration stands in a database.
type State string

const (
	// StatePending: known to this binary, not applied yet.
	StatePending State = "pending"
	// StateApplied: applied, with the same checksum as this binary's file.
	StateApplied State = "applied"
	// StateModified: applied, but this binary's file differs (Up refuses to run).
	StateModified State = "modified"
	// StateUnknown: applied by another (newer) binary that knows more migrations.
	StateUnknown State = "unknown"
)

// MigrationStatus is one row of Status.
type MigrationStatus struct {
	Version int
	Name    string
	State   State
	// AppliedAt is when the migration was applied; zero when pending.
	AppliedAt time.Time
}

// String returns the migration's file name without .sql.
func (s MigrationStatus) String() string { return fmt.Sprintf("%04d_%s", s.Version, s.Name) }

// Runner applies a fixed list of migrations. It holds no connection and is
// safe for concurrent use; concurrent Up calls, from one process or many,
// serialise on the advisory lock.
type Runner struct {
	migrations []Migration
}

// NewRunner returns a Runner for ms, which must have versions 1..len(ms).
// Most callers want the package functions Up and Status, which use the
// embedded migrations.
func NewRunner(ms []Migration) (*Runner, error) {
	ms = slices.Clone(ms)
	if err := check(ms); err != nil {
		return nil, err
	}
	return &Runner{migrations: ms}, nil
}

// Up applies the embedded migrations to the database of pool; see Runner.Up.
func Up(ctx context.Context, pool *pgxpool.Pool) ([]Migration, error) {
	r, err := embeddedRunner()
	if err != nil {
		return nil, err
	}
	return r.Up(ctx, pool)
}

// Status reports the embedded migrations in the database of pool; see Runner.Status.
func Status(ctx context.Context, pool *pgxpool.Pool) ([]MigrationStatus, error) {
	r, err := embeddedRunner()
	if err != nil {
		return nil, err
	}
	return r.Status(ctx, pool)
}

func embeddedRunner() (*Runner, error) {
	ms, err := All()
	if err != nil {
		return nil, err
	}
	return NewRunner(ms)
}

const bootstrapSQL = `
CREATE SCHEMA IF NOT EXISTS facestream;
CREATE TABLE IF NOT EXISTS facestream.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
);
COMMENT ON TABLE facestream.schema_migrations IS 'Migrations applied by facestream migrate: version and name of the file, SHA-256 of its content, when and how long it took.';
`

// Up applies every pending migration in version order, each in its own
// transaction, and returns those it applied (none when the database is up to
// date). It holds AdvisoryLockKey on one connection throughout, waiting for
// it as long as ctx allows. Before applying anything it checks the checksums
// of the applied migrations and fails with ErrChecksumMismatch if one
// changed. A failing migration is rolled back and ends the run; those applied
// before it stay applied.
func (r *Runner) Up(ctx context.Context, pool *pgxpool.Pool) (applied []Migration, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", AdvisoryLockKey); err != nil {
		return nil, fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", AdvisoryLockKey); uerr != nil {
			// Closing the session releases the lock; the pool drops the closed connection.
			_ = conn.Conn().Close(uctx)
		}
	}()

	if _, err := conn.Exec(ctx, bootstrapSQL); err != nil {
		return nil, fmt.Errorf("migrate: create facestream.schema_migrations: %w", err)
	}
	done, err := appliedRows(ctx, conn.Conn())
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	for _, m := range r.migrations {
		if row, ok := done[m.Version]; ok && row.checksum != m.Checksum {
			return nil, fmt.Errorf("migrate: %s (applied %s): %w: its checksum is now %.12s…, was %.12s…; add a new migration instead of editing an applied one",
				m, row.appliedAt.Format(time.RFC3339), ErrChecksumMismatch, m.Checksum, row.checksum)
		}
	}
	for _, m := range r.migrations {
		if _, ok := done[m.Version]; ok {
			continue
		}
		if err := apply(ctx, conn.Conn(), m); err != nil {
			return applied, err
		}
		applied = append(applied, m)
	}
	return applied, nil
}

func apply(ctx context.Context, conn *pgx.Conn, m Migration) error {
	start := time.Now()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return err
		}
		_, err := tx.Exec(ctx,
			"INSERT INTO facestream.schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)",
			m.Version, m.Name, m.Checksum, time.Since(start).Milliseconds())
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: apply %s: %w", m, err)
	}
	return nil
}

// Status lists every migration known to this Runner or recorded in the
// database, in version order, with its State. It takes no lock and changes
// nothing; on an empty database every migration is pending.
func (r *Runner) Status(ctx context.Context, pool *pgxpool.Pool) ([]MigrationStatus, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: acquire connection: %w", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('facestream.schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	done := map[int]appliedRow{}
	if exists {
		if done, err = appliedRows(ctx, conn.Conn()); err != nil {
			return nil, fmt.Errorf("migration status: %w", err)
		}
	}
	var out []MigrationStatus
	for _, m := range r.migrations {
		s := MigrationStatus{Version: m.Version, Name: m.Name, State: StatePending}
		if row, ok := done[m.Version]; ok {
			s.State, s.AppliedAt = StateApplied, row.appliedAt
			if row.checksum != m.Checksum {
				s.State = StateModified
			}
			delete(done, m.Version)
		}
		out = append(out, s)
	}
	for v, row := range done {
		out = append(out, MigrationStatus{Version: v, Name: row.name, State: StateUnknown, AppliedAt: row.appliedAt})
	}
	slices.SortFunc(out, func(a, b MigrationStatus) int { return a.Version - b.Version })
	return out, nil
}

type appliedRow struct {
	name, checksum string
	appliedAt      time.Time
}

func appliedRows(ctx context.Context, conn *pgx.Conn) (map[int]appliedRow, error) {
	rows, err := conn.Query(ctx, "SELECT version, name, checksum, applied_at FROM facestream.schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read facestream.schema_migrations: %w", err)
	}
	done := map[int]appliedRow{}
	var (
		v   int
		row appliedRow
	)
	_, err = pgx.ForEachRow(rows, []any{&v, &row.name, &row.checksum, &row.appliedAt}, func() error {
		done[v] = row
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read facestream.schema_migrations: %w", err)
	}
	return done, nil
}
