// Package api holds the end-to-end tests of the HTTP edge: every stage of
// the pipeline in-process on an in-process nats-server, real PostgreSQL with
// pgvector (pgtest), real models, and the edge (internal/api) on an
// httptest server. Every request and response of the happy paths is
// validated against the OpenAPI document with kin-openapi's openapi3filter.
//
// They need the environment the Makefile sets (FACESTREAM_TEST_DSN,
// FACESTREAM_MODELS, FACESTREAM_TESTDATA, FACESTREAM_ORT_LIB) and fail
// without it.
package api
