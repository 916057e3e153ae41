// Package onnx is facestream's only door to ONNX Runtime (through
// github.com/yalue/onnxruntime_go). Nothing outside it sees an ORT value.
//
// A process opens one Runtime (ONNX Runtime keeps a single environment per
// process), creates Sessions from model files, and runs them with float32
// Tensors. Every output is copied into Go-owned memory and the native value
// is released before Run returns, so callers never hold native memory.
//
// Sessions are safe for concurrent use: ONNX Runtime allows concurrent Run
// calls on one session, and Close waits for runs in flight. Parallelism is
// the caller's to bound (a stage's concurrency, or errgroup.SetLimit).
//
// Execution providers: CPU is the default. CUDA and TensorRT are selectable;
// when their libraries are missing, NewSession fails with an error wrapping
// ErrProviderUnavailable, unless SessionConfig.FallbackToCPU is set, in which
// case the session runs on the CPU and Session.Provider says so.
package onnx
