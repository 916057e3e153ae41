package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/store"
	"github.com/facestream/facestream/pkg/events"
)

// rowsOf counts the rows an image has in images, faces and embeddings.
func rowsOf(t *testing.T, s *store.Store, imageID string) int {
	t.Helper()
	return count(t, s, `SELECT (SELECT count(*) FROM facestream.images WHERE id = $1)
 + (SELECT count(*) FROM facestream.faces WHERE image_id = $1)
 + (SELECT count(*) FROM facestream.embeddings e JOIN facestream.faces f ON f.id = e.face_id WHERE f.image_id = $1)`,
		store.ImageUUID(imageID))
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

// eraseImage runs facestream.erase_image on q.
func eraseImage(t *testing.T, ctx context.Context, q querier, tenant, imageID string) bool {
	t.Helper()
	var erased bool
	if err := q.QueryRow(ctx, `SELECT facestream.erase_image($1, $2)`, tenant, store.ImageUUID(imageID)).Scan(&erased); err != nil {
		t.Fatalf("erase %s: %v", imageID, err)
	}
	return erased
}

// TestErasedImageIsNeverStoredAgain: once facestream.erase_image has run,
// no path that writes an image row can store the image again — the
// aggregate stage's SaveAnalysis, the recorder's SaveRejection, or a plain
// insert like the HTTP edge's accepted row — and nothing of it is left.
func TestErasedImageIsNeverStoredAgain(t *testing.T) {
	s := store.New(pgtest.NewMigrated(t))
	ctx := ctxT(t)
	if err := s.SaveAnalysis(ctx, sampleAnalysis("gone", "acme", 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAnalysis(ctx, sampleAnalysis("kept", "acme", 1)); err != nil {
		t.Fatal(err)
	}
	if !eraseImage(t, ctx, s.Pool(), "acme", "gone") {
		t.Fatal("erase_image found nothing to erase")
	}

	err := s.SaveAnalysis(ctx, sampleAnalysis("gone", "acme", 2))
	if !errors.Is(err, store.ErrErased) || errors.Is(err, store.ErrInvalid) {
		t.Errorf("SaveAnalysis of an erased image: %v; want ErrErased (and not ErrInvalid)", err)
	}
	err = s.SaveRejection(ctx, store.Rejection{ImageID: "gone", Tenant: "acme", Reason: events.RejectNoFace, Pack: "dev"})
	if !errors.Is(err, store.ErrErased) {
		t.Errorf("SaveRejection of an erased image: %v; want ErrErased", err)
	}
	_, err = s.Pool().Exec(ctx, `INSERT INTO facestream.images (id, tenant_id, sha256, byte_size, status, model_pack)
VALUES ($1, 'acme', repeat('a', 64), 1, 'accepted', 'dev')`, store.ImageUUID("gone"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "ZF410" {
		t.Errorf("a plain insert of the erased image: %v; want SQLSTATE ZF410", err)
	}
	if n := rowsOf(t, s, "gone"); n != 0 {
		t.Errorf("the erased image has %d rows", n)
	}
	if n := rowsOf(t, s, "kept"); n != 3 {
		t.Errorf("the other image has %d rows, want 3", n)
	}
	for id, want := range map[string]bool{"gone": true, "kept": false, "never-seen": false} {
		if got, err := s.ImageErased(ctx, id); err != nil || got != want {
			t.Errorf("ImageErased(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	// The other image is stored again as usual.
	if err := s.SaveAnalysis(ctx, sampleAnalysis("kept", "acme", 1)); err != nil {
		t.Errorf("SaveAnalysis of an image that was not erased: %v", err)
	}
}

// TestErasureRacesWithWrite runs an erasure and a write of the same image
// concurrently, in both orders, each holding its transaction open until the
// other is seen waiting for it: whoever comes second waits for the first,
// and the image ends erased either way.
func TestErasureRacesWithWrite(t *testing.T) {
	s := store.New(pgtest.NewMigrated(t))
	ctx := ctxT(t)

	t.Run("erasure first, the write waits and is refused", func(t *testing.T) {
		// The image is in flight: only its accepted row (as the edge stores
		// it) or an earlier analysis exists.
		if err := s.SaveAnalysis(ctx, sampleAnalysis("race-1", "acme", 1)); err != nil {
			t.Fatal(err)
		}
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
		if !eraseImage(t, ctx, tx, "acme", "race-1") {
			t.Fatal("erase_image found nothing to erase")
		}
		done := make(chan error, 1)
		go func() { done <- s.SaveAnalysis(ctx, sampleAnalysis("race-1", "acme", 2)) }()
		waitForLockWaiter(t, ctx, s)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, store.ErrErased) {
			t.Errorf("the write that waited for the erasure: %v; want ErrErased", err)
		}
		if n := rowsOf(t, s, "race-1"); n != 0 {
			t.Errorf("the erased image has %d rows", n)
		}
	})

	t.Run("write first, the erasure waits and deletes what it wrote", func(t *testing.T) {
		// A first write of the image (no row before): without the image's
		// lock the erasure would find nothing and the image would stay.
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.Exec(ctx, `INSERT INTO facestream.images (id, tenant_id, sha256, byte_size, status, model_pack)
VALUES ($1, 'acme', repeat('a', 64), 1, 'accepted', 'dev')`, store.ImageUUID("race-2")); err != nil {
			t.Fatal(err)
		}
		done := make(chan bool, 1)
		go func() {
			var erased bool
			err := s.Pool().QueryRow(ctx, `SELECT facestream.erase_image('acme', $1)`, store.ImageUUID("race-2")).Scan(&erased)
			if err != nil {
				t.Error(err)
			}
			done <- erased
		}()
		waitForLockWaiter(t, ctx, s)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if !<-done {
			t.Error("the erasure that waited for the write found nothing to erase")
		}
		if n := rowsOf(t, s, "race-2"); n != 0 {
			t.Errorf("the erased image has %d rows", n)
		}
		if err := s.SaveAnalysis(ctx, sampleAnalysis("race-2", "acme", 1)); !errors.Is(err, store.ErrErased) {
			t.Errorf("a later write: %v; want ErrErased", err)
		}
	})
}

// waitForLockWaiter waits until a session of the test's database waits for
// a lock held by another (the image's lock, or a row's), polling with a
// deadline.
func waitForLockWaiter(t *testing.T, ctx context.Context, s *store.Store) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := count(t, s, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.datname = current_database()`)
		if n > 0 {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatal("no session ever waited for the image's lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
