package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
)

// DefaultTenant is the tenant of images whose events name none. The
// migrations create it.
const DefaultTenant = "default"

// ErrInvalid matches errors that retrying cannot fix: an invalid tenant or
// id, or data that violates a constraint of the schema.
var ErrInvalid = errors.New("invalid data")

// ErrErased matches the refusal to store an image that was erased
// (facestream.erase_image leaves a tombstone, and the database refuses every
// new row of that image id): retrying cannot store it, and it must not be.
var ErrErased = errors.New("image erased")

// sqlStateErased is the SQLSTATE the database raises for a write of an
// erased image (migration 0003_erasure, trigger images_not_erased).
const sqlStateErased = "ZF410"

// namespace is the UUIDv5 namespace of facestream's derived ids.
var namespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/facestream/facestream"))

var tenantRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Store is the PostgreSQL repository. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	owned bool

	mu      sync.Mutex
	indexed map[string]int // models whose HNSW index is known to exist, with their dimension
}

// New returns a Store over pool, which must have pgvector's types registered
// (pgvector-go/pgx RegisterTypes in AfterConnect). The caller keeps owning the
// pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, indexed: map[string]int{}}
}

// Open connects a pool to dsn with pgvector's types registered and checks
// that the server answers. Close closes it.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cfg.AfterConnect = pgxvec.RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := New(pool)
	s.owned = true
	return s, nil
}

// Pool returns the underlying pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool when Open made it; a Store from New leaves its pool
// open. Close is idempotent.
func (s *Store) Close() {
	if s.owned {
		s.pool.Close()
	}
}

// Ping checks that the database answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// TenantOf returns the tenant an event names, DefaultTenant when it names
// none.
func TenantOf(tenant string) string {
	if tenant == "" {
		return DefaultTenant
	}
	return tenant
}

// ValidTenant reports whether tenant (after TenantOf) is a valid tenant id:
// lower-case letters, digits, _ and -, starting with a letter or digit, at
// most 63 characters.
func ValidTenant(tenant string) bool {
	return tenantRe.MatchString(TenantOf(tenant))
}

// ImageUUID returns the database id of an image id: the id itself when it is
// a UUID (in canonical lower-case form), else a name-based UUID (v5) of it,
// so producers may use any string as the image id.
func ImageUUID(imageID string) uuid.UUID {
	if u, err := uuid.Parse(imageID); err == nil && len(imageID) == 36 {
		return u
	}
	return uuid.NewSHA1(namespace, []byte("image/"+imageID))
}

// FaceID returns the id of face index of an image: a name-based UUID (v5)
// of the image's database id and the index, the same in events and rows.
func FaceID(imageID string, index int) string {
	return faceUUID(ImageUUID(imageID), index).String()
}

func faceUUID(image uuid.UUID, index int) uuid.UUID {
	return uuid.NewSHA1(namespace, fmt.Appendf(nil, "face/%s/%d", image, index))
}

// ensureTenant creates tenant if it does not exist.
func ensureTenant(ctx context.Context, tx pgx.Tx, tenant string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO facestream.tenants (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, tenant); err != nil {
		return fmt.Errorf("ensure tenant %s: %w", tenant, classify(err))
	}
	return nil
}

// ensureIndex registers model with its dimension and makes its HNSW index,
// once per model and process.
func (s *Store) ensureIndex(ctx context.Context, model string, dim int) error {
	s.mu.Lock()
	known, ok := s.indexed[model]
	s.mu.Unlock()
	if ok && known == dim {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `SELECT facestream.ensure_embedding_index($1, $2)`, model, dim); err != nil {
		return fmt.Errorf("ensure embedding index of %s (%d): %w", model, dim, classify(err))
	}
	s.mu.Lock()
	s.indexed[model] = dim
	s.mu.Unlock()
	return nil
}

// classify marks a write of an erased image with ErrErased, and errors that
// retrying cannot fix with ErrInvalid: data exceptions (SQLSTATE class 22)
// and integrity constraint violations (23).
func classify(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == sqlStateErased:
		return fmt.Errorf("%w: %w", ErrErased, err)
	case strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return err
}

// inTx runs f in a transaction, committed when f returns nil.
func (s *Store) inTx(ctx context.Context, f func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

// zeroSHA stands for "not known" in images.sha256, which is required.
const zeroSHA = "0000000000000000000000000000000000000000000000000000000000000000"

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
