// Package service wires facestream's pipeline stages into running
// processes. It is where configuration (internal/config) meets the
// libraries: it connects to NATS (credentials and TLS from the config),
// applies the JetStream definitions (package nats), opens the ONNX Runtime
// and the model pack once per process, builds each stage's events.Handler
// and events.Runner, serves /healthz, /readyz and /metrics, and drains
// gracefully when its context ends (SIGTERM in the mains).
//
// Two entry points:
//
//   - Main runs one stage binary (cmd/ingest, cmd/detect, cmd/embed,
//     cmd/attrs, cmd/aggregate) against an external NATS server.
//   - RunAll is `facestream run`: an in-process nats-server with JetStream
//     plus every stage in one process, sharing one ORT runtime.
package service
