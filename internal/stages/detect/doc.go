// Package detect is the detect stage: for every image.accepted it loads the
// image (inline or from the object store), decodes the pixels once, applies
// the EXIF orientation found by ingest, finds the faces and cuts every crop
// the later models need (aligned 112×112 RGB for recognition, emotion and
// the 2018 gender-age model; bbox-centred 96×96 for buffalo's gender-age),
// packed one set per kind (see package crops). It emits faces.detected, or
// image.rejected (no_face, corrupt, blob_missing, invalid_request), which
// is a result and not an error.
//
// Handler implements events.Handler and is safe for concurrent use.
package detect
