package api

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem is an RFC 9457 problem document with facestream's stable Code.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Code is machine-readable and stable (see docs/api.md).
	Code string `json:"code"`
	// Reason is the image's reject reason (events.RejectReason) for
	// invalid_image, image_too_large and no_face.
	Reason string `json:"reason,omitempty"`
	// RetryAfter is the seconds to wait, for codes rate_limited and
	// overloaded (also sent as the Retry-After header).
	RetryAfter int `json:"retry_after,omitempty"`
}

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// Stable problem codes.
const (
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeRateLimited      = "rate_limited"
	CodeBodyTooLarge     = "body_too_large"
	CodeImageTooLarge    = "image_too_large"
	CodeMalformedJSON    = "malformed_json"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeInvalidRequest   = "invalid_request"
	CodeInvalidImage     = "invalid_image"
	CodeNoFace           = "no_face"
	CodeModelMismatch    = "model_mismatch"
	CodeTimeout          = "timeout"
	CodeUnavailable      = "unavailable"
	CodeOverloaded       = "overloaded"
	CodeInternal         = "internal"
)

var titles = map[string]string{
	CodeUnauthorized:     "Missing or invalid API key",
	CodeForbidden:        "The API key lacks the scope for this request",
	CodeNotFound:         "Not found",
	CodeMethodNotAllowed: "Method not allowed",
	CodeRateLimited:      "Too many requests",
	CodeBodyTooLarge:     "Request body too large",
	CodeImageTooLarge:    "Image too large",
	CodeMalformedJSON:    "Malformed JSON",
	CodeUnsupportedMedia: "Unsupported content type",
	CodeInvalidRequest:   "Invalid request",
	CodeInvalidImage:     "Invalid image",
	CodeNoFace:           "No face found",
	CodeModelMismatch:    "Embeddings of different models cannot be compared",
	CodeTimeout:          "The analysis did not finish in time",
	CodeUnavailable:      "Service unavailable",
	CodeOverloaded:       "The pipeline is at capacity; retry later",
	CodeInternal:         "Internal error",
}

func problem(status int, code, detail string) *Problem {
	return &Problem{Type: "https://facestream.dev/problems/" + code, Title: titles[code], Status: status, Detail: detail, Code: code}
}

// writeProblem writes p as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if r != nil && p.Instance == "" {
		p.Instance = r.URL.Path
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
