package migrations_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgvector/pgvector-go"

	"github.com/facestream/facestream/internal/pgtest"
)

func TestDeletingAnImageCascades(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewMigrated(t)
	exec(t, pool, "SELECT facestream.ensure_embedding_index('m4', 4)")
	img := addImage(t, pool, "default")
	keep := addImage(t, pool, "default")
	for i := range 3 {
		f := addFace(t, pool, "default", img, i)
		exec(t, pool, "INSERT INTO facestream.embeddings (face_id, tenant_id, model, dim, embedding) VALUES ($1, 'default', 'm4', 4, $2)",
			f, pgvector.NewVector([]float32{1, 0, 0, float32(i)}))
	}
	kf := addFace(t, pool, "default", keep, 0)
	exec(t, pool, "INSERT INTO facestream.embeddings (face_id, tenant_id, model, dim, embedding) VALUES ($1, 'default', 'm4', 4, '[0,1,0,0]')", kf)

	exec(t, pool, "DELETE FROM facestream.images WHERE id = $1", img)
	if n := count(t, pool, "SELECT count(*) FROM facestream.faces WHERE image_id = $1", img); n != 0 {
		t.Errorf("%d faces of the deleted image remain", n)
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.embeddings"); n != 1 {
		t.Errorf("%d embeddings remain, want only the other image's 1", n)
	}

	// erase_image does the same for one tenant, and leaves an audit row.
	var erased bool
	if err := pool.QueryRow(ctx, "SELECT facestream.erase_image('other', $1)", keep).Scan(&erased); err != nil || erased {
		t.Fatalf("erase_image of another tenant's image: %v, %v; want false", erased, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET facestream.actor = 'cli:test'"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT facestream.erase_image('default', $1)", keep).Scan(&erased); err != nil || !erased {
		t.Fatalf("erase_image: %v, %v; want true", erased, err)
	}
	var actor, action, details string
	if err := conn.QueryRow(ctx, "SELECT actor, action, details::text FROM facestream.audit_log WHERE target = $1", uuidString(keep)).Scan(&actor, &action, &details); err != nil {
		t.Fatalf("audit row of the erasure: %v", err)
	}
	if actor != "cli:test" || action != "image.erase" || details != `{"faces": 1}` {
		t.Errorf("audit row: %s %s %s", actor, action, details)
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.faces"); n != 0 {
		t.Errorf("%d faces remain after erasing every image", n)
	}
}

func TestSubjectsAndFaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewMigrated(t)
	addTenant(t, pool, "other")
	var subject, foreign [16]byte
	if err := pool.QueryRow(ctx, "INSERT INTO facestream.subjects (tenant_id, name, metadata) VALUES ('default', 'Ada', '{\"employee\": 7}') RETURNING id").Scan(&subject); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "INSERT INTO facestream.subjects (tenant_id, name) VALUES ('other', 'Bob') RETURNING id").Scan(&foreign); err != nil {
		t.Fatal(err)
	}
	img := addImage(t, pool, "default")
	f1 := addFace(t, pool, "default", img, 0)
	f2 := addFace(t, pool, "default", img, 1)
	exec(t, pool, "UPDATE facestream.faces SET subject_id = $1 WHERE id IN ($2, $3)", subject, f1, f2)

	// A face cannot be enrolled as another tenant's subject.
	_, err := pool.Exec(ctx, "UPDATE facestream.faces SET subject_id = $1 WHERE id = $2", foreign, f1)
	wantCode(t, err, "23503")

	// The aggregate stage upserts faces by (image_id, face_index).
	tag, err := pool.Exec(ctx, `INSERT INTO facestream.faces
		(tenant_id, image_id, face_index, box_x1, box_y1, box_x2, box_y2, landmarks, det_score, model_pack, age)
		VALUES ('default', $1, 0, 10, 20, 110, 140, '{30,50,80,50,55,80,35,110,75,110}', 0.9, 'dev', 33)
		ON CONFLICT (image_id, face_index) DO UPDATE SET age = EXCLUDED.age`, img)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("upsert of a face: %v, %v", tag, err)
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.faces WHERE image_id = $1 AND age = 33 AND subject_id IS NOT NULL", img); n != 1 {
		t.Errorf("upsert: %d updated faces, want 1 keeping its subject", n)
	}

	// Deleting a subject keeps its faces but unlinks them.
	exec(t, pool, "DELETE FROM facestream.subjects WHERE id = $1", subject)
	if n := count(t, pool, "SELECT count(*) FROM facestream.faces WHERE image_id = $1 AND subject_id IS NULL AND tenant_id = 'default'", img); n != 2 {
		t.Errorf("after deleting the subject: %d unlinked faces, want 2", n)
	}

	// erase_subject removes the subject's reference faces too.
	var again [16]byte
	if err := pool.QueryRow(ctx, "INSERT INTO facestream.subjects (tenant_id, name) VALUES ('default', 'Ada') RETURNING id").Scan(&again); err != nil {
		t.Fatal(err)
	}
	exec(t, pool, "UPDATE facestream.faces SET subject_id = $1 WHERE id = $2", again, f2)
	var erased bool
	if err := pool.QueryRow(ctx, "SELECT facestream.erase_subject('default', $1)", again).Scan(&erased); err != nil || !erased {
		t.Fatalf("erase_subject: %v, %v", erased, err)
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.faces WHERE id = $1", f2); n != 0 {
		t.Errorf("erase_subject left its reference face")
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.audit_log WHERE action = 'subject.erase' AND target = $1", uuidString(again)); n != 1 {
		t.Errorf("erase_subject wrote %d audit rows, want 1", n)
	}
}

