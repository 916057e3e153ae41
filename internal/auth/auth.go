// Package auth implements facestream's API keys: generation, hashing,
// verification against facestream.api_keys, scopes and the tenant of a key.
//
// A key reads fs_<prefix>_<secret>: prefix is 10 characters of [A-Za-z0-9]
// (public: shown in listings, used to find the row), secret 32 characters of
// [A-Za-z0-9] (about 190 bits). Only the prefix and the SHA-256 of the whole
// key are stored; a presented key is hashed and compared in constant time.
// Keys are long random strings, so a fast hash is enough (no KDF).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Scopes. Admin includes write, write includes read.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
)

const (
	keyPrefix    = "fs_"
	prefixLen    = 10
	secretLen    = 32
	alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// Errors of Verify. They say nothing about which part of a key was wrong.
var (
	ErrNoKey      = errors.New("no API key")
	ErrInvalidKey = errors.New("invalid API key")
	ErrRevoked    = errors.New("API key revoked or expired")
)

// Key is a stored API key (never its secret).
type Key struct {
	ID        string
	Tenant    string
	Name      string
	Prefix    string
	Scopes    []string
	RateLimit int // requests per minute; 0 means the service default
	CreatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
	LastUsed  *time.Time
}

// Allows reports whether the key grants scope (admin ⊇ write ⊇ read).
func (k Key) Allows(scope string) bool {
	rank := map[string]int{ScopeRead: 1, ScopeWrite: 2, ScopeAdmin: 3}
	need := rank[scope]
	for _, s := range k.Scopes {
		if rank[s] >= need && need > 0 {
			return true
		}
	}
	return false
}

// ValidScope reports whether s is read, write or admin.
func ValidScope(s string) bool { return s == ScopeRead || s == ScopeWrite || s == ScopeAdmin }

// Generate returns a new random key and its prefix.
func Generate() (key, prefix string, err error) {
	p, err := randomString(prefixLen)
	if err != nil {
		return "", "", err
	}
	s, err := randomString(secretLen)
	if err != nil {
		return "", "", err
	}
	return keyPrefix + p + "_" + s, p, nil
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	limit := byte(256 - 256%len(alphanumeric)) // reject to avoid modulo bias
	for i := 0; i < n; {
		var one [1]byte
		if _, err := rand.Read(one[:]); err != nil {
			return "", fmt.Errorf("generate key: %w", err)
		}
		if one[0] >= limit {
			continue
		}
		b[i] = alphanumeric[int(one[0])%len(alphanumeric)]
		i++
	}
	return string(b), nil
}

// Hash is the stored hash of a key: SHA-256 of the whole key.
func Hash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// ParsePrefix returns the prefix of a well-formed key, and false otherwise.
func ParsePrefix(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok || len(rest) != prefixLen+1+secretLen || rest[prefixLen] != '_' {
		return "", false
	}
	p, s := rest[:prefixLen], rest[prefixLen+1:]
	if !alnum(p) || !alnum(s) {
		return "", false
	}
	return p, true
}

func alnum(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune(alphanumeric, c) {
			return false
		}
	}
	return true
}

// Store keeps API keys in facestream.api_keys. It is safe for concurrent use.
type Store struct {
	db  *pgxpool.Pool
	now func() time.Time
}

// NewStore returns a Store over db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db, now: time.Now} }

// CreateOptions describe a new key.
type CreateOptions struct {
	Tenant    string
	Name      string
	Scopes    []string
	RateLimit int // per minute; 0: the service default
	ExpiresAt *time.Time
	// Actor is recorded in the audit log (e.g. "cli:alice"); empty: the database role.
	Actor string
}

