// Package migrations holds facestream's PostgreSQL schema as numbered SQL
// files (0001_init.sql, 0002_search.sql, ...), embedded in the binary, and the
// runner that applies them.
//
// # Running
//
// Up applies every pending migration in version order, each in its own
// transaction, and records it in facestream.schema_migrations with the
// SHA-256 of its file. It holds a PostgreSQL advisory lock (AdvisoryLockKey)
// on one connection for the whole run, so replicas that start together
// migrate once: the others wait, then find nothing to do. Up refuses to run
// when an applied migration's file has changed since (ErrChecksumMismatch):
// never edit a released migration, add a new one. Versions recorded in the
// database but unknown to this binary (a newer binary migrated first) are
// reported by Status and otherwise left alone.
//
// Status reports every migration as applied, pending, modified or unknown,
// without taking the lock or changing anything.
//
// # Writing a migration
//
// Name it NNNN_what.sql with the next number. It runs in one transaction, so
// it cannot use CREATE INDEX CONCURRENTLY. Put COMMENT ON every table, column
// that needs it and function; a test checks that every table and function of
// schema facestream has a comment.
//
// # Schema
//
// Schema facestream holds tenants, api_keys, subjects, images, faces,
// embedding_models, embeddings, usage, audit_log and erased_images (the
// tombstones of erased images, which a trigger keeps from being stored
// again), and the functions users may call directly:
//
//   - search_faces(tenant, model, query, k, min_similarity, enrolled_only, ef_search):
//     nearest faces by cosine similarity among one model's embeddings, through
//     that model's HNSW index;
//   - identify(tenant, model, query, k, min_similarity, ef_search): the best
//     matching enrolled subjects;
//   - ensure_embedding_index(model, dim): register a model and create its
//     partial HNSW index, named by embedding_index_name(model, dim):
//     embeddings_hnsw_<slug>_<dim>_<first 8 hex digits of md5(model)>, where
//     slug is the lower-cased model name with other characters than a-z and
//     0-9 turned into _ (at most 28 characters);
//   - record_usage, erase_image, erase_subject: counters and audited erasure
//     (erase_image also leaves the image's tombstone).
//
// Each function's COMMENT (psql: \df+ facestream.*) documents its arguments.
// On small tables the planner answers search_faces with an exact scan and
// sort, which is both faster and exact there; from a few thousand embeddings
// of a model on, it uses the model's HNSW index. search_faces sets
// hnsw.ef_search (default 100, a parameter) and hnsw.iterative_scan =
// strict_order for its own query only, so tenant and enrolled-only filters
// still return k rows.
package migrations
