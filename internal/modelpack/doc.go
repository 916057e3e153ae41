// Package modelpack describes model packs: manifests that name each model
// file with its sha256, kind, tensor names, input size, colour order,
// normalisation, embedding dimension, default thresholds and licence; the
// built-in packs; and download and verification of their files.
//
// Packs are JSON (packs/*.json, embedded): Builtin lists them, Lookup finds
// one by name, Parse reads one strictly (unknown fields are errors) and
// Validate checks it: every model has a kind, a file inside the models
// directory, a sha256 (or notes saying why it is unknown), tensor names, a
// colour order, a normalisation, a crop and a licence; a recognizer has an
// embedding dimension and a threshold; a pack has a detector and at most one
// model of each kind, and claims commercial use only if all its models may.
//
// Verification streams each file through sha256 after checking its size,
// and names the file, expected and got on a mismatch. A process hashes an
// unchanged file once (VerifiedPath is the helper to call before loading a
// model). A file whose checksum the manifest does not know is refused
// (ErrChecksumUnknown) unless trusted on first use, which pins its hash in a
// sha256sum-style file next to it.
//
// Download fetches missing or damaged files from the official URLs (a zip
// archive is fetched once and only the named members are extracted),
// verifies everything before moving it into place with an atomic rename, is
// idempotent, and never leaves partial files behind.
package modelpack
