package modelpack_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facestream/facestream/internal/modelpack"
)

// modelsDir is the real models directory; the test fails (never skips)
// when it is not configured.
func modelsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FACESTREAM_MODELS")
	if dir == "" {
		t.Fatal("FACESTREAM_MODELS is not set: run the tests through `make test`")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("FACESTREAM_MODELS: %v", err)
	}
	return dir
}

// copyPack copies the pack's files from src into a fresh temp dir.
func copyPack(t *testing.T, p modelpack.Pack, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, m := range p.Models {
		in, err := os.Open(m.Path(src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(m.Path(dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(m.Path(dst))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestVerifyDevPacks checks the dev packs against the real files in
// FACESTREAM_MODELS: every size and sha256 matches.
func TestVerifyDevPacks(t *testing.T) {
	dir := modelsDir(t)
	for _, name := range []string{"dev", "dev-yunet"} {
		p := lookup(t, name)
		if err := p.Verify(dir); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, m := range p.Models {
			if !m.Present(dir) {
				t.Errorf("%s: %s not present", name, m.File)
			}
			path, err := modelpack.VerifiedPath(context.Background(), dir, m)
			if err != nil || path != filepath.Join(dir, m.File) {
				t.Errorf("VerifiedPath(%s) = %q, %v", m.File, path, err)
			}
		}
	}
}

// TestVerifyCorruptedCopy damages a copy of the dev pack three ways: one
// flipped byte, one truncated file, one removed file. Verify must report
// all three, each naming its file, with expected and got for mismatches.
func TestVerifyCorruptedCopy(t *testing.T) {
	p := lookup(t, "dev")
	dir := copyPack(t, p, modelsDir(t))
	if err := p.Verify(dir); err != nil {
		t.Fatalf("the intact copy: %v", err)
	}
	rec, _ := p.Model(modelpack.Recognizer)
	ga, _ := p.Model(modelpack.GenderAge)
	emo, _ := p.Model(modelpack.Emotion)

	f, err := os.OpenFile(rec.Path(dir), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 1000); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, 1000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Truncate(ga.Path(dir), 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(emo.Path(dir)); err != nil {
		t.Fatal(err)
	}

	err = p.Verify(dir)
	if err == nil {
		t.Fatal("Verify accepted a damaged copy")
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{
		"verify " + rec.File + ": sha256 mismatch: expected " + rec.SHA256 + ", got ",
		"verify " + ga.File + ": size mismatch: expected 1108795, got 1000",
		"verify " + emo.File + ": model file missing in " + dir,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q", want)
		}
	}
	if !errors.Is(err, modelpack.ErrMismatch) || !errors.Is(err, modelpack.ErrMissing) {
		t.Errorf("error %v should wrap ErrMismatch and ErrMissing", err)
	}
	var mm *modelpack.MismatchError
	if !errors.As(err, &mm) || mm.File == "" {
		t.Errorf("no MismatchError in %v", err)
	}
	if _, err := modelpack.VerifiedPath(context.Background(), dir, rec); !errors.Is(err, modelpack.ErrMismatch) {
		t.Errorf("VerifiedPath of the damaged file = %v", err)
	}
}

// TestVerifyUnknownChecksum: a model whose checksum the manifest does not
// know is refused until trusted on first use; the pin then guards it.
func TestVerifyUnknownChecksum(t *testing.T) {
	dir := t.TempDir()
	m := lookup(t, "buffalo_s").Models[2] // genderage: checksum unknown
	if m.ChecksumKnown() {
		t.Fatalf("%s has a checksum now; pick another model for this test", m.Name)
	}
	if err := os.MkdirAll(filepath.Dir(m.Path(dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.Path(dir), []byte("stand-in weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err := modelpack.VerifyModel(ctx, dir, m, modelpack.VerifyOptions{})
	if !errors.Is(err, modelpack.ErrChecksumUnknown) || !strings.Contains(err.Error(), "checksum unknown — pass --trust-on-first-use") {
		t.Fatalf("strict verify = %v", err)
	}
	if err := modelpack.VerifyModel(ctx, dir, m, modelpack.VerifyOptions{TrustOnFirstUse: true}); err != nil {
		t.Fatalf("trust on first use: %v", err)
	}
	pin, err := os.ReadFile(m.Path(dir) + modelpack.PinSuffix)
	if err != nil || !strings.HasSuffix(string(pin), "  genderage.onnx\n") {
		t.Fatalf("pin = %q, %v", pin, err)
	}
	if err := modelpack.VerifyModel(ctx, dir, m, modelpack.VerifyOptions{}); err != nil {
		t.Errorf("strict verify with a pin: %v", err)
	}
	if err := os.WriteFile(m.Path(dir), []byte("other weights!!!"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = modelpack.VerifyModel(ctx, dir, m, modelpack.VerifyOptions{})
	if !errors.Is(err, modelpack.ErrMismatch) || !strings.Contains(err.Error(), "pinned on first use") {
		t.Errorf("verify of a changed file = %v", err)
	}
}
