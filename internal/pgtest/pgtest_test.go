package pgtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv("PGTEST_HELPER") != "" {
		// Re-executed by TestFailsLoudly: run only the helper test, as is.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

func TestNewGivesFreshDatabasesDroppedAfterwards(t *testing.T) {
	ctx := context.Background()
	var names []string
	t.Run("inner", func(t *testing.T) {
		for range 2 {
			pool := pgtest.New(t)
			var name string
			var dims int
			if err := pool.QueryRow(ctx, "SELECT current_database(), vector_dims($1::vector)", pgvector.NewVector([]float32{1, 2, 3})).Scan(&name, &dims); err != nil {
				t.Fatalf("query the test database: %v", err)
			}
			if dims != 3 || !strings.HasPrefix(name, "fstest_testnewgivesfresh") {
				t.Errorf("database %q, vector_dims %d", name, dims)
			}
			var tables int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").Scan(&tables); err != nil || tables != 0 {
				t.Errorf("fresh database has %d tables (%v)", tables, err)
			}
			names = append(names, name)
		}
		// A connection left open does not keep the database alive.
		conn, err := pgx.Connect(ctx, pgtest.NewDSN(t))
		if err != nil {
			t.Fatalf("connect to NewDSN's database: %v", err)
		}
		names = append(names, conn.Config().Database)
	})
	if len(names) != 3 || names[0] == names[1] {
		t.Fatalf("databases %v: want three distinct ones", names)
	}
	admin, err := pgx.Connect(ctx, os.Getenv(pgtest.EnvDSN))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var left int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d of %v still exist after the test (%v)", left, names, err)
	}
}

func TestNewMigrated(t *testing.T) {
	pool := pgtest.NewMigrated(t)
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM facestream.tenants WHERE id = 'default'").Scan(&n); err != nil || n != 1 {
		t.Errorf("migrated database: default tenant count %d (%v)", n, err)
	}
}

// TestFailsLoudly runs a test that asks for a database in a child process,
// with no DSN and with an unreachable server: it must fail and say what to
// do, never skip.
func TestFailsLoudly(t *testing.T) {
	for _, tt := range []struct{ name, dsn string }{
		{"unset", ""},
		{"unreachable", "postgres://facestream@127.0.0.1:1/facestream?sslmode=disable&connect_timeout=5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNeedsDatabase$", "-test.v")
			cmd.Env = append(os.Environ(), "PGTEST_HELPER=1", pgtest.EnvDSN+"="+tt.dsn)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the child test passed:\n%s", out)
			}
			text := string(out)
			if !strings.Contains(text, "--- FAIL: TestHelperNeedsDatabase") || strings.Contains(text, "SKIP") {
				t.Errorf("the child test did not fail outright:\n%s", text)
			}
			if !strings.Contains(text, "make test") {
				t.Errorf("the failure does not say to run `make test`:\n%s", text)
			}
		})
	}
}

// TestHelperNeedsDatabase does its work only in TestFailsLoudly's child process.
func TestHelperNeedsDatabase(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") == "" {
		return
	}
	pgtest.New(t)
}
