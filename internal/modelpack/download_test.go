package modelpack_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/facestream/facestream/internal/modelpack"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// standIn returns deterministic bytes standing in for a model file.
func standIn(name string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + len(name)*13 + int(name[0]))
	}
	return b
}

// fakeZoo is a model zoo on 127.0.0.1: a zip archive holding two members
// (one under a folder) and one plain file, built on the fly, with a count
// of requests per path.
type fakeZoo struct {
	srv                *httptest.Server
	archive            []byte
	det, ga, rec, junk []byte

	mu       sync.Mutex
	requests map[string]int
}

func newFakeZoo(t *testing.T) *fakeZoo {
	t.Helper()
	z := &fakeZoo{
		det:      standIn("det", 150_000),
		ga:       standIn("genderage", 40_000),
		rec:      standIn("rec", 90_000),
		junk:     standIn("landmarks", 10_000),
		requests: map[string]int{},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"pack/det.onnx", z.det}, {"pack/genderage.onnx", z.ga}, {"pack/landmarks.onnx", z.junk}} {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	z.archive = buf.Bytes()

	mux := http.NewServeMux()
	mux.HandleFunc("/zoo/pack.zip", func(w http.ResponseWriter, r *http.Request) { w.Write(z.archive) })
	mux.HandleFunc("/zoo/rec.onnx", func(w http.ResponseWriter, r *http.Request) { w.Write(z.rec) })
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		z.mu.Lock()
		z.requests[r.URL.Path]++
		z.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0") // loopback only
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	z.srv = srv
	return z
}

func (z *fakeZoo) count(path string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.requests[path]
}

// pack describes the zoo: the detector is an archive member named exactly,
// the genderage member is named without its folder (found by base name)
// and has no checksum of its own, and the recognizer is a plain file.
func (z *fakeZoo) pack() modelpack.Pack {
	p := modelpack.Pack{
		Name: "zoo", Description: "stand-in files", License: "test only",
		URL: z.srv.URL + "/zoo/pack.zip", SHA256: sha(z.archive), ArchiveSize: int64(len(z.archive)),
	}
	base := modelpack.Model{
		License: "test only", ColorOrder: "RGB", Std: [3]float32{1, 1, 1}, InputWidth: 112, InputHeight: 112,
		Inputs: []string{"in"}, Outputs: []string{"out"}, URL: p.URL,
	}
	det := base
	det.Name, det.Kind, det.Arch, det.File, det.Member = "det", modelpack.Detector, modelpack.ArchSCRFD, "zoo/det.onnx", "pack/det.onnx"
	det.SHA256, det.Size, det.Crop, det.Threshold, det.NMSThreshold = sha(z.det), int64(len(z.det)), modelpack.CropLetterbox, 0.5, 0.4
	rec := base
	rec.Name, rec.Kind, rec.Arch, rec.File, rec.URL = "rec", modelpack.Recognizer, modelpack.ArchArcFace, "zoo/rec.onnx", z.srv.URL+"/zoo/rec.onnx"
	rec.SHA256, rec.Size, rec.Crop, rec.EmbeddingDim, rec.Threshold = sha(z.rec), int64(len(z.rec)), modelpack.CropArcFace112, 512, 0.3
	ga := base
	ga.Name, ga.Kind, ga.Arch, ga.File, ga.Member = "ga", modelpack.GenderAge, modelpack.ArchGenderAgeBuffalo, "zoo/genderage.onnx", "genderage.onnx"
	ga.Crop, ga.Notes = modelpack.CropBBox, "checksum unknown: trusted through the archive's"
	p.Models = []modelpack.Model{det, rec, ga}
	return p
}

// leftovers lists the files under dir that are not model files or pins:
// temporary downloads must never remain.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var extra []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() && !strings.HasSuffix(path, ".onnx") && !strings.HasSuffix(path, ".onnx"+modelpack.PinSuffix) {
			extra = append(extra, path)
		}
		return nil
	})
	return extra
}

func onnxFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".onnx") {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files
}

// TestDownload fetches the pack, extracts the members, verifies, and then
// proves a second call does nothing and a damaged file is fetched again.
func TestDownload(t *testing.T) {
	z := newFakeZoo(t)
	p := z.pack()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "models")
	var phases []string
	d := &modelpack.Downloader{Client: z.srv.Client(), Progress: func(pr modelpack.Progress) {
		if !slices.Contains(phases, pr.Phase) {
			phases = append(phases, pr.Phase)
		}
	}}
	ctx := context.Background()

	rep, err := d.Download(ctx, p, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Fetched, []string{"zoo/det.onnx", "zoo/genderage.onnx", "zoo/rec.onnx"}) || len(rep.Present) != 0 {
		t.Errorf("first download: %+v", rep)
	}
	for _, c := range []struct {
		file string
		want []byte
	}{{"zoo/det.onnx", z.det}, {"zoo/genderage.onnx", z.ga}, {"zoo/rec.onnx", z.rec}} {
		got, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %d bytes, %v", c.file, len(got), err)
		}
	}
	if pin, err := os.ReadFile(filepath.Join(dir, "zoo/genderage.onnx"+modelpack.PinSuffix)); err != nil || !strings.HasPrefix(string(pin), sha(z.ga)) {
		t.Errorf("genderage pin = %q, %v", pin, err)
	}
	if got := onnxFiles(t, dir); len(got) != 3 {
		t.Errorf("model files %v: the unused archive member must not be extracted", got)
	}
	if extra := leftovers(t, dir); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
	if z.count("/zoo/pack.zip") != 1 || z.count("/zoo/rec.onnx") != 1 {
		t.Errorf("requests %v: want the archive once and the file once", z.requests)
	}
	if !slices.Equal(phases, []string{modelpack.PhaseDownload, modelpack.PhaseExtract}) {
		t.Errorf("progress phases %v", phases)
	}
	if err := p.Verify(dir); err != nil {
		t.Errorf("Verify after Download: %v", err)
	}

	// Idempotent: nothing fetched, nothing requested.
	rep, err = modelpack.Download(ctx, p, dir, z.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Fetched) != 0 || len(rep.Present) != 3 || z.count("/zoo/pack.zip") != 1 || z.count("/zoo/rec.onnx") != 1 {
		t.Errorf("second download: %+v, requests %v", rep, z.requests)
	}

	// A damaged file is replaced; the others stay.
	if err := os.WriteFile(filepath.Join(dir, "zoo/det.onnx"), []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = modelpack.Download(ctx, p, dir, z.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Fetched, []string{"zoo/det.onnx"}) || z.count("/zoo/rec.onnx") != 1 {
		t.Errorf("repair: %+v, requests %v", rep, z.requests)
	}
	if err := p.Verify(dir); err != nil {
		t.Errorf("Verify after repair: %v", err)
	}
}

