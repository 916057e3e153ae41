package face

import (
	"os"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

// TestPictureForCrops: faces keep CropMinFace pixels in the picture their
// crops come from, and coordinates map between it and the stored picture.
func TestPictureForCrops(t *testing.T) {
	data, err := os.ReadFile(engTestFile(t, engTestDir(t, "FACESTREAM_TESTDATA"), "deepface", "img40.jpg")) // 3061 × 4600
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodePicture(data, DecodeOptions{MinSide: 640, Orientation: 6}) // turned 90°: stored upright 4600 × 3061
	if err != nil {
		t.Fatal(err)
	}
	if p.factor != 4 || p.storedW != 4600 || p.storedH != 3061 || p.img.Width() != 1150 || p.img.Height() != 766 {
		t.Fatalf("decoded ×1/%d to %dx%d, stored %dx%d", p.factor, p.img.Width(), p.img.Height(), p.storedW, p.storedH)
	}
	box := func(side float32) Face {
		return Face{Box: [4]float32{100, 100, 100 + side, 100 + side}, Landmarks: [5][2]float32{{120, 140}}}
	}
	for _, tc := range []struct {
		smallest float32
		want     int
	}{{600, 4}, {448, 4}, {447, 2}, {224, 2}, {223, 1}, {40, 1}} {
		c, err := p.ForCrops(data, []Face{box(1000), box(tc.smallest)})
		if err != nil {
			t.Fatal(err)
		}
		if c.factor != tc.want {
			t.Errorf("smallest face %.0f px: crops from ×1/%d, want ×1/%d", tc.smallest, c.factor, tc.want)
		}
		back := c.ToStored(c.FromStored([]Face{box(tc.smallest)}))[0]
		if d := back.Box[2] - (100 + tc.smallest); d > 0.01 || d < -0.01 || back.Landmarks[0][1]-140 > 0.01 {
			t.Errorf("stored → ×1/%d → stored moved the face to %v", c.factor, back)
		}
	}
	whole, err := DecodePicture(data, DecodeOptions{Limits: imaging.DefaultLimits})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := whole.ForCrops(data, []Face{box(40)}); err != nil || c.img != whole.img {
		t.Errorf("a whole picture was decoded again (%v)", err)
	}
}
