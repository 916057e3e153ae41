package face

import (
	"testing"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
)

func TestCropFor(t *testing.T) {
	// A 200×160 grey picture with a white 10×10 square centred on (120, 70).
	const w, h = 200, 160
	pix := make([]byte, 3*w*h)
	for i := range pix {
		pix[i] = 60
	}
	for y := 65; y < 75; y++ {
		for x := 115; x < 125; x++ {
			copy(pix[3*(y*w+x):], []byte{255, 255, 255})
		}
	}
	img, err := imaging.FromBGR(w, h, pix)
	if err != nil {
		t.Fatal(err)
	}
	// Buffalo genderage: a 96×96 crop centred on the box centre (120, 70),
	// the box's longer side (80) spanning 64 px: the square becomes 8×8 at
	// the centre.
	buffalo := modelpack.Model{Name: "buffalo-ga", Arch: modelpack.ArchGenderAgeBuffalo, Crop: modelpack.CropBBox}
	f := Face{Box: [4]float32{80, 40, 160, 100}}
	crop, err := CropFor(img, f, buffalo)
	if err != nil {
		t.Fatal(err)
	}
	if crop.Width() != 96 || crop.Height() != 96 {
		t.Fatalf("buffalo crop %dx%d, want 96x96", crop.Width(), crop.Height())
	}
	if r, _, _ := crop.At(48, 48); r != 255 {
		t.Errorf("crop centre = %d, want the white square", r)
	}
	if r, _, _ := crop.At(48+6, 48); r != 60 {
		t.Errorf("6 px right of the centre = %d, want grey (the square is 8 px wide)", r)
	}
	// The crop spans 120 source pixels: (60..180, 10..130), inside the picture.
	if r, _, _ := crop.At(2, 2); r != 60 {
		t.Errorf("corner = %d, want grey", r)
	}
	// A box at the picture's corner: the crop reaches outside it, which is black.
	crop, err = CropFor(img, Face{Box: [4]float32{0, 0, 40, 40}}, buffalo)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := crop.At(2, 2); r != 0 {
		t.Errorf("corner of a crop past the edge = %d, want the black border", r)
	}
	// ArcFace crop: landmarks on the template map the picture unchanged.
	var tpl [5][2]float32
	for i, p := range ArcFaceTemplate {
		tpl[i] = [2]float32{float32(p[0]), float32(p[1])}
	}
	crop, err = CropFor(img, Face{Landmarks: tpl}, modelpack.Model{Name: "rec", Crop: modelpack.CropArcFace112})
	if err != nil {
		t.Fatal(err)
	}
	if crop.Width() != 112 {
		t.Fatalf("arcface crop width %d", crop.Width())
	}
	if r, _, _ := crop.At(100, 10); r != 60 {
		t.Errorf("identity crop pixel = %d, want the picture's grey", r)
	}
	if _, err := CropFor(img, f, modelpack.Model{Name: "det", Crop: modelpack.CropLetterbox}); err == nil {
		t.Error("letterbox accepted as a face crop")
	}
}
