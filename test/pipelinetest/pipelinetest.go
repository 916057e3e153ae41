// Package pipelinetest holds what the pipeline's end-to-end suites (e2e,
// chaos, api, tracing) share: the labelled test images, every stage run in
// the test process or built as real binaries, and the stored outcome of
// every image as PostgreSQL records it.
package pipelinetest

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/internal/stages/stagetest"
)

// Images lists every image file under FACESTREAM_TESTDATA's deepface and
// insightface folders, recursively, sorted. It fails the test when the
// variable is unset or fewer than 100 images are found.
func Images(t testing.TB) []string {
	t.Helper()
	root := stagetest.Env(t, "FACESTREAM_TESTDATA")
	var out []string
	for _, dir := range []string{"deepface", "insightface"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff":
				if !d.IsDir() {
					out = append(out, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 100 {
		t.Fatalf("only %d test images found under %s", len(out), root)
	}
	slices.Sort(out)
	return out
}

// BuildStages builds the five stage binaries (cmd/ingest … cmd/aggregate)
// into a temporary folder and returns it.
func BuildStages(t testing.TB) string {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator),
		"./cmd/ingest", "./cmd/detect", "./cmd/embed", "./cmd/attrs", "./cmd/aggregate")
	build.Dir = ModuleRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// ModuleRoot is the repository's root folder.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Outcome is what the database says about an image.
type Outcome struct {
	Status, Reason string
	FaceCount      int
}

// Outcomes returns the stored outcome of every image that has one (status
// analyzed or rejected), by image id.
func Outcomes(t testing.TB, ctx context.Context, db *pgxpool.Pool) map[string]Outcome {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT id::text, status, coalesce(reject_reason, ''), coalesce(face_count, 0) FROM facestream.images WHERE status <> 'accepted'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]Outcome{}
	for rows.Next() {
		var id string
		var o Outcome
		if err := rows.Scan(&id, &o.Status, &o.Reason, &o.FaceCount); err != nil {
			t.Fatal(err)
		}
		out[id] = o
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Count runs a query returning one integer.
func Count(t testing.TB, ctx context.Context, db *pgxpool.Pool, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// RunStages builds every pipeline stage on env and runs them in the
// background until the test ends; a stage that stops with an error fails
// the test then.
func RunStages(t testing.TB, ctx context.Context, env *service.Env) {
	t.Helper()
	var stages []*service.Stage
	for _, name := range service.AllStages() {
		s, err := service.BuildStage(ctx, env, name)
		if err != nil {
			t.Fatal(err)
		}
		stages = append(stages, s)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- service.RunStages(runCtx, stages) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("stages stopped with: %v", err)
		}
	})
}
