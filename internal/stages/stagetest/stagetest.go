// Package stagetest holds the test helpers of the stage packages: the real
// models (one ONNX Runtime per test binary, as ORT wants), an in-process
// JetStream with the facestream definitions, and deliveries built from
// payloads. Tests fail, never skip, when the environment the Makefile sets
// is missing.
package stagetest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/natstest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
	"github.com/facestream/facestream/pkg/onnx"
)

var shared struct {
	once sync.Once
	eng  *face.Engine
	pack modelpack.Pack
	err  error
}

// Engine returns the dev pack's engine, loaded once per test binary and
// never closed (ORT keeps one environment per process).
func Engine(tb testing.TB) (*face.Engine, modelpack.Pack) {
	tb.Helper()
	models := Env(tb, "FACESTREAM_MODELS")
	lib := Env(tb, "FACESTREAM_ORT_LIB")
	shared.once.Do(func() {
		rt, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: lib})
		if err != nil {
			shared.err = err
			return
		}
		shared.pack, shared.err = modelpack.Lookup(modelpack.DefaultPack)
		if shared.err != nil {
			return
		}
		opts := face.DefaultEngineOptions()
		opts.MaxBatch = 64
		shared.eng, shared.err = face.NewEngine(rt, shared.pack, models, opts)
	})
	if shared.err != nil {
		tb.Fatalf("load models: %v", shared.err)
	}
	return shared.eng, shared.pack
}

// Env returns a required environment variable.
func Env(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		tb.Fatalf("%s is not set (run the tests with make test)", name)
	}
	return v
}

// Image reads a test image (path relative to FACESTREAM_TESTDATA).
func Image(tb testing.TB, rel ...string) []byte {
	tb.Helper()
	p := filepath.Join(append([]string{Env(tb, "FACESTREAM_TESTDATA")}, rel...)...)
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatalf("read test image: %v", err)
	}
	return b
}

// JetStream starts an in-process server with the facestream definitions
// (in memory) and returns a blob store on it.
func JetStream(tb testing.TB) (*natstest.Server, *events.BlobStore) {
	tb.Helper()
	s := natstest.Start(tb, natstest.WithMaxPayload(8<<20))
	if _, err := fsnats.Apply(context.Background(), s.JS, fsnats.WithMemoryStorage()); err != nil {
		tb.Fatalf("apply definitions: %v", err)
	}
	return s, events.NewBlobStore(s.JS)
}

// Delivery wraps payload p about image imageID as a first delivery.
func Delivery(tb testing.TB, imageID string, p events.Payload) *events.Delivery {
	tb.Helper()
	e, err := events.New(imageID, p)
	if err != nil {
		tb.Fatal(err)
	}
	e.CloudEvent.SetID(events.NewID())
	e.CloudEvent.SetSource("/test")
	return &events.Delivery{Event: e, Attempt: 1}
}

// Output decodes the only output of a handler into p.
func Output(tb testing.TB, outs []events.Event, err error, p events.Payload) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("handle: %v", err)
	}
	if len(outs) != 1 {
		tb.Fatalf("handle: %d outputs, want 1", len(outs))
	}
	if got := outs[0].CloudEvent.Type(); got != p.EventType() {
		tb.Fatalf("handle: output %s, want %s (%s)", got, p.EventType(), outs[0].CloudEvent.Data())
	}
	if err := outs[0].Decode(p); err != nil {
		tb.Fatal(err)
	}
}
