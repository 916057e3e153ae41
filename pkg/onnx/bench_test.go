package onnx_test

import (
	"testing"

	"github.com/facestream/facestream/pkg/onnx"
)

// The "bare ORT" baselines: one session, 2 intra-op threads, inputs prepared
// once, nothing but Session.Run (or RunInto) in the loop. The face engine's
// overhead is measured against these. Compare runs with benchstat.

func benchRun(b *testing.B, rel string, shape ...int64) {
	s := openSession(b, rel, onnx.SessionConfig{IntraOpThreads: 2})
	in := pseudoRandom(1, shape...)
	if _, err := s.Run(in); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Run(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(shape[0]), "ns/item")
}

func benchRunInto(b *testing.B, rel string, shape ...int64) {
	s := openSession(b, rel, onnx.SessionConfig{IntraOpThreads: 2})
	in := pseudoRandom(1, shape...)
	first, err := s.Run(in)
	if err != nil {
		b.Fatal(err)
	}
	outs := make([]onnx.Tensor, len(first))
	for i, o := range first {
		outs[i] = onnx.NewTensor(o.Shape...)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.RunInto(outs, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(shape[0]), "ns/item")
}

func BenchmarkRunSCRFD500M640(b *testing.B)     { benchRun(b, scrfd500M, 1, 3, 640, 640) }
func BenchmarkRunIntoSCRFD500M640(b *testing.B) { benchRunInto(b, scrfd500M, 1, 3, 640, 640) }

func BenchmarkRunMobileFaceNetBatch1(b *testing.B) { benchRun(b, mobileFaceNet, 1, 3, 112, 112) }
func BenchmarkRunIntoMobileFaceNetBatch1(b *testing.B) {
	benchRunInto(b, mobileFaceNet, 1, 3, 112, 112)
}

func BenchmarkRunMobileFaceNetBatch8(b *testing.B) { benchRun(b, mobileFaceNet, 8, 3, 112, 112) }
func BenchmarkRunIntoMobileFaceNetBatch8(b *testing.B) {
	benchRunInto(b, mobileFaceNet, 8, 3, 112, 112)
}
