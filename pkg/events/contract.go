package events

import "strings"

// NATS subjects of the pipeline. Every subject carries one CloudEvents type.
const (
	SubjectImageSubmitted = "facestream.image.submitted"
	SubjectImageAccepted  = "facestream.image.accepted"
	SubjectImageRejected  = "facestream.image.rejected"
	SubjectFacesDetected  = "facestream.faces.detected"
	SubjectFacesEmbedded  = "facestream.faces.embedded"
	SubjectFacesAnalyzed  = "facestream.faces.analyzed"
	SubjectImageAnalyzed  = "facestream.image.analyzed"
	SubjectFaceMatched    = "facestream.face.matched"

	// SubjectDLQPrefix starts the dead-letter subject of every stage:
	// facestream.dlq.<stage>. See DLQSubject.
	SubjectDLQPrefix = "facestream.dlq."
)

// CloudEvents types. The trailing .vN is the major version of the payload:
// fields are only ever added (optional), so a v1 consumer reads every v1
// event; an incompatible change would be published as a new type (.v2) on the
// same subject, side by side, until consumers have moved.
const (
	TypeImageSubmitted = "io.facestream.image.submitted.v1"
	TypeImageAccepted  = "io.facestream.image.accepted.v1"
	TypeImageRejected  = "io.facestream.image.rejected.v1"
	TypeFacesDetected  = "io.facestream.faces.detected.v1"
	TypeFacesEmbedded  = "io.facestream.faces.embedded.v1"
	TypeFacesAnalyzed  = "io.facestream.faces.analyzed.v1"
	TypeImageAnalyzed  = "io.facestream.image.analyzed.v1"
	TypeFaceMatched    = "io.facestream.face.matched.v1"
	TypeDeadLetter     = "io.facestream.deadletter.v1"
)

// The pipeline stages. A stage's name is the name of its durable consumer
// and the last token of its dead-letter subject.
const (
	StageIngest    = "ingest"
	StageDetect    = "detect"
	StageEmbed     = "embed"
	StageAttrs     = "attrs"
	StageAggregate = "aggregate"
)

// CloudEvents extension attributes. In binary mode they travel as
// ce-<name> headers.
const (
	// ExtTenant names the tenant the image belongs to (optional). Every stage
	// copies it from its input to its outputs.
	ExtTenant = "tenant"
	// ExtOptions holds per-request options as compact JSON (RequestOptions),
	// optional. Every stage copies it from its input to its outputs.
	ExtOptions = "options"
)

// Content types used by facestream events.
const (
	// ContentTypeJSON is the content type of every payload except the image
	// of image.submitted.
	ContentTypeJSON = "application/json"
	// ContentTypeBlobRef marks an image.submitted whose data is a JSON
	// BlobRef into the object store instead of the image bytes.
	ContentTypeBlobRef = "application/vnd.facestream.ref+json"
)

// Transport headers that travel beside the CloudEvent.
const (
	// HeaderMsgID is JetStream's de-duplication header; facestream sets it to
	// the CloudEvent id on every publish.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderTraceParent and HeaderTraceState are the W3C trace context
	// headers, carried from each input to its outputs.
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
	// HeaderContentType is the CloudEvents datacontenttype in binary mode.
	HeaderContentType = "content-type"
	// HeaderPrefix starts every CloudEvents attribute header.
	HeaderPrefix = "ce-"
)

// DefaultSource is the CloudEvents source used when a producer sets none.
const DefaultSource = "/facestream"

// MaxInlineBytes is the recommended largest payload part (an image, a crop
// set) to carry inline in an event. Anything larger goes to the object store
// and travels as a BlobRef, so that events stay far below the server's
// max_payload (1 MB by default).
const MaxInlineBytes = 256 << 10

// SubjectOf returns the NATS subject that carries events of type typ, and
// false for an unknown type and for dead letters (whose subject depends on
// the stage; see DLQSubject).
func SubjectOf(typ string) (string, bool) {
	switch typ {
	case TypeImageSubmitted:
		return SubjectImageSubmitted, true
	case TypeImageAccepted:
		return SubjectImageAccepted, true
	case TypeImageRejected:
		return SubjectImageRejected, true
	case TypeFacesDetected:
		return SubjectFacesDetected, true
	case TypeFacesEmbedded:
		return SubjectFacesEmbedded, true
	case TypeFacesAnalyzed:
		return SubjectFacesAnalyzed, true
	case TypeImageAnalyzed:
		return SubjectImageAnalyzed, true
	case TypeFaceMatched:
		return SubjectFaceMatched, true
	}
	return "", false
}

// Types returns every CloudEvents type of the contract, dead letters
// included, in pipeline order.
func Types() []string {
	return []string{
		TypeImageSubmitted, TypeImageAccepted, TypeImageRejected,
		TypeFacesDetected, TypeFacesEmbedded, TypeFacesAnalyzed,
		TypeImageAnalyzed, TypeFaceMatched, TypeDeadLetter,
	}
}

// DLQSubject returns the dead-letter subject of a stage:
// facestream.dlq.<stage>.
func DLQSubject(stage string) string {
	return SubjectDLQPrefix + stage
}

// validToken reports whether s can be a single NATS subject token.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}
