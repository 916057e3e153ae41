// Package ingest is the first stage of the pipeline: it turns an
// image.submitted event from any producer (the image bytes inline, or a
// BlobRef into the facestream-images bucket) into exactly one event:
//
//   - image.rejected, with a machine-readable reason, for anything that
//     must not reach the decoder: no bytes (empty), too many bytes
//     (too_large), an encoding internal/imaging does not decode — JPEG, PNG,
//     WebP, BMP and TIFF are; GIF is not — (unsupported_format), an encoding
//     that ends early (truncated), a header that does not parse (corrupt),
//     a header declaring more pixels than allowed (too_many_pixels), or
//     more decoded bytes than allowed or implausibly many pixels for its
//     size (decompression_bomb); a bad request or reference
//     (invalid_request, blob_missing). All of it from the bytes and
//     headers, in pure Go, without decoding a pixel;
//   - faces.analyzed, carrying the cached faces for this image id with the
//     cachedfrom extension, when the result cache (package resultcache)
//     knows the same bytes analysed with the same model pack for the same
//     tenant; the aggregate stage then stores it like any other result;
//   - image.accepted otherwise, with the sha256, size, format, dimensions
//     and the EXIF orientation (read from a JPEG's APP1, tolerant of
//     garbage) that the detect stage applies when it decodes the pixels
//     once. Images above the inline limit travel as a claim check: a
//     BlobRef into the object store.
//
// A rejection is a result, not an error; Handle returns errors only for
// transient failures of the object store or the cache.
package ingest
