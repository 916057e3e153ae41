package cli_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/cli"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/migrations"
)

// facestream runs the facestream command with args and a fake environment.
func facestream(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRoot(cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}, func(k string) string { return env[k] })
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestMigrate(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dsn := pgtest.NewDSN(t)
	env := map[string]string{"FACESTREAM_DATABASE_URL": dsn, "FACESTREAM_LOG_FORMAT": "json"}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}

	out, _, err := facestream(t, env, "migrate", "status")
	if err != nil {
		t.Fatalf("migrate status: %v", err)
	}
	for _, m := range all {
		if !strings.Contains(out, m.Name+"  ") || !strings.Contains(lineOf(out, m.Name), "pending") {
			t.Errorf("status before migrating does not list %s as pending:\n%s", m, out)
		}
	}

	out, logs, err := facestream(t, env, "migrate")
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	for _, m := range all {
		if !strings.Contains(out, "applied "+m.String()+"\n") {
			t.Errorf("migrate output lacks %s:\n%s", m, out)
		}
	}
	if !strings.Contains(logs, `"msg":"migrated"`) || !strings.Contains(logs, `"component":"migrate"`) {
		t.Errorf("migrate did not log in JSON: %q", logs)
	}

	// The flag wins over the environment.
	out, _, err = facestream(t, map[string]string{"FACESTREAM_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}, "migrate", "up", "--database-url", dsn)
	if err != nil || !strings.Contains(out, "schema is up to date") {
		t.Fatalf("migrate up again: %q, %v", out, err)
	}
	out, _, err = facestream(t, env, "migrate", "status")
	if err != nil || strings.Contains(out, "pending") || strings.Count(out, "applied") != len(all) {
		t.Errorf("status after migrating: %v\n%s", err, out)
	}
}

func TestMigrateStatusReportsModified(t *testing.T) {
	pool := pgtest.NewMigrated(t)
	if _, err := pool.Exec(context.Background(), "UPDATE facestream.schema_migrations SET checksum = 'edited' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FACESTREAM_DATABASE_URL": pool.Config().ConnString()}
	out, _, err := facestream(t, env, "migrate", "status")
	if !errors.Is(err, migrations.ErrChecksumMismatch) || !strings.Contains(lineOf(out, "init"), "modified") {
		t.Errorf("status with an edited migration: %v\n%s", err, out)
	}
	if _, _, err := facestream(t, env, "migrate", "up"); !errors.Is(err, migrations.ErrChecksumMismatch) {
		t.Errorf("up with an edited migration: %v", err)
	}
}

func TestMigrateNeedsADatabase(t *testing.T) {
	_, _, err := facestream(t, nil, "migrate")
	if err == nil || !strings.Contains(err.Error(), "FACESTREAM_DATABASE_URL") {
		t.Errorf("migrate without a database: %v", err)
	}
	_, _, err = facestream(t, map[string]string{"FACESTREAM_DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=5"}, "migrate")
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "postgres://u:xxxxx@127.0.0.1:1/x") {
		t.Errorf("migrate against nothing: %v; want a connection error without the password", err)
	}
}

func TestMigrateHelp(t *testing.T) {
	out, _, err := facestream(t, nil, "migrate", "status", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--database-url", "FACESTREAM_DATABASE_URL", "required", "--log-level", "FACESTREAM_LOG_LEVEL", "default info"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate status --help lacks %q:\n%s", want, out)
		}
	}
}

func lineOf(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
