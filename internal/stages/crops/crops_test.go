package crops_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/facestream/facestream/internal/stages/crops"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/pkg/events"
)

func TestPackLoadInlineAndByReference(t *testing.T) {
	_, blobs := stagetest.JetStream(t)
	ctx := context.Background()
	pix := [][]byte{bytes.Repeat([]byte{1}, 12), bytes.Repeat([]byte{2}, 12)}
	for _, tc := range []struct {
		name      string
		inlineMax int
		ref       bool
	}{{"inline", 1 << 10, false}, {"reference", 10, true}} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := crops.Pack(ctx, blobs, "facestream-images", tc.inlineMax, "img", events.CropAligned112, 2, 2, []int{3, 7}, pix)
			if err != nil {
				t.Fatal(err)
			}
			if (set.Blob.Ref != nil) != tc.ref {
				t.Fatalf("blob %+v, want by reference: %v", set.Blob, tc.ref)
			}
			got, ok, err := crops.Load(ctx, blobs, []events.CropSet{set}, events.CropAligned112)
			if err != nil || !ok {
				t.Fatalf("load: %v %v", ok, err)
			}
			c, err := got.Crop(7)
			if err != nil || !bytes.Equal(c, pix[1]) {
				t.Fatalf("crop of face 7: %v %v", c, err)
			}
			if refs := crops.Refs([]events.CropSet{set}); (len(refs) == 1) != tc.ref {
				t.Fatalf("refs %v", refs)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	_, blobs := stagetest.JetStream(t)
	ctx := context.Background()
	if _, ok, err := crops.Load(ctx, blobs, nil, events.CropAligned112); ok || err != nil {
		t.Fatalf("no set: ok %v err %v", ok, err)
	}
	gone := events.CropSet{Kind: events.CropAligned112, Format: events.PixelFormatRGB8, Width: 2, Height: 2, Channels: 3, Faces: []int{0},
		Blob: events.Blob{Ref: &events.BlobRef{Bucket: "facestream-images", Key: "gone"}}}
	if _, _, err := crops.Load(ctx, blobs, []events.CropSet{gone}, events.CropAligned112); !errors.Is(err, events.ErrPermanent) {
		t.Fatalf("missing object: %v, want a permanent error", err)
	}
	short := gone
	short.Blob = events.Blob{Data: []byte{1, 2, 3}}
	if _, _, err := crops.Load(ctx, blobs, []events.CropSet{short}, events.CropAligned112); !errors.Is(err, events.ErrPermanent) {
		t.Fatalf("short pixels: %v, want a permanent error", err)
	}
	if _, err := crops.Pack(ctx, blobs, "facestream-images", 100, "i", "k", 2, 2, []int{0}, [][]byte{{1}}); err == nil {
		t.Fatal("pack of a wrong-sized crop succeeded")
	}
}
