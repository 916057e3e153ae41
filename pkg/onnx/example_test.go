package onnx_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/facestream/facestream/pkg/onnx"
)

// One Runtime per process, one shared Session per model, Go-owned outputs.
func Example() {
	rt, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: os.Getenv("FACESTREAM_ORT_LIB")})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close() // also closes the sessions still open

	model := filepath.Join(os.Getenv("FACESTREAM_MODELS"), "mobilefacenet-foamliu/mobilefacenet_dynbatch_opset11.onnx")
	s, err := rt.NewSession(model, onnx.SessionConfig{IntraOpThreads: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	fmt.Println(s.Inputs(), s.Outputs(), s.Provider())

	batch := onnx.NewTensor(4, 3, 112, 112) // four aligned, normalised crops
	out, err := s.Run(batch)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out[0].Shape, len(out[0].Data))
	// Output:
	// [{input [-1 3 112 112]}] [{embedding [-1 128]}] cpu
	// [4 128] 512
}
