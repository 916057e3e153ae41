package crops

import (
	"context"
	"errors"
	"fmt"

	"github.com/facestream/facestream/pkg/events"
)

// Pack packs crops (each w×h RGB8, in the order of faces) into a CropSet of
// kind. When the packed pixels exceed inlineMax bytes they are put into
// bucket under a key derived from the image id and the kind, so a retry
// writes the same object again; otherwise they travel inline.
func Pack(ctx context.Context, blobs *events.BlobStore, bucket string, inlineMax int, imageID, kind string,
	w, h int, faces []int, pix [][]byte) (events.CropSet, error) {
	n := w * h * 3
	set := events.CropSet{Kind: kind, Format: events.PixelFormatRGB8, Width: w, Height: h, Channels: 3, Faces: faces}
	if len(pix) != len(faces) {
		return events.CropSet{}, fmt.Errorf("pack %s crops: %d crops for %d faces", kind, len(pix), len(faces))
	}
	packed := make([]byte, 0, n*len(pix))
	for i, p := range pix {
		if len(p) != n {
			return events.CropSet{}, fmt.Errorf("pack %s crops: crop %d has %d bytes, want %d", kind, i, len(p), n)
		}
		packed = append(packed, p...)
	}
	if len(packed) <= inlineMax {
		set.Blob = events.Blob{Data: packed}
		return set, nil
	}
	if blobs == nil {
		return events.CropSet{}, errors.New("pack crops: too large to inline and no object store")
	}
	ref, err := blobs.Put(ctx, bucket, Key(imageID, kind), "application/octet-stream", packed)
	if err != nil {
		return events.CropSet{}, fmt.Errorf("pack %s crops: %w", kind, err)
	}
	set.Blob = events.Blob{Ref: &ref}
	return set, nil
}

// Key is the object name of an image's crop set of kind.
func Key(imageID, kind string) string { return "crops/" + imageID + "/" + kind }

// Set is a loaded CropSet: its geometry and its pixels.
type Set struct {
	events.CropSet
	Pixels []byte
}

// Crop returns the crop of face index face.
func (s Set) Crop(face int) ([]byte, error) { return s.CropSet.Crop(s.Pixels, face) }

// Load finds the set of kind among sets and loads its pixels. ok is false
// when there is no such set. A missing or damaged object is a permanent
// error (events.ErrBlobNotFound, events.ErrBlobCorrupt).
func Load(ctx context.Context, blobs *events.BlobStore, sets []events.CropSet, kind string) (s Set, ok bool, err error) {
	for _, cs := range sets {
		if cs.Kind != kind {
			continue
		}
		if cs.Format != events.PixelFormatRGB8 || cs.Channels != 3 {
			return Set{}, true, events.Permanent(fmt.Errorf("load %s crops: format %s with %d channels, want %s with 3", kind, cs.Format, cs.Channels, events.PixelFormatRGB8))
		}
		var pix []byte
		if cs.Blob.Ref == nil {
			pix = cs.Blob.Data
		} else {
			if blobs == nil {
				return Set{}, true, errors.New("load crops: no object store")
			}
			if pix, err = blobs.Get(ctx, *cs.Blob.Ref); err != nil {
				return Set{}, true, fmt.Errorf("load %s crops: %w", kind, err)
			}
		}
		if len(pix) != cs.CropSize()*len(cs.Faces) {
			return Set{}, true, events.Permanent(fmt.Errorf("load %s crops: %d bytes for %d crops of %d", kind, len(pix), len(cs.Faces), cs.CropSize()))
		}
		return Set{CropSet: cs, Pixels: pix}, true, nil
	}
	return Set{}, false, nil
}

// Refs returns the object-store references of sets (those not inline).
func Refs(sets []events.CropSet) []events.BlobRef {
	var out []events.BlobRef
	for _, cs := range sets {
		if cs.Blob.Ref != nil {
			out = append(out, *cs.Blob.Ref)
		}
	}
	return out
}
