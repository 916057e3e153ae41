// Package pgtest gives each test its own PostgreSQL database with pgvector.
//
// New creates a database with a random name through the role named in the
// FACESTREAM_TEST_DSN environment variable (the Makefile sets it; the role
// needs CREATEDB), opens a pool on it and drops the database WITH (FORCE) when
// the test ends. NewMigrated does the same and applies every migration of
// package migrations first.
//
// Tests never skip for want of a database: when FACESTREAM_TEST_DSN is unset
// or the server cannot be reached, the test fails and says to run `make test`,
// which installs and starts PostgreSQL with pgvector (scripts/setup.sh).
//
// The new database is copied from template1, where scripts/setup.sh creates
// the vector extension; New creates the extension itself when template1 lacks
// it and the role is allowed to.
package pgtest
