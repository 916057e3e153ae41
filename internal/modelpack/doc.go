// Package modelpack describes model packs: manifests that name each model
// file with its sha256, kind, tensor names, input size, colour order,
// normalisation, embedding dimension, default thresholds and licence; the
// built-in packs; and download and verification of their files.
package modelpack
