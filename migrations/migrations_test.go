package migrations_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/migrations"
)

func all(t *testing.T) []migrations.Migration {
	t.Helper()
	ms, err := migrations.All()
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	return ms
}

func TestAllIsNumberedFromOne(t *testing.T) {
	ms := all(t)
	if len(ms) < 2 {
		t.Fatalf("got %d migrations, want at least 2", len(ms))
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d", i, m.Version)
		}
		if len(m.Checksum) != 64 || strings.TrimSpace(m.SQL) == "" {
			t.Errorf("%s: checksum %q, %d bytes of SQL", m, m.Checksum, len(m.SQL))
		}
	}
	if got := ms[0].String(); got != "0001_init" {
		t.Errorf("first migration is %s, want 0001_init", got)
	}
}

func TestLoadRejectsBadSets(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"bad name", fstest.MapFS{"0001_init.sql": sql, "2_more.sql": sql}, "2_more.sql: name is not NNNN_name.sql"},
		{"upper case", fstest.MapFS{"0001_Init.sql": sql}, "name is not NNNN_name.sql"},
		{"duplicate version", fstest.MapFS{"0001_a.sql": sql, "0001_b.sql": sql}, "share version 1"},
		{"gap", fstest.MapFS{"0001_a.sql": sql, "0003_c.sql": sql}, "0003_c: want version 2"},
		{"not from one", fstest.MapFS{"0002_b.sql": sql}, "want version 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := migrations.Load(tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: error %v, want one containing %q", err, tt.want)
			}
		})
	}
	ms, err := migrations.Load(fstest.MapFS{"0002_b.sql": sql, "0001_a.sql": sql, "README.md": sql})
	if err != nil || len(ms) != 2 || ms[0].Name != "a" || ms[1].Name != "b" {
		t.Fatalf("Load of a good set: %v, %v", ms, err)
	}
}

func states(t *testing.T, pool *pgxpool.Pool, r *migrations.Runner) map[string]migrations.State {
	t.Helper()
	st, err := r.Status(context.Background(), pool)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	out := map[string]migrations.State{}
	for _, s := range st {
		out[s.String()] = s.State
		if (s.State == migrations.StatePending) != s.AppliedAt.IsZero() {
			t.Errorf("%s: state %s with applied_at %v", s, s.State, s.AppliedAt)
		}
	}
	return out
}

func runner(t *testing.T, ms []migrations.Migration) *migrations.Runner {
	t.Helper()
	r, err := migrations.NewRunner(ms)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	return r
}

func TestUpFromEmptyThenNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	ms := all(t)
	r := runner(t, ms)

	for name, s := range states(t, pool, r) {
		if s != migrations.StatePending {
			t.Errorf("empty database: %s is %s, want pending", name, s)
		}
	}
	applied, err := migrations.Up(ctx, pool)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if len(applied) != len(ms) {
		t.Fatalf("Up applied %d migrations, want %d", len(applied), len(ms))
	}
	for name, s := range states(t, pool, r) {
		if s != migrations.StateApplied {
			t.Errorf("after Up: %s is %s, want applied", name, s)
		}
	}
	var before []time.Time
	if err := pool.QueryRow(ctx, "SELECT array_agg(applied_at ORDER BY version) FROM facestream.schema_migrations").Scan(&before); err != nil {
		t.Fatal(err)
	}

	again, err := migrations.Up(ctx, pool)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Up: applied %v, err %v; want nothing", again, err)
	}
	var after []time.Time
	if err := pool.QueryRow(ctx, "SELECT array_agg(applied_at ORDER BY version) FROM facestream.schema_migrations").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Errorf("second Up changed schema_migrations: %v, then %v", before, after)
	}
}

func TestEditedMigrationIsDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatalf("Up: %v", err)
	}
	edited := all(t)
	edited[0].SQL += "\n-- an innocent-looking edit\n"
	edited[0].Checksum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	edited = append(edited, migrations.Migration{Version: len(edited) + 1, Name: "later", SQL: "CREATE TABLE facestream.later ()", Checksum: strings.Repeat("a", 64)})
	r := runner(t, edited)

	_, err := r.Up(ctx, pool)
	if !errors.Is(err, migrations.ErrChecksumMismatch) {
		t.Fatalf("Up with an edited migration: %v, want ErrChecksumMismatch", err)
	}
	if !strings.Contains(err.Error(), "0001_init") {
		t.Errorf("error %q does not name the edited migration", err)
	}
	if got := states(t, pool, r)["0001_init"]; got != migrations.StateModified {
		t.Errorf("Status of the edited migration: %s, want modified", got)
	}
	var later bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('facestream.later') IS NOT NULL").Scan(&later); err != nil || later {
		t.Errorf("a pending migration ran despite the checksum mismatch (%v)", err)
	}
}

func TestNewerDatabaseIsTolerated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatalf("Up: %v", err)
	}
	older := runner(t, all(t)[:1])
	applied, err := older.Up(ctx, pool)
	if err != nil || len(applied) != 0 {
		t.Fatalf("Up of an older binary: applied %v, err %v", applied, err)
	}
	if got := states(t, pool, older)["0002_search"]; got != migrations.StateUnknown {
		t.Errorf("Status of a migration only the database knows: %s, want unknown", got)
	}
}

func TestFailingMigrationIsRolledBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	ms := all(t)
	bad := migrations.Migration{Version: len(ms) + 1, Name: "bad",
		SQL: "CREATE TABLE facestream.half_done (id int);\nSELECT 1/0;", Checksum: strings.Repeat("b", 64)}
	r := runner(t, append(ms, bad))

	applied, err := r.Up(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "apply "+bad.String()) {
		t.Fatalf("Up: %v, want an error naming %s", err, bad)
	}
	if len(applied) != len(ms) {
		t.Errorf("Up reported %d applied migrations, want the %d good ones", len(applied), len(ms))
	}
	var halfDone bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('facestream.half_done') IS NOT NULL").Scan(&halfDone); err != nil || halfDone {
		t.Errorf("the failed migration's table exists (%v): not rolled back", err)
	}
	if got := states(t, pool, r)[bad.String()]; got != migrations.StatePending {
		t.Errorf("failed migration is %s, want pending", got)
	}
	// The lock was released: a fixed set of migrations goes through.
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Errorf("Up after a failure: %v", err)
	}
}

// TestConcurrentUp starts several replicas at once, each with its own pool on
// the same database: the migrations run exactly once and nobody fails.
func TestConcurrentUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDSN(t)
	const replicas = 4
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	errs := make(chan error, replicas)
	for range replicas {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		wg.Go(func() {
			applied, err := migrations.Up(ctx, pool)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			total += len(applied)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Up: %v", err)
	}
	if want := len(all(t)); total != want {
		t.Errorf("%d replicas applied %d migrations in all, want %d (each exactly once)", replicas, total, want)
	}
}

// TestEverythingIsCommented keeps the schema self-documenting for users who
// query it directly (psql \dt+ and \df+).
func TestEverythingIsCommented(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewMigrated(t)
	rows, err := pool.Query(ctx, `
		SELECT 'table ' || c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'facestream' AND c.relkind IN ('r', 'v', 'm') AND obj_description(c.oid, 'pg_class') IS NULL
		UNION ALL
		SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'facestream' AND obj_description(p.oid, 'pg_proc') IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	var name string
	for rows.Next() {
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		missing = append(missing, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("without COMMENT ON: %s", strings.Join(missing, ", "))
	}
}
