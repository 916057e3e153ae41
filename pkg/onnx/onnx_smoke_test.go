package onnx_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/facestream/facestream/pkg/onnx"
)

func TestSmokeSCRFD(t *testing.T) {
	rt, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: os.Getenv("FACESTREAM_ORT_LIB")})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	s, err := rt.NewSession(filepath.Join(os.Getenv("FACESTREAM_MODELS"), "insightface/det_500m.onnx"), onnx.SessionConfig{IntraOpThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(onnx.NewTensor(1, 3, 640, 640))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rt.Version(), s.Inputs(), len(out), out[0].Shape, out[3].Shape, out[6].Shape)
}
