package migrations

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
)

//go:embed *.sql
var embedded embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	// Version is the file's number: 1 for 0001_init.sql.
	Version int
	// Name is the rest of the file name without .sql: "init".
	Name string
	// SQL is the file's content, run as one transaction.
	SQL string
	// Checksum is the lower-case hex SHA-256 of SQL.
	Checksum string
}

// String returns the file name without .sql, e.g. "0001_init".
func (m Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

var fileName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// All returns the migrations embedded in this binary, in version order.
func All() ([]Migration, error) { return Load(embedded) }

// Load reads the migrations at the root of fsys: files named NNNN_name.sql
// (four digits, then lower-case letters, digits and _). Versions must be
// unique and start at 1 without gaps. Other files are an error, so a
// misnamed migration is never silently skipped.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		match := fileName.FindStringSubmatch(e.Name())
		if match == nil {
			return nil, fmt.Errorf("load migration %s: name is not NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(match[1]) // four digits always parse
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("load migration %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: match[2], SQL: string(body), Checksum: checksum(body)})
	}
	if err := check(ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// check sorts ms by version and requires versions 1, 2, ... len(ms).
func check(ms []Migration) error {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		switch {
		case i > 0 && m.Version == ms[i-1].Version:
			return fmt.Errorf("load migrations: %s and %s share version %d", ms[i-1], m, m.Version)
		case m.Version != i+1:
			return fmt.Errorf("load migrations: %s: want version %d (versions start at 1 without gaps)", m, i+1)
		}
	}
	return nil
}

func checksum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