func TestConstraints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewMigrated(t)
	addTenant(t, pool, "other")
	exec(t, pool, "SELECT facestream.ensure_embedding_index('m4', 4)")
	img := addImage(t, pool, "default")
	face := addFace(t, pool, "default", img, 0)
	hash := sha256.Sum256([]byte("k"))

	tests := []struct {
		name, sql string
		args      []any
		code      string
	}{
		{"face in another tenant's image", `INSERT INTO facestream.faces (tenant_id, image_id, face_index, box_x1, box_y1, box_x2, box_y2, landmarks, det_score, model_pack)
			VALUES ('other', $1, 5, 0, 0, 1, 1, '{0,0,0,0,0,0,0,0,0,0}', 0.5, 'dev')`, []any{img}, "23503"},
		{"duplicate face index", `INSERT INTO facestream.faces (tenant_id, image_id, face_index, box_x1, box_y1, box_x2, box_y2, landmarks, det_score, model_pack)
			VALUES ('default', $1, 0, 0, 0, 1, 1, '{0,0,0,0,0,0,0,0,0,0}', 0.5, 'dev')`, []any{img}, "23505"},
		{"four landmarks", `INSERT INTO facestream.faces (tenant_id, image_id, face_index, box_x1, box_y1, box_x2, box_y2, landmarks, det_score, model_pack)
			VALUES ('default', $1, 9, 0, 0, 1, 1, '{0,0,0,0,0,0,0,0}', 0.5, 'dev')`, []any{img}, "23514"},
		{"embedding of an unregistered model", "INSERT INTO facestream.embeddings (face_id, tenant_id, model, dim, embedding) VALUES ($1, 'default', 'nope', 4, '[1,2,3,4]')", []any{face}, "23503"},
		{"embedding with the wrong dimension", "INSERT INTO facestream.embeddings (face_id, tenant_id, model, dim, embedding) VALUES ($1, 'default', 'm4', 4, '[1,2,3]')", []any{face}, "23514"},
		{"embedding of another tenant's face", "INSERT INTO facestream.embeddings (face_id, tenant_id, model, dim, embedding) VALUES ($1, 'other', 'm4', 4, '[1,2,3,4]')", []any{face}, "23503"},
		{"rejected without a reason", "INSERT INTO facestream.images (id, tenant_id, sha256, byte_size, status, model_pack) VALUES (gen_random_uuid(), 'default', repeat('a', 64), 1, 'rejected', 'dev')", nil, "23514"},
		{"sha256 not hex", "INSERT INTO facestream.images (id, tenant_id, sha256, byte_size, model_pack) VALUES (gen_random_uuid(), 'default', 'xyz', 1, 'dev')", nil, "23514"},
		{"unknown scope", "INSERT INTO facestream.api_keys (tenant_id, name, prefix, secret_hash, scopes) VALUES ('default', 'k', 'fs_abc123', $1, '{read,root}')", []any{hash[:]}, "23514"},
		{"short secret hash", "INSERT INTO facestream.api_keys (tenant_id, name, prefix, secret_hash) VALUES ('default', 'k', 'fs_abc123', '\\x00')", nil, "23514"},
		{"bad tenant id", "INSERT INTO facestream.tenants (id) VALUES ('Has Space')", nil, "23514"},
	}
	for _, tt := range tests {
		_, err := pool.Exec(ctx, tt.sql, tt.args...)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != tt.code {
			t.Errorf("%s: %v, want SQLSTATE %s", tt.name, err, tt.code)
		}
	}
}

func TestEnsureEmbeddingIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewMigrated(t)
	var first, second, named string
	if err := pool.QueryRow(ctx, "SELECT facestream.ensure_embedding_index('Mobile-FaceNet.v2', 128)").Scan(&first); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT facestream.ensure_embedding_index('Mobile-FaceNet.v2', 128)").Scan(&second); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT facestream.embedding_index_name('Mobile-FaceNet.v2', 128)").Scan(&named); err != nil {
		t.Fatal(err)
	}
	if first != second || first != named || !strings.HasPrefix(first, "embeddings_hnsw_mobile_facenet_v2_128_") || len(first) > 63 {
		t.Errorf("index names %q, %q, %q", first, second, named)
	}
	var def string
	if err := pool.QueryRow(ctx, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'facestream' AND indexname = $1", first).Scan(&def); err != nil {
		t.Fatalf("index %s: %v", first, err)
	}
	for _, want := range []string{"USING hnsw", "(embedding)::vector(128)", "vector_cosine_ops", "WHERE (model = 'Mobile-FaceNet.v2'::text)"} {
		if !strings.Contains(def, want) {
			t.Errorf("index definition %q lacks %q", def, want)
		}
	}
	// Replicas storing a new model's first embeddings at once.
	names := make(chan string, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var name string
			if err := pool.QueryRow(ctx, "SELECT facestream.ensure_embedding_index('fresh', 64)").Scan(&name); err != nil {
				t.Errorf("concurrent ensure_embedding_index: %v", err)
			}
			names <- name
		})
	}
	wg.Wait()
	close(names)
	for name := range names {
		if name == "" || !strings.HasPrefix(name, "embeddings_hnsw_fresh_64_") {
			t.Errorf("concurrent ensure_embedding_index returned %q", name)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'embeddings_hnsw_fresh_%'"); n != 1 {
		t.Errorf("%d indexes for model fresh, want 1", n)
	}

	_, err := pool.Exec(ctx, "SELECT facestream.ensure_embedding_index('Mobile-FaceNet.v2', 512)")
	wantCode(t, err, "22023")
	_, err = pool.Exec(ctx, "SELECT facestream.ensure_embedding_index('bad name!', 512)")
	wantCode(t, err, "23514")
	var long string
	if err := pool.QueryRow(ctx, "SELECT facestream.ensure_embedding_index($1, 2000)", strings.Repeat("x", 63)).Scan(&long); err != nil || len(long) > 63 {
		t.Errorf("longest model name: index %q, %v", long, err)
	}
}

func TestAPIKeysAreAudited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewMigrated(t)
	hash := sha256.Sum256([]byte("fs_abc123.secret"))
	var key [16]byte
	if err := pool.QueryRow(ctx, `INSERT INTO facestream.api_keys (tenant_id, name, prefix, secret_hash, scopes, rate_limit_per_minute)
		VALUES ('default', 'ci', 'fs_abc123', $1, '{read,write}', 600) RETURNING id`, hash[:]).Scan(&key); err != nil {
		t.Fatal(err)
	}
	exec(t, pool, "UPDATE facestream.api_keys SET last_used_at = now() WHERE id = $1", key)
	exec(t, pool, "UPDATE facestream.api_keys SET revoked_at = now() WHERE id = $1", key)
	rows, err := pool.Query(ctx, "SELECT action FROM facestream.audit_log WHERE target = $1 ORDER BY id", uuidString(key))
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, a)
	}
	if got := strings.Join(actions, ","); got != "api_key.create,api_key.revoke" {
		t.Errorf("audited actions %q, want api_key.create,api_key.revoke (last_used_at is not audited)", got)
	}
	if n := count(t, pool, "SELECT count(*) FROM facestream.audit_log WHERE details::text LIKE '%secret%' OR details ? 'secret_hash'"); n != 0 {
		t.Errorf("the audit log holds key material")
	}
}

func TestRecordUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewMigrated(t)
	for range 3 {
		exec(t, pool, "SELECT facestream.record_usage('default', NULL, 1, 2, 5)")
	}
	var requests, images, faces int64
	if err := pool.QueryRow(ctx, "SELECT requests, images, faces FROM facestream.usage WHERE tenant_id = 'default' AND api_key_id IS NULL").Scan(&requests, &images, &faces); err != nil {
		t.Fatal(err)
	}
	if requests != 3 || images != 6 || faces != 15 {
		t.Errorf("usage %d/%d/%d, want 3/6/15 in one row", requests, images, faces)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Errorf("error %v, want SQLSTATE %s", err, code)
	}
}
