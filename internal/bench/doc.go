// Package bench measures facestream: the pipeline end to end (in one
// process, or as the real stage binaries in separate processes) against the
// raw model ceiling measured in the same run with the same thread budget,
// and similarity search over many stored embeddings. It writes a Markdown
// and JSON report and a PNG chart; `facestream bench` and `make bench` run
// it. docs/benchmarks.md records the figures and how to reproduce them.
package bench
