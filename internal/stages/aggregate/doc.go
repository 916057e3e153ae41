// Package aggregate is the last stage of the pipeline and the single writer
// of results: Handler takes faces.analyzed, stores the image, its faces and
// their embeddings in one idempotent transaction (package store), matches the
// faces against the tenant's enrolled subjects at the model pack's
// recognizer threshold (face.matched), deletes the image and crop blobs from
// the object store, fills the result cache (package resultcache) and
// publishes image.analyzed.
//
// An image erased while it was still in the pipeline is never stored again
// (the database refuses it: store.ErrErased): Handler deletes its blobs and
// ends it with image.rejected, reason erased, instead; the Recorder stores
// no rejection of an erased image, and turns a rejection for another reason
// (from a stage that could not know) into the erased outcome.
//
// Recorder, in the same package, stores image.rejected results from the
// durable consumer "recorder" on the results stream, so that every
// submitted image ends with exactly one stored outcome.
//
// Transient failures (the database or the object store unreachable) are
// plain errors, retried with backoff by the runner; malformed payloads and
// data the database refuses are events.Permanent and dead-lettered.
package aggregate
