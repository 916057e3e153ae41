// Package overload holds the overload test of facestream: the in-process
// pipeline (every stage, real models, an in-process NATS server with a file
// store, real PostgreSQL) behind the HTTP edge, driven at twice its measured
// capacity.
//
// TestOverload first measures the capacity in images per second with a
// closed-loop burst through POST /v1/images, then submits open-loop (one
// request every 1/rate seconds, never waiting for answers) at twice that rate
// — twice the larger of the measured capacity and the completion rate of
// the last 5 s, so the overload holds even when the shared machine speeds
// up — for FACESTREAM_OVERLOAD_DURATION (20 s by default; `make overload`:
// 2 min), plus a synchronous POST /v1/analyze every 3 s. Every submission is
// a distinct image: a test JPEG with a comment segment naming the
// submission, the same picture in other bytes, so the result cache never
// answers it.
//
// It samples the Go heap, the process's resident memory, the work stream and
// the stage consumers every 250 ms and checks counts and bounds only, never
// timings: some submissions are refused with 503 (or 429), each with
// Retry-After; no other 5xx (504 only for a synchronous analysis that waited
// its whole timeout); the work stream never holds more than the edge's
// high-water mark plus a documented slack, and no stage's queue fills; memory stays
// within a bound derived from the memory at capacity; and after submission
// stops every accepted image ends with exactly one stored outcome, none
// lost, none duplicated, none dead-lettered, and no refused image leaves a
// row. It writes overload.md and overload.json to FACESTREAM_OVERLOAD_REPORT
// (a temporary folder when unset). See docs/reliability.md.
package overload
