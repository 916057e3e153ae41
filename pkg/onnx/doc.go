// Package onnx is facestream's only door to ONNX Runtime (through
// github.com/yalue/onnxruntime_go). Nothing outside it sees an ORT value.
//
// A process opens one Runtime (ONNX Runtime keeps a single environment per
// process; further Opens share it, and the last Close destroys it), creates
// Sessions from model files, and runs them with float32 Tensors.
//
// Memory: inputs are handed to ORT without a copy and never kept. Run
// returns outputs in Go-owned memory (copied once out of ORT's buffers), and
// every native value is released before Run returns, so callers never hold
// native memory. RunInto lets ORT write straight into tensors the caller
// owns and may reuse, for hot loops that know their output shapes; ORT checks
// those shapes against the ones the model declares.
//
// Concurrency: Sessions are safe for concurrent use: ONNX Runtime allows
// concurrent runs on one session, and Close waits for runs in flight before
// it frees the session. Parallelism is the caller's to bound (a stage's
// concurrency, or errgroup.SetLimit). A Runtime owns the sessions made from
// it: Runtime.Close closes those still open. Close is idempotent on both;
// runs after Close fail with ErrClosed.
//
// Errors: malformed inputs (count, rank, fixed dimensions, length) are
// refused before anything runs, with an error wrapping ErrInvalidInput.
//
// Execution providers: CPU is the default. CUDA and TensorRT are selectable;
// when their libraries are missing, NewSession fails with an error wrapping
// ErrProviderUnavailable, unless SessionConfig.FallbackToCPU is set, in which
// case the session runs on the CPU, Session.Provider says so, and the
// Runtime's logger records why.
package onnx
