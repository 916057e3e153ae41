// Package imaging is facestream's one cgo package over OpenCV (gocv). It
// decodes images, resizes and letterboxes them into model tensors, warps and
// crops faces, measures sharpness and brightness, draws annotations and
// encodes PNG/JPEG. Nothing outside this package sees a gocv.Mat.
//
// # Ownership
//
// An [Image] holds its pixels in Go memory (8-bit BGR, interleaved, rows
// packed). Every native OpenCV Mat is created and released inside the single
// function that needs it; results are copied into Go-owned values before the
// function returns. There is therefore nothing to Close and no finalizer.
// Building the tests with -tags matprofile turns on gocv's Mat profile, and
// the package's TestMain then fails if any Mat outlives the tests
// (see [LiveMats]).
//
// # Concurrency
//
// An Image is immutable once constructed: every method reads it and returns
// new values, so an Image may be shared by any number of goroutines. The
// package keeps no global state.
//
// # Decoding and limits
//
// [Decode] sniffs the format from magic bytes (JPEG, PNG, WebP, BMP, TIFF),
// reads the dimensions from the header and rejects the image before any pixel
// buffer is allocated when it exceeds the [Limits] (a decompression-bomb
// guard). EXIF orientation is NOT applied: the pixels come out as stored, and
// the caller (ingest) applies [Image.Orient] or [Image.Rotate90] explicitly.
package imaging
