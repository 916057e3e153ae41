package detect_test

import (
	"context"
	"testing"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/stages/crops"
	"github.com/facestream/facestream/internal/stages/detect"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/pkg/events"
)

// TestReducedDecodeKeepsTheAnalysis: with DecodeMinSide 640 large JPEGs are
// decoded at ½ or ¼ (a group photo's small faces are cut from a second,
// whole decode), and the stage reports the same faces in the stored
// picture's coordinates, with crops that embed like the whole decode's.
func TestReducedDecodeKeepsTheAnalysis(t *testing.T) {
	whole, blobs := newHandler(t, 0)
	reduced, _ := newHandler(t, 0, func(c *detect.Config) { c.DecodeMinSide = 640 })
	eng, _ := stagetest.Engine(t)
	for _, tc := range []struct{ dir, file string }{
		{"deepface", "couple.jpg"},       // 2280 × 1588: ½
		{"deepface", "img40.jpg"},        // 3061 × 4600: ¼
		{"deepface", "img49.jpg"},        // 4352 × 2903: ¼
		{"insightface/images", "t1.jpg"}, // 1280 × 886: ½, six small faces cut from a whole decode
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := stagetest.Image(t, tc.dir, tc.file)
			analyse := func(h *detect.Handler) (events.FacesDetected, [][]float32) {
				outs, err := h.Handle(context.Background(), stagetest.Delivery(t, "img", accepted("img", data)))
				var got events.FacesDetected
				stagetest.Output(t, outs, err, &got)
				set, _, err := crops.Load(context.Background(), blobs, got.Crops, events.CropAligned112)
				if err != nil {
					t.Fatal(err)
				}
				pix := make([][]byte, len(got.Faces))
				for i, f := range got.Faces {
					if pix[i], err = set.Crop(f.Index); err != nil {
						t.Fatal(err)
					}
				}
				emb, err := eng.Recognizer().Embed(pix)
				if err != nil {
					t.Fatal(err)
				}
				return got, emb
			}
			w, wemb := analyse(whole)
			r, remb := analyse(reduced)
			if len(r.Faces) != len(w.Faces) || len(w.Faces) == 0 {
				t.Fatalf("%d faces reduced, %d whole", len(r.Faces), len(w.Faces))
			}
			for i, wf := range w.Faces {
				best, j := float32(0), -1
				for k, rf := range r.Faces {
					if iou := boxIoU(wf.Box, rf.Box); iou > best {
						best, j = iou, k
					}
				}
				if best < 0.85 {
					t.Errorf("face %d %v: best reduced box IoU %.3f", i, wf.Box, best)
					continue
				}
				if c := face.Cosine(wemb[i], remb[j]); c < 0.9 {
					t.Errorf("face %d: cosine %.3f between the whole and the reduced decode's crops", i, c)
				} else {
					t.Logf("face %d (%.0f px): IoU %.3f, cosine %.3f", i, wf.Box[2]-wf.Box[0], best, c)
				}
			}
		})
	}
}

func boxIoU(a, b [4]float32) float32 {
	x1, y1 := max(a[0], b[0]), max(a[1], b[1])
	x2, y2 := min(a[2], b[2]), min(a[3], b[3])
	if x2 <= x1 || y2 <= y1 {
		return 0
	}
	inter := (x2 - x1) * (y2 - y1)
	return inter / ((a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - inter)
}
