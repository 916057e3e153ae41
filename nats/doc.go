// Package nats declares the JetStream resources facestream runs on, and
// applies them. Other packages import it as fsnats.
//
// The declarations are JSON files embedded in the binary — streams/,
// consumers/, objectstores/ and keyvalues/ next to this file — each with
// notes that explain its settings. Apply creates what is missing and
// updates what differs, at start-up, idempotently; options adapt them to an
// environment (memory storage for tests, replicas for a cluster, max ages,
// per-subject limits, the duplicate window, TTLs).
//
// # Streams
//
//   - FACESTREAM_WORK (work queue): facestream.image.submitted,
//     facestream.image.accepted, facestream.faces.detected,
//     facestream.faces.embedded, facestream.faces.analyzed. No max age:
//     bounded per subject (max_msgs_per_subject, discard new per subject),
//     so a full subject refuses a publish and never deletes work, and each
//     stage only ever waits for the stage after it, never for new
//     submissions (WithMaxMsgsPerSubject sets the bound; Validate refuses a
//     work-queue stream that could drop work or deadlock). Duplicate
//     window 10m.
//   - FACESTREAM_RESULTS (limits, 24h): facestream.image.analyzed,
//     facestream.image.rejected, facestream.face.matched.
//   - FACESTREAM_DLQ (limits, 14 days): facestream.dlq.> — one subject per
//     stage.
//
// # Consumers
//
// One durable pull consumer per stage on FACESTREAM_WORK, named after the
// stage and filtered on its input subject: ingest (image.submitted), detect
// (image.accepted), embed (faces.detected), attrs (faces.embedded),
// aggregate (faces.analyzed). Replicas of a stage share its consumer.
// AckWait 30s — the runner sends in-progress heartbeats while a handler
// works, so AckWait only bounds how soon a crashed replica's messages come
// back. BackOff 30s, 1m, 2m, 5m on the model stages spaces the
// redeliveries of messages nobody answered (an input that crashes the
// process) and is also the floor of the runner's retry delay after a
// handler error (BackOff[i] − AckWait). The database writers (aggregate,
// recorder) have no BackOff, so they retry on the runner's delays and catch
// up as soon as PostgreSQL is back. MaxDeliver 5 (aggregate and recorder
// 10): the runner dead-letters the last failed delivery. MaxAckPending (64 for detect, up to
// 256 elsewhere) is each stage's backpressure across all its replicas.
//
// # Buckets
//
//   - facestream-images (object store, TTL 1h): images and crops too large
//     for a message (claim checks). The aggregate stage deletes them; the
//     TTL removes leftovers.
//   - facestream-cache (key-value, TTL 24h): results by image sha256 and
//     model pack, shared by all replicas.
//
// # Message size
//
// A message must fit both the server's max_payload (1 MB by default) and the
// stream's max_msg_size (8 MiB here). The all-in-one server runs with an
// 8 MiB max_payload, so inline images up to that size flow there; against a
// server with the default, producers send images over 1 MB through the
// facestream-images bucket as a BlobRef, and stages move anything larger than
// events.MaxInlineBytes there as well.
package nats
