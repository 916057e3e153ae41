package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/cli"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/migrations"
)

// keys create prints the key once (and only it on stdout), list never shows
// a secret, revoke makes the key fail verification.
func TestKeys(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDSN(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FACESTREAM_DATABASE_URL": dsn}
	run := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		root := cli.NewRoot(cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, func(k string) string { return env[k] })
		root.SetArgs(args)
		err := root.ExecuteContext(ctx)
		return out.String(), errb.String(), err
	}
	out, _, err := run("keys", "create", "--tenant", "acme", "--name", "web app", "--scopes", "read,write", "--rate-limit", "120")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out)
	prefix, ok := auth.ParsePrefix(key)
	if !ok {
		t.Fatalf("create printed %q", out)
	}
	k, err := auth.NewStore(pool).Verify(ctx, key)
	if err != nil || k.Tenant != "acme" || !k.Allows(auth.ScopeWrite) || k.Allows(auth.ScopeAdmin) || k.RateLimit != 120 {
		t.Fatalf("verify: %+v, %v", k, err)
	}
	out, _, err = run("keys", "list")
	if err != nil || !strings.Contains(out, prefix) || strings.Contains(out, key[len(key)-32:]) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, _, err := run("keys", "create", "--name", "x", "--scopes", "root"); err == nil {
		t.Error("a bad scope was accepted")
	}
	if _, _, err := run("keys", "revoke", prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewStore(pool).Verify(ctx, key); err != auth.ErrRevoked {
		t.Errorf("a revoked key verifies: %v", err)
	}
	if _, _, err := run("keys", "revoke", prefix); err == nil {
		t.Error("revoking twice succeeded")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM facestream.audit_log WHERE action IN ('api_key.create', 'api_key.revoke') AND actor LIKE 'cli:%'`).Scan(&n); err != nil || n != 2 {
		t.Errorf("audit rows: %d, %v", n, err)
	}
}
