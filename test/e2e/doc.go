// Package e2e holds the end-to-end tests of the pipeline: real JetStream
// (an in-process nats-server), real PostgreSQL with pgvector (pgtest), real
// models. They are the acceptance of the pipeline:
//
//   - TestPipeline runs every stage in the test process, submits every test
//     image through NATS and checks the stored outcomes against the face
//     engine's direct results; then duplicates, a poison event, a photo of
//     200 faces and the embed stage's batching.
//   - TestMultiProcess builds the stage binaries and runs them as separate
//     processes, two replicas of detect and embed, kills one with SIGKILL in
//     the middle of the run and checks that nothing is lost or duplicated.
//
// They need the environment the Makefile sets (FACESTREAM_TEST_DSN,
// FACESTREAM_MODELS, FACESTREAM_TESTDATA, FACESTREAM_ORT_LIB) and fail
// without it.
package e2e
