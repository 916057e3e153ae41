package face

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/pkg/onnx"
)

// The face-engine tests run the real models on real images. They fail (never
// skip) when the environment the Makefile sets is missing.

var engTest struct {
	once sync.Once
	rt   *onnx.Runtime
	err  error
}

// engTestEnv returns the shared ONNX runtime (opened once for the test
// binary and never closed: ORT keeps one environment per process), the
// models directory and the test-data directory.
func engTestEnv(tb testing.TB) (rt *onnx.Runtime, models, testdata string) {
	tb.Helper()
	models, testdata = engTestDir(tb, "FACESTREAM_MODELS"), engTestDir(tb, "FACESTREAM_TESTDATA")
	lib := os.Getenv("FACESTREAM_ORT_LIB")
	if lib == "" {
		tb.Fatal("FACESTREAM_ORT_LIB is not set (run the tests with make test, or set it to libonnxruntime.so)")
	}
	engTest.once.Do(func() { engTest.rt, engTest.err = onnx.Open(onnx.RuntimeConfig{LibraryPath: lib}) })
	if engTest.err != nil {
		tb.Fatalf("open onnx runtime: %v", engTest.err)
	}
	return engTest.rt, models, testdata
}

func engTestDir(tb testing.TB, env string) string {
	tb.Helper()
	d := os.Getenv(env)
	if d == "" {
		tb.Fatalf("%s is not set (run the tests with make test)", env)
	}
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		tb.Fatalf("%s=%s: not a directory: %v", env, d, err)
	}
	return d
}

// engTestFile returns the path of a file under dir, failing when it is missing.
func engTestFile(tb testing.TB, dir string, rel ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{dir}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("test file missing: %v", err)
	}
	return p
}

// engTestImage decodes a test image (path relative to FACESTREAM_TESTDATA).
func engTestImage(tb testing.TB, testdata string, rel ...string) *imaging.Image {
	tb.Helper()
	data, err := os.ReadFile(engTestFile(tb, testdata, rel...))
	if err != nil {
		tb.Fatal(err)
	}
	img, err := imaging.Decode(data, imaging.DefaultLimits)
	if err != nil {
		tb.Fatalf("decode %v: %v", rel, err)
	}
	return img
}
