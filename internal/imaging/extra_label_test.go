package imaging_test

import (
	"image/color"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

func TestLabel(t *testing.T) {
	white := make([]byte, 3*120*80)
	for i := range white {
		white[i] = 255
	}
	img, _ := imaging.FromBGR(120, 80, white)
	fill := color.RGBA{R: 200, G: 20, B: 20, A: 255}
	// Asked for past the bottom-right corner, the label moves inside the image.
	out, err := img.Draw(imaging.Label{X: 110, Y: 75, Lines: []string{"ab", "yaw 45° ok"}, Text: color.RGBA{A: 255}, Fill: fill, Scale: 0.4})
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b := out.At(119, 79); r != 200 || g != 20 || b != 20 {
		t.Errorf("bottom-right corner = %d,%d,%d, want the fill", r, g, b)
	}
	if r, g, b := out.At(0, 0); r != 255 || g != 255 || b != 255 {
		t.Errorf("top-left corner = %d,%d,%d, want untouched", r, g, b)
	}
	dark := 0
	for y := range 80 {
		for x := range 120 {
			if r, g, b := out.At(x, y); r < 100 && g < 100 && b < 100 {
				dark++
			}
		}
	}
	if dark == 0 {
		t.Error("no text drawn")
	}
	// Above: the box ends at Y.
	out, err = img.Draw(imaging.Label{X: 5, Y: 60, Above: true, Lines: []string{"x"}, Text: color.RGBA{A: 255}, Fill: fill})
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := out.At(6, 58); r != 200 {
		t.Errorf("just above Y: red %d, want the fill", r)
	}
	if r, g, _ := out.At(6, 62); r != 255 || g != 255 {
		t.Errorf("below Y: %d,%d, want untouched", r, g)
	}
}
