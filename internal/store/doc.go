// Package store is facestream's PostgreSQL repository: the one place that
// writes analysis results (images, faces, embeddings), records rejections,
// answers the long-term tier of the result cache and matches embeddings
// against enrolled subjects.
//
// It works on a pgx/v5 pool whose connections know pgvector's types (see
// Open, or register github.com/pgvector/pgvector-go/pgx's RegisterTypes in
// AfterConnect yourself) over the schema of package migrations.
//
// Every write is idempotent: ids are deterministic (ImageUUID, FaceID), rows
// are upserted by their natural keys, and storing the same result twice
// leaves exactly the same rows. Tenants named by events are created on first
// use. A *Store is safe for concurrent use.
//
// Errors that retrying cannot fix (an invalid tenant, a constraint the data
// violates) match ErrInvalid; everything else (a lost connection, a
// serialisation failure) is worth retrying.
package store
