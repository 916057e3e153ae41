package onnx_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/facestream/facestream/pkg/onnx"
)

// The real models these tests run (see ../shared/models/MODELS.md).
const (
	scrfd500M     = "insightface/det_500m.onnx"                                 // input.1 [1,3,?,?], 9 outputs
	mobileFaceNet = "mobilefacenet-foamliu/mobilefacenet_dynbatch_opset11.onnx" // input [?,3,112,112] → embedding [?,128]
	yunetDynamic  = "yunet/yunet_s_dynamic.onnx"                                // input [?,3,?,?], 12 outputs, all dynamic
)

// mustEnv returns the variable or fails the test: these tests never skip.
func mustEnv(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		tb.Fatalf("%s is not set: run the tests through `make test` (FACESTREAM_ORT_LIB, FACESTREAM_MODELS and FACESTREAM_TESTDATA are required)", name)
	}
	return v
}

func mustFile(tb testing.TB, env, rel string) string {
	tb.Helper()
	p := filepath.Join(mustEnv(tb, env), rel)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("%s: %v (%s=%s)", rel, err, env, os.Getenv(env))
	}
	return p
}

func modelPath(tb testing.TB, rel string) string { return mustFile(tb, "FACESTREAM_MODELS", rel) }

// shared is the package's one long-lived Runtime handle. Tests that open and
// close their own handles share its environment, so it is never torn down
// under another test's sessions.
var shared struct {
	once sync.Once
	rt   *onnx.Runtime
	err  error
}

func sharedRuntime(tb testing.TB) *onnx.Runtime {
	tb.Helper()
	lib := mustFile(tb, "FACESTREAM_ORT_LIB", "")
	shared.once.Do(func() {
		shared.rt, shared.err = onnx.Open(onnx.RuntimeConfig{LibraryPath: lib})
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.rt
}

// openSession loads a model on the shared runtime and closes it at cleanup.
func openSession(tb testing.TB, rel string, cfg onnx.SessionConfig) *onnx.Session {
	tb.Helper()
	if cfg.IntraOpThreads == 0 {
		cfg.IntraOpThreads = 2
	}
	s, err := sharedRuntime(tb).NewSession(modelPath(tb, rel), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// pseudoRandom fills a tensor of the shape with deterministic values in
// [-1, 1) derived from seed (a 32-bit LCG: no math/rand state shared
// between goroutines).
func pseudoRandom(seed uint32, shape ...int64) onnx.Tensor {
	t := onnx.NewTensor(shape...)
	x := seed*2654435761 + 1
	for i := range t.Data {
		x = x*1664525 + 1013904223
		t.Data[i] = float32(x>>8)/float32(1<<23) - 1
	}
	return t
}

// maxDiff is the largest absolute difference between a and b.
func maxDiff(tb testing.TB, a, b []float32) float64 {
	tb.Helper()
	if len(a) != len(b) {
		tb.Fatalf("lengths differ: %d and %d", len(a), len(b))
	}
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// stack concatenates batch-1 tensors [1,...] into one [n,...] tensor.
func stack(items ...onnx.Tensor) onnx.Tensor {
	shape := append([]int64{int64(len(items))}, items[0].Shape[1:]...)
	t := onnx.Tensor{Shape: shape}
	for _, it := range items {
		t.Data = append(t.Data, it.Data...)
	}
	return t
}

func shapesOf(ts []onnx.Tensor) string {
	s := ""
	for _, t := range ts {
		s += fmt.Sprint(t.Shape)
	}
	return s
}
