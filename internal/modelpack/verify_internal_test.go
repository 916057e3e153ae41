package modelpack

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func hashedSoFar() int {
	sums.mu.Lock()
	defer sums.mu.Unlock()
	return sums.hashed
}

// TestFilesAreHashedOncePerProcess: verifying the same unchanged file again
// (also from many goroutines at once) does not read it again; changing it
// does.
func TestFilesAreHashedOncePerProcess(t *testing.T) {
	dir := t.TempDir()
	data := []byte("stand-in model bytes")
	m := Model{Name: "m", File: "m.onnx", SHA256: "3f0e4ac4d4c1bf9a8d0e9d5bb10e46bd67d27a2ed2eac3ff1cd97d3f4ffd1e06", Size: int64(len(data))}
	if err := os.WriteFile(filepath.Join(dir, m.File), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := sums.sum(ctx, m.Path(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.SHA256 = got
	before := hashedSoFar()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := VerifiedPath(ctx, dir, m); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := hashedSoFar() - before; n != 0 {
		t.Errorf("an unchanged file was hashed %d more times", n)
	}

	// Same size, new content and mtime: hashed again, and refused.
	if err := os.WriteFile(m.Path(dir), []byte("STAND-IN MODEL BYTES"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(m.Path(dir), later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifiedPath(ctx, dir, m); err == nil {
		t.Error("a changed file passed verification")
	}
	if n := hashedSoFar() - before; n != 1 {
		t.Errorf("a changed file was hashed %d times, want 1", n)
	}
}
