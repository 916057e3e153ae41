// Package events is facestream's public event contract: the NATS subjects,
// the versioned CloudEvents types and the JSON payloads that flow between the
// pipeline's stages and out to subscribers, their encoding on NATS messages,
// a publisher that waits for JetStream's acknowledgement, and the runner that
// every stage is built on.
//
// # For producers
//
// Any NATS client can submit an image: publish to facestream.image.submitted
// (stream FACESTREAM_WORK) a CloudEvent in binary content mode — the
// attributes as headers, the image bytes as the message body:
//
//	ce-specversion: 1.0
//	ce-id:          <unique event id, e.g. a UUID>
//	ce-source:      <URI reference naming the producer, e.g. /cameras/7>
//	ce-type:        io.facestream.image.submitted.v1
//	ce-time:        2026-01-02T15:04:05Z            (RFC 3339, optional)
//	ce-subject:     <image id>                      (optional; default: ce-id)
//	ce-tenant:      <tenant>                        (optional)
//	ce-options:     {"pack":"buffalo_l"}            (optional RequestOptions JSON)
//	content-type:   image/jpeg
//	Nats-Msg-Id:    <the ce-id>                     (server-side de-duplication)
//	traceparent:    <W3C trace context>             (optional)
//
// Header names are matched case-insensitively. Use the JetStream publish
// (wait for the PubAck) so the image is known to be stored; re-publishing
// the same ce-id within the work stream's duplicate window (10 minutes) is
// harmless. A message must fit the server's max_payload (1 MB by default):
// for a larger image, put the bytes into the object store bucket
// facestream-images and publish instead content-type
// application/vnd.facestream.ref+json with a BlobRef as the body:
//
//	{"bucket":"facestream-images","key":"uploads/abc.jpg","size":4404019,"sha256":"…"}
//
// The result arrives on facestream.image.analyzed.<image id> (an ImageAnalyzed)
// or, if the image cannot be analysed, on facestream.image.rejected.<image id> (an
// ImageRejected with a machine-readable RejectReason), both with ce-subject
// set to the image id, in stream FACESTREAM_RESULTS. Faces that resemble an
// enrolled subject are also announced on facestream.face.matched.<image id>.
// Result subjects end in the image id (ImageToken; ResultSubject), so a
// subscriber can wait for one image: subscribe to the prefix and ".>" for all.
//
// # For subscribers
//
// Every event after image.submitted carries a JSON payload (content-type
// application/json) whose Go form is documented here: ImageAccepted,
// ImageRejected, FacesDetected, FacesEmbedded, FacesAnalyzed, ImageAnalyzed,
// FaceMatched and, on facestream.dlq.<stage>, DeadLetter. Field names are
// snake_case. Embedding vectors are base64 of little-endian float32 (see
// Vector). Payloads only ever gain optional fields; ignore fields you do not
// know. A breaking change would come as a new type (….v2).
//
// # Delivery guarantees
//
// Delivery is at least once; the effect is exactly once. Every publish sets
// Nats-Msg-Id to the CloudEvent id, so JetStream drops re-publications within
// the duplicate window; a stage derives its outputs' ids from its input's id,
// so a redelivered input re-publishes the same ids; and a stage acks its input
// only after every output's PubAck.
//
// # For stages
//
// A stage is a Handler run by a Runner on its durable pull consumer (the
// definitions live in the nats package). The runner bounds concurrency,
// heartbeats long work, publishes outputs, acks, retries transient failures
// with backoff, dead-letters permanent failures and exhausted retries, drains
// on shutdown, and reports Prometheus metrics. Payloads too large to carry
// inline travel through a BlobStore.
package events
