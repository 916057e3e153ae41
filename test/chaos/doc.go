// Package chaos holds the fault-injection test of facestream: the real stage
// binaries as separate processes against a test-owned NATS server (file
// store) and a test-owned PostgreSQL 15 cluster, while stage processes are
// killed with SIGKILL and restarted, the NATS server is restarted and
// PostgreSQL is stopped for a while. Every image must end analysed exactly
// once or rejected with a reason; the test writes a reliability report.
//
// `make test` runs a bounded form (60 images, one kill per stage, one NATS
// restart, PostgreSQL down 10 s); `make chaos` the full one (500 images,
// PostgreSQL down 30 s) with the report in reports/. See
// docs/reliability.md.
package chaos
