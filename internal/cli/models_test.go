package cli_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/facestream/facestream/internal/cli"
	"github.com/facestream/facestream/internal/modelpack"
)

// runModels runs `facestream models ...` with a fake environment and
// buffers for the streams.
func runModels(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRoot(cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}, func(k string) string { return env[k] })
	root.SetArgs(append([]string{"models"}, args...))
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// sharedModels is FACESTREAM_MODELS; the tests fail, never skip, without it.
func sharedModels(t *testing.T) string {
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

func lineWith(out, substr string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

func TestModelsList(t *testing.T) {
	env := map[string]string{"FACESTREAM_MODELS": sharedModels(t)}
	out, _, err := runModels(t, env, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range modelpack.Names() {
		if !strings.Contains(out, "\n"+name) {
			t.Errorf("list does not show pack %s", name)
		}
	}
	for file, want := range map[string][]string{
		"insightface/det_500m.onnx":               {"detector", "present", " no "},
		"yunet/face_detection_yunet_2023mar.onnx": {"detector", "present", " yes "},
		"buffalo_l/w600k_r50.onnx":                {"recognizer", "missing", "174.4 MB"},
		"buffalo_s/genderage.onnx":                {"genderage", "missing", "unknown"},
	} {
		l := lineWith(out, file)
		for _, w := range want {
			if !strings.Contains(l, w) {
				t.Errorf("line for %s lacks %q: %q", file, w, l)
			}
		}
	}
	if !strings.Contains(out, "dev (configured)") || !strings.Contains(out, "commercial use: no") || !strings.Contains(out, "non-commercial research") {
		t.Errorf("list lacks the configured pack or the licences:\n%s", out)
	}

	// The flag wins over the environment; one pack by name.
	out, _, err = runModels(t, env, "list", "dev", "--models", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "present") || strings.Count(out, "missing") != 4 || strings.Contains(out, "buffalo") {
		t.Errorf("list dev in an empty folder:\n%s", out)
	}
	if _, _, err := runModels(t, env, "list", "nope"); !errors.Is(err, modelpack.ErrUnknownPack) {
		t.Errorf("list nope = %v", err)
	}
}

func TestModelsVerify(t *testing.T) {
	shared := sharedModels(t)
	out, _, err := runModels(t, map[string]string{"FACESTREAM_MODELS": shared}, "verify")
	if err != nil {
		t.Fatalf("verify the configured (dev) pack: %v\n%s", err, out)
	}
	if !strings.Contains(out, "ok      insightface/det_500m.onnx") || !strings.Contains(out, "pack dev: all 4 files verified") {
		t.Errorf("verify output:\n%s", out)
	}
	out, _, err = runModels(t, map[string]string{"FACESTREAM_MODELS": shared, "FACESTREAM_MODEL_PACK": "dev-yunet"}, "verify")
	if err != nil || !strings.Contains(out, "ok      yunet/face_detection_yunet_2023mar.onnx") {
		t.Errorf("verify the pack from FACESTREAM_MODEL_PACK: %v\n%s", err, out)
	}

	// A damaged copy: the failing file is named, with expected and got.
	dir := t.TempDir()
	p, err := modelpack.Lookup("dev")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range p.Models {
		data, err := os.ReadFile(m.Path(shared))
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			data[500] ^= 1
		}
		if err := os.MkdirAll(filepath.Dir(m.Path(dir)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m.Path(dir), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err = runModels(t, nil, "verify", "dev", "--models", dir)
	if err == nil || !strings.Contains(err.Error(), "verify pack dev: 1 of 4 files failed") {
		t.Errorf("verify of a damaged copy = %v", err)
	}
	if !strings.Contains(out, "FAILED  "+p.Models[1].File) || !strings.Contains(out, "sha256 mismatch: expected "+p.Models[1].SHA256+", got ") {
		t.Errorf("verify output does not name the damaged file:\n%s", out)
	}

	// A checksum the manifest lacks needs --trust-on-first-use.
	dir = t.TempDir()
	bs, _ := modelpack.Lookup("buffalo_s")
	ga, _ := bs.Model(modelpack.GenderAge)
	if err := os.MkdirAll(filepath.Dir(ga.Path(dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ga.Path(dir), []byte("stand-in"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, _ = runModels(t, nil, "verify", "buffalo_s", "--models", dir)
	if !strings.Contains(out, "checksum unknown — pass --trust-on-first-use") || !strings.Contains(out, "model file missing") {
		t.Errorf("verify buffalo_s:\n%s", out)
	}
	out, _, _ = runModels(t, nil, "verify", "buffalo_s", "--models", dir, "--trust-on-first-use")
	if !strings.Contains(out, "ok      buffalo_s/genderage.onnx") {
		t.Errorf("verify --trust-on-first-use:\n%s", out)
	}
}

// TestModelsDownload runs the download command against a pack file whose
// URLs point at a server on 127.0.0.1: the licence comes first, progress
// goes to stderr, and a second run fetches nothing.
func TestModelsDownload(t *testing.T) {
	det, rec := bytes.Repeat([]byte("det!"), 50_000), bytes.Repeat([]byte("rec?"), 30_000)
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, _ := zw.Create("zoo/det.onnx")
	w.Write(det)
	zw.Close()
	var requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/zoo.zip":
			w.Write(zipped.Bytes())
		case "/rec.onnx":
			w.Write(rec)
		default:
			http.NotFound(w, r)
		}
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	defer srv.Close()

	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	p, err := modelpack.Lookup("buffalo_sc")
	if err != nil {
		t.Fatal(err)
	}
	p.Name, p.URL, p.SHA256, p.ArchiveSize = "zoo", srv.URL+"/zoo.zip", sum(zipped.Bytes()), int64(zipped.Len())
	p.Models[0].File, p.Models[0].URL, p.Models[0].Member, p.Models[0].SHA256, p.Models[0].Size = "zoo/det.onnx", p.URL, "zoo/det.onnx", sum(det), int64(len(det))
	p.Models[1].File, p.Models[1].URL, p.Models[1].Member, p.Models[1].SHA256, p.Models[1].Size = "zoo/rec.onnx", srv.URL+"/rec.onnx", "", sum(rec), int64(len(rec))
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	packFile := filepath.Join(t.TempDir(), "zoo.json")
	if err := os.WriteFile(packFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "models")

	out, progress, err := runModels(t, nil, "download", "--pack-file", packFile, "--dir", dir)
	if err != nil {
		t.Fatalf("download: %v\n%s%s", err, out, progress)
	}
	lic := strings.Index(out, "LICENCE: InsightFace model zoo weights: for non-commercial research purposes only")
	if lic < 0 || lic > strings.Index(out, "fetched") || !strings.Contains(out, "Commercial use: no") {
		t.Errorf("the licence must be printed before anything is fetched:\n%s", out)
	}
	if !strings.Contains(out, "fetched  zoo/det.onnx") || !strings.Contains(out, "fetched  zoo/rec.onnx") || !strings.Contains(out, "2 fetched, 0 already present") {
		t.Errorf("download output:\n%s", out)
	}
	if !strings.Contains(progress, "download zoo.zip 100%") || !strings.Contains(progress, "extract zoo/det.onnx") || !strings.Contains(progress, "download zoo/rec.onnx") {
		t.Errorf("progress on stderr:\n%s", progress)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "zoo/rec.onnx")); !bytes.Equal(got, rec) {
		t.Error("rec.onnx not in place")
	}

	before := requests.Load()
	out, _, err = runModels(t, nil, "download", "--pack-file", packFile, "--dir", dir)
	if err != nil || requests.Load() != before || !strings.Contains(out, "0 fetched, 2 already present") {
		t.Errorf("second download: %v, %d more requests\n%s", err, requests.Load()-before, out)
	}
	if out, _, err := runModels(t, nil, "verify", "--pack-file", packFile, "--models", dir); err != nil {
		t.Errorf("verify after download: %v\n%s", err, out)
	}

	// The dev pack is already in the shared folder: nothing to fetch.
	out, _, err = runModels(t, map[string]string{"FACESTREAM_MODELS": sharedModels(t)}, "download", "dev")
	if err != nil || !strings.Contains(out, "0 fetched, 4 already present") {
		t.Errorf("download dev: %v\n%s", err, out)
	}
	if _, _, err := runModels(t, nil, "download"); err == nil || !strings.Contains(err.Error(), "name the pack") {
		t.Errorf("download without a pack = %v", err)
	}
	if _, _, err := runModels(t, nil, "download", "dev", "--pack-file", packFile); err == nil {
		t.Error("download with both a name and --pack-file succeeded")
	}
}