// TestDownloadRefusesWrongChecksums: a wrong archive, member or file
// checksum is refused with an error naming what failed, expected and got,
// and nothing is left behind.
func TestDownloadRefusesWrongChecksums(t *testing.T) {
	z := newFakeZoo(t)
	wrong := strings.Repeat("0", 64)
	cases := []struct {
		name   string
		mutate func(p *modelpack.Pack)
		want   string
	}{
		{"archive sha256", func(p *modelpack.Pack) { p.SHA256 = wrong }, "verify " + z.srv.URL + "/zoo/pack.zip: sha256 mismatch: expected " + wrong + ", got " + sha(z.archive)},
		{"archive size", func(p *modelpack.Pack) { p.ArchiveSize++ }, fmt.Sprintf("verify %s/zoo/pack.zip: size mismatch: expected %d, got %d", z.srv.URL, len(z.archive)+1, len(z.archive))},
		{"member sha256", func(p *modelpack.Pack) { p.SHA256, p.Models, p.Models[0].SHA256 = "", p.Models[:2], wrong }, "verify zoo/det.onnx: sha256 mismatch: expected " + wrong + ", got " + sha(z.det)},
		{"member size", func(p *modelpack.Pack) { p.Models[0].Size-- }, "verify pack.zip:pack/det.onnx: size mismatch"},
		{"file sha256", func(p *modelpack.Pack) {
			p.Models = p.Models[:2]
			p.Models[0].URL = ""
			p.Models[0].Member = ""
			p.Models[1].SHA256 = wrong
		}, "verify zoo/rec.onnx: sha256 mismatch: expected " + wrong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := z.pack()
			c.mutate(&p)
			dir := t.TempDir()
			if c.name == "file sha256" { // the detector is there already; only the file is fetched
				if err := os.MkdirAll(filepath.Join(dir, "zoo"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "zoo/det.onnx"), z.det, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := modelpack.Download(context.Background(), p, dir, z.srv.Client())
			if !errors.Is(err, modelpack.ErrMismatch) {
				t.Fatalf("Download = %v, want ErrMismatch", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			files := onnxFiles(t, dir)
			if c.name == "file sha256" {
				files = slices.DeleteFunc(files, func(f string) bool { return f == "zoo/det.onnx" })
			}
			if len(files) > 0 {
				t.Errorf("model files left behind: %v", files)
			}
			if extra := leftovers(t, dir); len(extra) > 0 {
				t.Errorf("temporary files left behind: %v", extra)
			}
		})
	}
}

func TestDownloadRefusals(t *testing.T) {
	z := newFakeZoo(t)
	ctx := context.Background()

	p := z.pack()
	p.Models[1].URL = z.srv.URL + "/zoo/missing.onnx"
	if _, err := modelpack.Download(ctx, p, t.TempDir(), z.srv.Client()); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("404: %v", err)
	}

	p = z.pack()
	p.Models[1].URL = ""
	if _, err := modelpack.Download(ctx, p, t.TempDir(), z.srv.Client()); err == nil || !strings.Contains(err.Error(), "model rec has no download url") {
		t.Errorf("no url: %v", err)
	}

	// Neither the genderage file's nor its archive's checksum known: refused
	// before anything is fetched, unless trusted on first use.
	p = z.pack()
	p.SHA256 = ""
	before := z.count("/zoo/pack.zip")
	dir := t.TempDir()
	if _, err := modelpack.Download(ctx, p, dir, z.srv.Client()); !errors.Is(err, modelpack.ErrChecksumUnknown) || z.count("/zoo/pack.zip") != before {
		t.Errorf("unknown checksums: %v (archive requested %d times)", err, z.count("/zoo/pack.zip")-before)
	}
	d := &modelpack.Downloader{Client: z.srv.Client(), TrustOnFirstUse: true}
	if _, err := d.Download(ctx, p, dir); err != nil {
		t.Errorf("trust on first use: %v", err)
	}
	if err := p.Verify(dir); err != nil {
		t.Errorf("Verify after trusting on first use: %v", err)
	}
}

// TestDownloadCancelled cancels while the archive is arriving: the error is
// the context's, and no partial file remains.
func TestDownloadCancelled(t *testing.T) {
	z := newFakeZoo(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(z.archive)))
		w.Write(z.archive[:len(z.archive)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	p := z.pack()
	for i := range p.Models {
		p.Models[i].URL = slow.URL + "/pack.zip"
	}
	p.URL = slow.URL + "/pack.zip"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &modelpack.Downloader{Client: slow.Client(), Progress: func(pr modelpack.Progress) {
		if pr.Phase == modelpack.PhaseDownload && pr.Done > 0 {
			cancel()
		}
	}}
	dir := t.TempDir()
	if _, err := d.Download(ctx, p, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("Download = %v, want context.Canceled", err)
	}
	if files := onnxFiles(t, dir); len(files) > 0 {
		t.Errorf("model files left behind: %v", files)
	}
	if extra := leftovers(t, dir); len(extra) > 0 {
		t.Errorf("temporary files left behind: %v", extra)
	}
}
