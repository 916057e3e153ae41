package migrations_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/facestream/facestream/internal/pgtest"
)

// TestErasuresBeforeTombstonesStayErased: images erased by a release
// before 0003_erasure left only their audit rows. The migration turns those
// into tombstones, so that their ids are refused like those erased after.
func TestErasuresBeforeTombstonesStayErased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	ms := all(t)
	if len(ms) < 3 || ms[2].String() != "0003_erasure" {
		t.Fatalf("migration 3 is %v, want 0003_erasure", ms[2])
	}
	if _, err := runner(t, ms[:2]).Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	addTenant(t, pool, "acme")
	before, kept := addImage(t, pool, "acme"), addImage(t, pool, "acme")
	var erased bool
	if err := pool.QueryRow(ctx, "SELECT facestream.erase_image('acme', $1)", before).Scan(&erased); err != nil || !erased {
		t.Fatalf("erase_image of 0001: %v, %v", erased, err)
	}
	if _, err := runner(t, ms).Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.erased_images WHERE image_id = $1 AND tenant_id = 'acme'", before); n != 1 {
		t.Errorf("tombstones of the earlier erasure: %d, want 1", n)
	}
	_, err := pool.Exec(ctx, `INSERT INTO facestream.images (id, tenant_id, sha256, byte_size, status, model_pack)
VALUES ($1, 'acme', repeat('a', 64), 1, 'accepted', 'dev')`, before)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "ZF410" {
		t.Errorf("storing an image erased before the migration again: %v; want SQLSTATE ZF410", err)
	}
	// erase_image now leaves a tombstone itself.
	if err := pool.QueryRow(ctx, "SELECT facestream.erase_image('acme', $1)", kept).Scan(&erased); err != nil || !erased {
		t.Fatalf("erase_image of 0003: %v, %v", erased, err)
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.erased_images WHERE image_id = $1", kept); n != 1 {
		t.Errorf("tombstones of a new erasure: %d, want 1", n)
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.audit_log WHERE action = 'image.erase' AND target = $1", uuidString(kept)); n != 1 {
		t.Errorf("audit rows of a new erasure: %d, want 1", n)
	}
}

// TestBulkInsertKeepsImageLocksBounded: one transaction storing 20,000
// images (a COPY, a bulk import) must not run out of the server's lock
// table. The erasure trigger locks each image's bucket (0004), so the
// transaction holds at most 1024 image locks; with a lock per image (0003)
// it failed with SQLSTATE 53200.
func TestBulkInsertKeepsImageLocksBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.New(t)
	if _, err := runner(t, all(t)).Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	addTenant(t, pool, "bulk")
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO facestream.images (id, tenant_id, sha256, byte_size, status, model_pack)
SELECT gen_random_uuid(), 'bulk', repeat('b', 64), 1, 'accepted', 'dev' FROM generate_series(1, 20000)`); err != nil {
		t.Fatalf("inserting 20,000 images in one transaction: %v", err)
	}
	var locks int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`).Scan(&locks); err != nil {
		t.Fatal(err)
	}
	if locks == 0 || locks > 1024 {
		t.Errorf("the transaction holds %d advisory locks; want between 1 and 1024", locks)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
