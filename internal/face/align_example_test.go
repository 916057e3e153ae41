package face_test

import (
	"fmt"

	"github.com/facestream/facestream/internal/face"
)

// Landmarks found at twice the template's size, shifted by (100, 50), align
// with a scale of 0.5.
func ExampleAlignTransform() {
	var lm [5][2]float32
	for i, p := range face.ArcFaceTemplate {
		lm[i] = [2]float32{float32(2*p[0] + 100), float32(2*p[1] + 50)}
	}
	m, err := face.AlignTransform(lm, 112)
	if err != nil {
		panic(err)
	}
	fmt.Printf("scale %.3f, translation (%.1f, %.1f)\n", m[0][0], m[0][2], m[1][2])
	// Output: scale 0.500, translation (-50.0, -25.0)
}
