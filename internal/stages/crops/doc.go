// Package crops packs face crops into events.CropSet values and reads them
// back, for the detect, embed and attrs stages. A set travels inline in its
// event when it is small and as a claim check (a BlobRef into the object
// store) otherwise, so an image with hundreds of faces keeps its events far
// below the server's max_payload.
package crops
