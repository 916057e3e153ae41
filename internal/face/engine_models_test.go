package face

import (
	"testing"

	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// engTestPack is the built-in dev pack: the models in ../shared/models.
func engTestPack(tb testing.TB) modelpack.Pack {
	tb.Helper()
	p, err := modelpack.Lookup("dev")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// engTestModel returns the dev pack's model of the given kind.
func engTestModel(tb testing.TB, kind modelpack.Kind) modelpack.Model {
	tb.Helper()
	m, ok := engTestPack(tb).Model(kind)
	if !ok {
		tb.Fatalf("dev pack has no %s", kind)
	}
	return m
}

// engTestModelOptions run every model on one thread: the tests run on two
// cores, several packages at once.
func engTestModelOptions() ModelOptions {
	return ModelOptions{Session: onnx.SessionConfig{IntraOpThreads: 1}}
}
