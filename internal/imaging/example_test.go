package imaging_test

import (
	"fmt"

	"github.com/facestream/facestream/internal/imaging"
)

// A 1280×720 photo letterboxed into SCRFD's 640×640 input: scaled by 0.5 to
// 640×360 at the top-left, the rest padding. Detections are divided by
// Scale to return to the photo.
func ExampleLetterboxSize() {
	lb := imaging.LetterboxSize(1280, 720, 640, 640)
	x, y := lb.ToSource(320, 100)
	fmt.Println(lb.ResizedWidth, lb.ResizedHeight, lb.Scale, x, y)
	// Output: 640 360 0.5 640 200
}

func ExampleImage_Rotate90() {
	// 2×1: a blue pixel then a red one (BGR bytes).
	img, _ := imaging.FromBGR(2, 1, []byte{255, 0, 0, 0, 0, 255})
	turned := img.Rotate90(1) // a quarter turn clockwise: 1×2, blue on top
	r, g, b := turned.At(0, 0)
	fmt.Println(turned.Width(), turned.Height(), r, g, b)
	// Output: 1 2 0 0 255
}

func ExampleDecode() {
	// A PNG header that declares 100000×100000 pixels is refused before
	// anything is allocated for its pixels.
	_, err := imaging.Decode(pngHeader(100000, 100000), imaging.DefaultLimits)
	fmt.Println(err)
	// Output: decode png: 100000x100000: side over 16384: imaging: image too large
}
