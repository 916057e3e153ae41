package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

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

	// The result subjects above (image.rejected, image.analyzed,
	// face.matched) are prefixes: each result is published on
	// <prefix>.<image token> (see ResultSubject), so that a subscriber can
	// wait for one image's result, and an erasure can purge that image's
	// stored results, by subject alone. Subscribe to <prefix>.> for all.

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
// the stage; see DLQSubject). For the result types (IsResultType) it is the
// prefix of the subject: the event goes to ResultSubject(typ, imageID).
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

// IsResultType reports whether events of type typ are results
// (image.rejected, image.analyzed, face.matched), published on a subject
// that ends in their image's token (ResultSubject).
func IsResultType(typ string) bool {
	return typ == TypeImageRejected || typ == TypeImageAnalyzed || typ == TypeFaceMatched
}

// SubjectFor returns the NATS subject of an event of type typ about image
// imageID: SubjectOf(typ), followed for a result type by "." and
// ImageToken(imageID). It returns false where SubjectOf does.
func SubjectFor(typ, imageID string) (string, bool) {
	s, ok := SubjectOf(typ)
	if !ok {
		return "", false
	}
	if IsResultType(typ) {
		s += "." + ImageToken(imageID)
	}
	return s, true
}

// ResultSubject returns the subject a result of type typ about imageID is
// published on, e.g. facestream.image.analyzed.<image id>; "" for a type
// that is not a result.
func ResultSubject(typ, imageID string) string {
	if !IsResultType(typ) {
		return ""
	}
	s, _ := SubjectFor(typ, imageID)
	return s
}

// ImageToken is an image id as one NATS subject token: the id itself when
// it is a valid token of at most 128 characters of letters, digits, '-' and
// '_' (UUIDs, the ids the HTTP API chooses, always are), otherwise "h" and
// the first 32 hex digits of the SHA-256 of the id.
func ImageToken(imageID string) string {
	if plainToken(imageID) {
		return imageID
	}
	sum := sha256.Sum256([]byte(imageID))
	return "h" + hex.EncodeToString(sum[:16])
}

func plainToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
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
