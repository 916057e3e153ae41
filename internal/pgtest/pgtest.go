package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/facestream/facestream/migrations"
)

// EnvDSN names the environment variable that holds the DSN of a role allowed
// to create databases.
const EnvDSN = "FACESTREAM_TEST_DSN"

// setupTimeout bounds creating or dropping one test database.
const setupTimeout = 30 * time.Second

// New creates a fresh, empty database (with the vector extension) for t and
// returns a pool on it. The pool knows pgvector's types (vector, halfvec,
// sparsevec). The pool is closed and the database dropped when t ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return open(t, NewDSN(t))
}

// NewMigrated is New followed by migrations.Up: a database with the whole
// facestream schema.
func NewMigrated(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatalf("pgtest: migrate test database: %v", err)
	}
	return pool
}

// NewDSN creates a fresh, empty database for t and returns its DSN, for code
// under test that opens its own connections. The database is dropped WITH
// (FORCE) when t ends, so connections left open do not keep it alive.
func NewDSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvDSN)
	if admin == "" {
		t.Fatalf("pgtest: %s is not set: run the tests with `make test`, which sets it and starts PostgreSQL with pgvector", EnvDSN)
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", EnvDSN, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: connect to %s (%s): %v: run `make test`, which installs and starts PostgreSQL", EnvDSN, redact(admin), err)
	}
	defer conn.Close(context.Background())

	name := dbName(t.Name())
	ident := pgx.Identifier{name}.Sanitize()
	if err := createDatabase(ctx, conn, ident); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, cfg, ident) })

	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := ensureVector(ctx, dsn); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// open returns a pool on dsn with pgvector's types registered, closed when t ends.
func open(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgtest: parse test database DSN: %v", err)
	}
	cfg.AfterConnect = pgxvec.RegisterTypes
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("pgtest: ping test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// createDatabase creates the database, retrying while template1 is busy: two
// CREATE DATABASE statements may not copy it at the same moment.
func createDatabase(ctx context.Context, conn *pgx.Conn, ident string) error {
	for {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+ident)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func dropDatabase(t testing.TB, cfg *pgx.ConnConfig, ident string) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Errorf("pgtest: connect to drop database %s: %v", ident, err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", ident, err)
	}
}

// ensureVector creates the vector extension in a database that did not get
// it from template1.
func ensureVector(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to test database: %w", err)
	}
	defer conn.Close(context.Background())
	var have bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')").Scan(&have); err != nil {
		return fmt.Errorf("look up the vector extension: %w", err)
	}
	if have {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION vector"); err != nil {
		return fmt.Errorf("create extension vector (run `make test`: scripts/setup.sh installs pgvector into template1): %w", err)
	}
	return nil
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// dbName is a valid, unique database name that still says which test made it.
func dbName(test string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	slug := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(test), "_"), "_")
	if len(slug) > 36 {
		slug = slug[:36]
	}
	return "fstest_" + slug + "_" + hex.EncodeToString(b[:])
}

// withDatabase returns dsn with its database replaced by name. It accepts
// both URL and keyword/value DSNs.
func withDatabase(dsn, name string) (string, error) {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return dsn + " dbname=" + name, nil
}

var kvPassword = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redact hides the password of a DSN for error messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && strings.Contains(dsn, "://") {
		return u.Redacted()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
}
