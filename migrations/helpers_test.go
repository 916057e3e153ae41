package migrations_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// newID returns a random version-4 UUID as pgx encodes it.
func newID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

func uuidString(id [16]byte) string {
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func addTenant(t *testing.T, pool *pgxpool.Pool, id string) {
	t.Helper()
	exec(t, pool, "INSERT INTO facestream.tenants (id, name) VALUES ($1, $1)", id)
}

// addImage stores an analyzed image of tenant and returns its id.
func addImage(t *testing.T, pool *pgxpool.Pool, tenant string) [16]byte {
	t.Helper()
	id := newID()
	sum := sha256.Sum256(id[:])
	exec(t, pool, `INSERT INTO facestream.images
		(id, tenant_id, sha256, source, filename, content_type, width, height, byte_size, status, model_pack, face_count, analyzed_at)
		VALUES ($1, $2, $3, '/test', 'x.jpg', 'image/jpeg', 640, 480, 12345, 'analyzed', 'dev', 0, now())`,
		id, tenant, hex.EncodeToString(sum[:]))
	return id
}

// addFace stores face number index of image and returns its id.
func addFace(t *testing.T, pool *pgxpool.Pool, tenant string, image [16]byte, index int) [16]byte {
	t.Helper()
	id := newID()
	exec(t, pool, `INSERT INTO facestream.faces
		(id, tenant_id, image_id, face_index, box_x1, box_y1, box_x2, box_y2, landmarks, det_score, model_pack)
		VALUES ($1, $2, $3, $4, 10, 20, 110, 140, '{30,50,80,50,55,80,35,110,75,110}', 0.9, 'dev')`,
		id, tenant, image, index)
	return id
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