// Create makes a key for a tenant (created when missing) and returns the key
// itself — shown once, never stored — with its row.
func (s *Store) Create(ctx context.Context, o CreateOptions) (string, Key, error) {
	if o.Tenant == "" {
		o.Tenant = "default"
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{ScopeRead}
	}
	for _, sc := range o.Scopes {
		if !ValidScope(sc) {
			return "", Key{}, fmt.Errorf("create key: scope %q is not read, write or admin", sc)
		}
	}
	if o.Name == "" {
		return "", Key{}, errors.New("create key: a name is required")
	}
	key, prefix, err := Generate()
	if err != nil {
		return "", Key{}, err
	}
	var rl *int
	if o.RateLimit > 0 {
		rl = &o.RateLimit
	}
	k := Key{Tenant: o.Tenant, Name: o.Name, Prefix: prefix, Scopes: slices.Clone(o.Scopes), RateLimit: o.RateLimit, ExpiresAt: o.ExpiresAt}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := setActor(ctx, tx, o.Actor); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO facestream.tenants (id) VALUES ($1) ON CONFLICT DO NOTHING`, o.Tenant); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
INSERT INTO facestream.api_keys (tenant_id, name, prefix, secret_hash, scopes, rate_limit_per_minute, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text, created_at`,
			o.Tenant, o.Name, prefix, Hash(key), o.Scopes, rl, o.ExpiresAt).Scan(&k.ID, &k.CreatedAt)
	})
	if err != nil {
		return "", Key{}, fmt.Errorf("create key: %w", err)
	}
	return key, k, nil
}

func setActor(ctx context.Context, tx pgx.Tx, actor string) error {
	if actor == "" {
		return nil
	}
	_, err := tx.Exec(ctx, `SELECT set_config('facestream.actor', $1, true)`, actor)
	return err
}

const keyColumns = `id::text, tenant_id, name, prefix, scopes, coalesce(rate_limit_per_minute, 0), created_at, expires_at, revoked_at, last_used_at`

func scanKey(row pgx.Row, k *Key, extra ...any) error {
	return row.Scan(append([]any{&k.ID, &k.Tenant, &k.Name, &k.Prefix, &k.Scopes, &k.RateLimit, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.LastUsed}, extra...)...)
}

// List returns the keys of a tenant ("" for every tenant), newest first.
func (s *Store) List(ctx context.Context, tenant string) ([]Key, error) {
	rows, err := s.db.Query(ctx, `SELECT `+keyColumns+` FROM facestream.api_keys
WHERE $1 = '' OR tenant_id = $1 ORDER BY created_at DESC, prefix`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		var k Key
		if err := scanKey(rows, &k); err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// Revoke revokes the key with this prefix or id; false when there is none
// (or it was revoked already).
func (s *Store) Revoke(ctx context.Context, prefixOrID, actor string) (bool, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := setActor(ctx, tx, actor); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE facestream.api_keys SET revoked_at = now()
WHERE (prefix = $1 OR id::text = $1) AND revoked_at IS NULL`, prefixOrID)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("revoke key: %w", err)
	}
	return n > 0, nil
}

// Verify returns the key row of a presented key: ErrNoKey when empty,
// ErrInvalidKey when malformed or unknown or its hash differs, ErrRevoked
// when revoked or expired.
func (s *Store) Verify(ctx context.Context, key string) (Key, error) {
	if key == "" {
		return Key{}, ErrNoKey
	}
	prefix, ok := ParsePrefix(key)
	if !ok {
		return Key{}, ErrInvalidKey
	}
	var (
		k    Key
		hash []byte
	)
	err := scanKey(s.db.QueryRow(ctx, `SELECT `+keyColumns+`, secret_hash FROM facestream.api_keys WHERE prefix = $1`, prefix), &k, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		// Hash anyway so that unknown prefixes take as long as wrong secrets.
		subtle.ConstantTimeCompare(Hash(key), make([]byte, sha256.Size))
		return Key{}, ErrInvalidKey
	}
	if err != nil {
		return Key{}, fmt.Errorf("verify key: %w", err)
	}
	if subtle.ConstantTimeCompare(Hash(key), hash) != 1 {
		return Key{}, ErrInvalidKey
	}
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !k.ExpiresAt.After(s.now())) {
		return Key{}, ErrRevoked
	}
	return k, nil
}

// Touch records that a key was used (last_used_at), at most once a minute.
func (s *Store) Touch(ctx context.Context, id string) error {
	_, err := s.db.Exec(ctx, `UPDATE facestream.api_keys SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, id)
	if err != nil {
		return fmt.Errorf("touch key: %w", err)
	}
	return nil
}
