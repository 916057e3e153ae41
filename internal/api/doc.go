// Package api is facestream's HTTP edge: JSON over HTTP in front of the
// pipeline. Images arrive as multipart uploads or as base64 / data-URL
// strings in JSON; they are published as image.submitted and, for the
// synchronous endpoints, the answer is the image's image.analyzed or
// image.rejected, awaited on that image's own result subjects
// (events.ResultSubject). Results, searches, subjects and erasures read and
// write PostgreSQL, always scoped to the tenant of the caller's API key.
// Errors are RFC 9457 problem documents (application/problem+json) with a
// stable code. See docs/api.md and the OpenAPI document served at
// /openapi.json.
//
// A Server is safe for concurrent use.
package api
