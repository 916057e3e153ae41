package detect_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/stages/crops"
	"github.com/facestream/facestream/internal/stages/detect"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/pkg/events"
)

func newHandler(t *testing.T, inlineMax int, edit ...func(*detect.Config)) (*detect.Handler, *events.BlobStore) {
	t.Helper()
	eng, pack := stagetest.Engine(t)
	_, blobs := stagetest.JetStream(t)
	cfg := detect.Config{Pack: pack, Detector: eng.Detector(), GenderAge: eng.GenderAge(), Blobs: blobs, InlineMax: inlineMax}
	for _, e := range edit {
		e(&cfg)
	}
	h, err := detect.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, blobs
}

func accepted(id string, data []byte) *events.ImageAccepted {
	return &events.ImageAccepted{Image: events.ImageInfo{ImageID: id, SHA256: "x", Format: "jpeg", Size: int64(len(data))}, Data: events.Blob{Data: data}}
}

// The couple photo gives two faces, the engine's own detections, each with
// the engine's aligned crop (RGB).
func TestDetectCouple(t *testing.T) {
	h, blobs := newHandler(t, 0)
	eng, _ := stagetest.Engine(t)
	data := stagetest.Image(t, "deepface", "couple.jpg")
	outs, err := h.Handle(context.Background(), stagetest.Delivery(t, "img-1", accepted("img-1", data)))
	var got events.FacesDetected
	stagetest.Output(t, outs, err, &got)
	if len(got.Faces) != 2 || got.Pack != "dev" || got.Detector != "scrfd_500m" {
		t.Fatalf("faces %d pack %s detector %s, want 2 dev scrfd_500m", len(got.Faces), got.Pack, got.Detector)
	}
	if len(got.Crops) != 1 || got.Crops[0].Kind != events.CropAligned112 || got.Crops[0].Blob.Ref != nil {
		t.Fatalf("crops %+v, want one inline %s set", got.Crops, events.CropAligned112)
	}
	img, err := imaging.Decode(data, imaging.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	want, err := eng.Detector().Detect(img)
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := crops.Load(context.Background(), blobs, got.Crops, events.CropAligned112)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range got.Faces {
		if f.Index != i || f.Box != want[i].Box || f.Landmarks != want[i].Landmarks {
			t.Errorf("face %d: %+v, engine %+v", i, f, want[i])
		}
		pix, err := set.Crop(f.Index)
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := face.AlignedCrop(img, want[i].Landmarks, 112)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pix, c.RGB()) {
			t.Errorf("face %d: crop differs from the engine's aligned crop", i)
		}
	}
}

// Crop sets above the inline limit travel by reference to the object store.
func TestDetectLargeCropsGoToObjectStore(t *testing.T) {
	h, blobs := newHandler(t, 1024)
	data := stagetest.Image(t, "deepface", "couple.jpg")
	outs, err := h.Handle(context.Background(), stagetest.Delivery(t, "img-2", accepted("img-2", data)))
	var got events.FacesDetected
	stagetest.Output(t, outs, err, &got)
	ref := got.Crops[0].Blob.Ref
	if ref == nil || ref.Key != crops.Key("img-2", events.CropAligned112) {
		t.Fatalf("crop blob %+v, want a reference", got.Crops[0].Blob)
	}
	pix, err := blobs.Get(context.Background(), *ref)
	if err != nil || len(pix) != 2*112*112*3 {
		t.Fatalf("stored crops: %d bytes, %v", len(pix), err)
	}
}

// Rejections are results: no face, undecodable bytes, a missing blob, an
// unknown pack.
func TestDetectRejects(t *testing.T) {
	h, _ := newHandler(t, 0)
	grey := make([]byte, 200*200*3)
	for i := range grey {
		grey[i] = 128
	}
	blank, err := imaging.FromRGB(200, 200, grey)
	if err != nil {
		t.Fatal(err)
	}
	png, err := blank.EncodePNG()
	if err != nil {
		t.Fatal(err)
	}
	couple := stagetest.Image(t, "deepface", "couple.jpg")
	missing := &events.ImageAccepted{Image: events.ImageInfo{ImageID: "m"}, Data: events.Blob{Ref: &events.BlobRef{Bucket: "facestream-images", Key: "nope"}}}
	for _, tc := range []struct {
		name string
		in   *events.ImageAccepted
		opts events.RequestOptions
		want events.RejectReason
	}{
		{"no face", accepted("a", png), events.RequestOptions{}, events.RejectNoFace},
		{"corrupt", accepted("b", couple[:200]), events.RequestOptions{}, events.RejectCorrupt},
		{"garbage", accepted("c", []byte("not an image at all")), events.RequestOptions{}, events.RejectCorrupt},
		{"blob missing", missing, events.RequestOptions{}, events.RejectBlobMissing},
		{"other pack", accepted("d", couple), events.RequestOptions{Pack: "buffalo_l"}, events.RejectInvalidRequest},
		{"min face size", accepted("e", couple), events.RequestOptions{MinFaceSize: 5000}, events.RejectNoFace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := stagetest.Delivery(t, tc.in.Image.ImageID, tc.in)
			if err := d.SetOptions(tc.opts); err != nil {
				t.Fatal(err)
			}
			outs, err := h.Handle(context.Background(), d)
			var got events.ImageRejected
			stagetest.Output(t, outs, err, &got)
			if got.Reason != tc.want || got.Stage != events.StageDetect {
				t.Fatalf("rejected %+v, want reason %s", got, tc.want)
			}
		})
	}
}
