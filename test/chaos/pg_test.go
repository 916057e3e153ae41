package chaos_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// pgBin holds PostgreSQL 15's server programs (pgvector is installed for 15).
const pgBin = "/usr/lib/postgresql/15/bin"

// pgCluster is a throwaway PostgreSQL cluster owned by the test: its own
// data directory and port, run as the postgres user (initdb refuses root),
// so stopping it never touches the machine's shared server.
type pgCluster struct {
	dir, data string
	port      int
	uid, gid  int
}

// DSN is the connection string of database db as the superuser.
func (c *pgCluster) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// startCluster initdbs and starts a cluster; t.Cleanup stops and removes it.
func startCluster(t *testing.T) *pgCluster {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "facestream-chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	// The postgres user must reach its data directory inside our temp dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{dir: dir, data: filepath.Join(dir, "data"), port: freePort(t), uid: uid, gid: gid}
	t.Cleanup(func() {
		_ = c.pgctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if out, err := c.asPostgres(filepath.Join(pgBin, "initdb"), "-D", c.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *pgCluster) asPostgres(name string, args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
}

func (c *pgCluster) pgctl(args ...string) error {
	args = append([]string{"-D", c.data, "-w", "-t", "60"}, args...)
	if out, err := c.asPostgres(filepath.Join(pgBin, "pg_ctl"), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}

// start starts the cluster on its port, with its socket in its own dir.
func (c *pgCluster) start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", c.port, c.dir)
	return c.pgctl("start", "-l", filepath.Join(c.dir, "server.log"), "-o", opts)
}

// stop stops it the fast way: connections are cut, as in a failover.
func (c *pgCluster) stop() error { return c.pgctl("stop", "-m", "fast") }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
